//! CQL semantics through the scylla driver: DDL, batches, TTL, timestamps, LWT, filtering,
//! types and errors.

mod common;

use std::time::Duration;

use common::{db_err, exec, rows};
use futures::TryStreamExt;
use scylla::errors::DbError;
use scylla::statement::batch::{Batch, BatchType};

async fn setup(ks: &str) -> (ember_cql::ServerHandle, scylla::client::session::Session) {
    let server = common::start(None).await;
    let session = common::connect(&server).await;
    exec(
        &session,
        &format!("CREATE KEYSPACE {ks} WITH replication = {{'class': 'NetworkTopologyStrategy', 'datacenter1': 1}}"),
    )
    .await;
    session.use_keyspace(ks, false).await.unwrap();
    (server, session)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn driver_sees_schema_metadata() {
    let (server, session) = setup("meta").await;
    exec(&session, "CREATE TABLE t (a text, b int, c bigint, v blob, PRIMARY KEY ((a, b), c)) WITH CLUSTERING ORDER BY (c DESC)").await;
    session.refresh_metadata().await.unwrap();
    let state = session.get_cluster_state();
    let ks = state
        .get_keyspace("meta")
        .expect("keyspace in driver metadata");
    let t = ks.tables.get("t").expect("table in driver metadata");
    assert_eq!(t.partition_key, vec!["a", "b"]);
    assert_eq!(t.clustering_key, vec!["c"]);
    assert_eq!(t.columns.len(), 4);
    assert!(state.get_keyspace("system_schema").is_some());
    let kinds: Vec<(String, String, i32, String)> = rows(
        &session,
        "SELECT column_name, kind, position, clustering_order FROM system_schema.columns WHERE keyspace_name = 'meta' AND table_name = 't'",
    )
    .await;
    assert_eq!(
        kinds,
        vec![
            ("a".into(), "partition_key".into(), 0, "none".into()),
            ("b".into(), "partition_key".into(), 1, "none".into()),
            ("c".into(), "clustering".into(), 0, "desc".into()),
            ("v".into(), "regular".into(), -1, "none".into()),
        ]
    );
    exec(&session, "DROP TABLE t").await;
    let left: Vec<(String,)> = rows(
        &session,
        "SELECT table_name FROM system_schema.tables WHERE keyspace_name = 'meta'",
    )
    .await;
    assert!(left.is_empty());
    let (ks_rows,): (i64,) = session
        .query_unpaged(
            "SELECT COUNT(*) FROM system_schema.keyspaces WHERE keyspace_name = 'meta'",
            &[],
        )
        .await
        .unwrap()
        .into_rows_result()
        .unwrap()
        .single_row()
        .unwrap();
    assert_eq!(ks_rows, 1);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_mixed_prepared_and_strings() {
    let (server, session) = setup("b").await;
    exec(
        &session,
        "CREATE TABLE kv (k int, c int, v text, PRIMARY KEY (k, c))",
    )
    .await;
    let ins = session
        .prepare("INSERT INTO kv (k, c, v) VALUES (?, ?, ?)")
        .await
        .unwrap();
    for kind in [BatchType::Logged, BatchType::Unlogged] {
        let mut batch = Batch::new(kind);
        batch.append_statement(ins.clone());
        batch.append_statement("INSERT INTO kv (k, c, v) VALUES (1, 2, 'two')");
        batch.append_statement(ins.clone());
        batch.append_statement("UPDATE kv SET v = ? WHERE k = ? AND c = ?");
        session
            .batch(
                &batch,
                (
                    (1i32, 1i32, "one"),
                    (),
                    (2i32, 1i32, "x"),
                    ("y", 2i32, 1i32),
                ),
            )
            .await
            .unwrap();
    }
    let got: Vec<(i32, i32, String)> =
        rows(&session, "SELECT k, c, v FROM kv WHERE k IN (1, 2)").await;
    let mut got = got;
    got.sort();
    assert_eq!(
        got,
        vec![
            (1, 1, "one".into()),
            (1, 2, "two".into()),
            (2, 1, "y".into())
        ]
    );
    // BEGIN BATCH in a query string.
    exec(&session, "BEGIN UNLOGGED BATCH USING TIMESTAMP 5 INSERT INTO kv (k, c, v) VALUES (3, 1, 'a'); DELETE FROM kv WHERE k = 1 AND c = 1; APPLY BATCH").await;
    let got: Vec<(String,)> = rows(&session, "SELECT v FROM kv WHERE k = 3").await;
    assert_eq!(got, vec![("a".to_string(),)]);
    // Timestamp 5 is older than the original write, so the delete does not win.
    let got: Vec<(String,)> = rows(&session, "SELECT v FROM kv WHERE k = 1 AND c = 1").await;
    assert_eq!(got, vec![("one".to_string(),)]);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_expires() {
    let (server, session) = setup("ttl").await;
    exec(
        &session,
        "CREATE TABLE t (k int PRIMARY KEY, v text, w text)",
    )
    .await;
    exec(
        &session,
        "INSERT INTO t (k, v) VALUES (1, 'short') USING TTL 1",
    )
    .await;
    exec(
        &session,
        "INSERT INTO t (k, v) VALUES (2, 'long') USING TTL 100",
    )
    .await;
    let ins = session
        .prepare("INSERT INTO t (k, v, w) VALUES (?, ?, ?) USING TTL ?")
        .await
        .unwrap();
    session
        .execute_unpaged(&ins, (3i32, "p", "q", 1i32))
        .await
        .unwrap();
    let (ttl,): (Option<i32>,) = rows(&session, "SELECT TTL(v) FROM t WHERE k = 2").await[0];
    assert!(matches!(ttl, Some(98..=100)), "{ttl:?}");
    let before: Vec<(i32,)> = rows(&session, "SELECT k FROM t").await;
    assert_eq!(before.len(), 3);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let mut after: Vec<(i32, Option<String>)> = rows(&session, "SELECT k, v FROM t").await;
    after.sort();
    assert_eq!(after, vec![(2, Some("long".to_string()))]);
    let (n,): (i64,) = rows(&session, "SELECT COUNT(*) FROM t").await[0];
    assert_eq!(n, 1);
    server.shutdown().await;
}

async fn get_v(session: &scylla::client::session::Session) -> Option<String> {
    let r: Vec<(String,)> = rows(session, "SELECT v FROM t WHERE k = 1").await;
    r.into_iter().next().map(|x| x.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn using_timestamp_last_write_wins() {
    let (server, session) = setup("lww").await;
    exec(&session, "CREATE TABLE t (k int PRIMARY KEY, v text)").await;
    let ins = session
        .prepare("INSERT INTO t (k, v) VALUES (?, ?) USING TIMESTAMP ?")
        .await
        .unwrap();
    session
        .execute_unpaged(&ins, (1i32, "new", 100i64))
        .await
        .unwrap();
    session
        .execute_unpaged(&ins, (1i32, "old", 50i64))
        .await
        .unwrap();
    assert_eq!(get_v(&session).await.as_deref(), Some("new"));
    // Equal timestamps: the greater value wins, whatever the arrival order.
    session
        .execute_unpaged(&ins, (1i32, "b", 200i64))
        .await
        .unwrap();
    session
        .execute_unpaged(&ins, (1i32, "a", 200i64))
        .await
        .unwrap();
    assert_eq!(get_v(&session).await.as_deref(), Some("b"));
    session
        .execute_unpaged(&ins, (1i32, "c", 200i64))
        .await
        .unwrap();
    assert_eq!(get_v(&session).await.as_deref(), Some("c"));
    // An older delete does not remove it; a newer one does and shadows older writes.
    exec(&session, "DELETE FROM t USING TIMESTAMP 150 WHERE k = 1").await;
    assert_eq!(get_v(&session).await.as_deref(), Some("c"));
    exec(&session, "DELETE FROM t USING TIMESTAMP 300 WHERE k = 1").await;
    assert_eq!(get_v(&session).await, None);
    session
        .execute_unpaged(&ins, (1i32, "late", 250i64))
        .await
        .unwrap();
    assert_eq!(get_v(&session).await, None);
    session
        .execute_unpaged(&ins, (1i32, "newer", 301i64))
        .await
        .unwrap();
    assert_eq!(get_v(&session).await.as_deref(), Some("newer"));
    let (wt,): (i64,) = rows(&session, "SELECT WRITETIME(v) FROM t WHERE k = 1").await[0];
    assert_eq!(wt, 301);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_if_not_exists_reports_applied() {
    let (server, session) = setup("lwt").await;
    exec(&session, "CREATE TABLE t (k int PRIMARY KEY, v text)").await;
    let q = "INSERT INTO t (k, v) VALUES (1, 'first') IF NOT EXISTS";
    let r = session
        .query_unpaged(q, &[])
        .await
        .unwrap()
        .into_rows_result()
        .unwrap();
    assert_eq!(
        r.column_specs().get_by_index(0).unwrap().name(),
        "[applied]"
    );
    let (applied,): (bool,) = r.single_row().unwrap();
    assert!(applied);
    let r = session
        .query_unpaged(
            "INSERT INTO t (k, v) VALUES (1, 'second') IF NOT EXISTS",
            &[],
        )
        .await
        .unwrap()
        .into_rows_result()
        .unwrap();
    let (applied, k, v): (bool, i32, String) = r.single_row().unwrap();
    assert_eq!((applied, k, v.as_str()), (false, 1, "first"));
    let p = session
        .prepare("INSERT INTO t (k, v) VALUES (?, ?) IF NOT EXISTS")
        .await
        .unwrap();
    let r = session
        .execute_unpaged(&p, (2i32, "two"))
        .await
        .unwrap()
        .into_rows_result()
        .unwrap();
    assert!(r.single_row::<(bool,)>().unwrap().0);
    let r = session
        .execute_unpaged(&p, (2i32, "again"))
        .await
        .unwrap()
        .into_rows_result()
        .unwrap();
    assert!(!r.single_row::<(bool, i32, String)>().unwrap().0);
    let got: Vec<(String,)> = rows(&session, "SELECT v FROM t WHERE k = 2").await;
    assert_eq!(got, vec![("two".to_string(),)]);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_carry_cassandra_codes() {
    let (server, session) = setup("err").await;
    exec(&session, "CREATE TABLE t (k int PRIMARY KEY, v text)").await;
    let (kind, msg) = db_err(
        session
            .query_unpaged("SELEC * FROM t", &[])
            .await
            .unwrap_err(),
    );
    assert_eq!(kind, DbError::SyntaxError, "{msg}");
    let (kind, msg) = db_err(
        session
            .query_unpaged("SELECT * FROM nope", &[])
            .await
            .unwrap_err(),
    );
    assert_eq!(kind, DbError::Invalid);
    assert!(msg.contains("err.nope"), "{msg}");
    let (kind, msg) = db_err(
        session
            .query_unpaged("SELECT nope FROM t", &[])
            .await
            .unwrap_err(),
    );
    assert_eq!(kind, DbError::Invalid);
    assert!(msg.contains("Undefined column name nope"), "{msg}");
    let (kind, msg) = db_err(
        session
            .query_unpaged("INSERT INTO t (k, nope) VALUES (1, 'x')", &[])
            .await
            .unwrap_err(),
    );
    assert_eq!(kind, DbError::Invalid);
    assert!(msg.contains("nope"), "{msg}");
    let (kind, msg) = db_err(
        session
            .query_unpaged("INSERT INTO t (k, v) VALUES ('x', 'y')", &[])
            .await
            .unwrap_err(),
    );
    assert_eq!(kind, DbError::Invalid);
    assert!(msg.contains("\"k\" of type int"), "{msg}");
    let (kind, _) = db_err(
        session
            .query_unpaged("CREATE TABLE t (k int PRIMARY KEY)", &[])
            .await
            .unwrap_err(),
    );
    assert_eq!(
        kind,
        DbError::AlreadyExists {
            keyspace: "err".into(),
            table: "t".into()
        }
    );
    let (kind, _) = db_err(
        session
            .query_unpaged("CREATE KEYSPACE err WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}", &[])
            .await
            .unwrap_err(),
    );
    assert_eq!(
        kind,
        DbError::AlreadyExists {
            keyspace: "err".into(),
            table: "".into()
        }
    );
    let (kind, msg) = db_err(
        session
            .query_unpaged("SELECT * FROM t WHERE v = 'x'", &[])
            .await
            .unwrap_err(),
    );
    assert_eq!(kind, DbError::Invalid);
    assert!(msg.contains("ALLOW FILTERING"), "{msg}");
    let (kind, _) = db_err(
        session
            .query_unpaged("CREATE INDEX ON t (v)", &[])
            .await
            .unwrap_err(),
    );
    assert_eq!(kind, DbError::SyntaxError);
    let (kind, msg) = db_err(
        session
            .query_unpaged("SELECT * FROM system.nope", &[])
            .await
            .unwrap_err(),
    );
    assert_eq!(kind, DbError::Invalid, "{msg}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_clustering_ranges_filtering_update_delete() {
    let (server, session) = setup("q").await;
    exec(&session, "CREATE TABLE ev (p text, t int, v int, tag text, PRIMARY KEY (p, t)) WITH CLUSTERING ORDER BY (t DESC)").await;
    let ins = session
        .prepare("INSERT INTO ev (p, t, v, tag) VALUES (?, ?, ?, ?)")
        .await
        .unwrap();
    for p in ["a", "b"] {
        for t in 0..10i32 {
            session
                .execute_unpaged(
                    &ins,
                    (p, t, t * 10, if t % 2 == 0 { "even" } else { "odd" }),
                )
                .await
                .unwrap();
        }
    }
    let got: Vec<(i32,)> = rows(
        &session,
        "SELECT t FROM ev WHERE p = 'a' AND t >= 3 AND t < 7",
    )
    .await;
    assert_eq!(got, vec![(6,), (5,), (4,), (3,)]);
    let got: Vec<(i32,)> = rows(
        &session,
        "SELECT t FROM ev WHERE p = 'a' AND t > 6 ORDER BY t ASC",
    )
    .await;
    assert_eq!(got, vec![(7,), (8,), (9,)]);
    let got: Vec<(i32,)> = rows(&session, "SELECT t FROM ev WHERE p = 'b' LIMIT 2").await;
    assert_eq!(got, vec![(9,), (8,)]);
    let got: Vec<(i32,)> = rows(
        &session,
        "SELECT t FROM ev WHERE p = 'b' AND t IN (1, 3, 42)",
    )
    .await;
    assert_eq!(got, vec![(3,), (1,)]);
    let (n,): (i64,) = rows(
        &session,
        "SELECT COUNT(*) FROM ev WHERE tag = 'even' ALLOW FILTERING",
    )
    .await[0];
    assert_eq!(n, 10);
    let got: Vec<(String, i32)> =
        rows(&session, "SELECT p, t FROM ev WHERE v > 80 ALLOW FILTERING").await;
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|(_, t)| *t == 9));
    // Prepared IN ? with a bound list, and LIMIT ?.
    let sel = session
        .prepare("SELECT t FROM ev WHERE p IN ? AND t = ? LIMIT ?")
        .await
        .unwrap();
    let r = session
        .execute_unpaged(&sel, (vec!["a", "b", "zz"], 4i32, 10i32))
        .await
        .unwrap()
        .into_rows_result()
        .unwrap();
    assert_eq!(r.rows_num(), 2);
    exec(
        &session,
        "UPDATE ev SET v = 1000, tag = null WHERE p = 'a' AND t = 0",
    )
    .await;
    let got: Vec<(i32, Option<String>)> =
        rows(&session, "SELECT v, tag FROM ev WHERE p = 'a' AND t = 0").await;
    assert_eq!(got, vec![(1000, None)]);
    exec(&session, "DELETE v FROM ev WHERE p = 'a' AND t = 1").await;
    let got: Vec<(Option<i32>, Option<String>)> =
        rows(&session, "SELECT v, tag FROM ev WHERE p = 'a' AND t = 1").await;
    assert_eq!(got, vec![(None, Some("odd".to_string()))]);
    exec(&session, "DELETE FROM ev WHERE p = 'b'").await;
    let (n,): (i64,) = rows(&session, "SELECT COUNT(*) FROM ev").await[0];
    assert_eq!(n, 10);
    // UPDATE of a missing row creates it (upsert); the row dies with its last cell.
    exec(&session, "UPDATE ev SET v = 5 WHERE p = 'c' AND t = 1").await;
    exec(&session, "DELETE v FROM ev WHERE p = 'c' AND t = 1").await;
    let got: Vec<(i32,)> = rows(&session, "SELECT t FROM ev WHERE p = 'c'").await;
    assert!(got.is_empty());
    exec(&session, "TRUNCATE ev").await;
    let (n,): (i64,) = rows(&session, "SELECT COUNT(*) FROM ev").await[0];
    assert_eq!(n, 0);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_types_roundtrip() {
    use scylla::value::{CqlDate, CqlDecimal, CqlTime, CqlTimestamp, CqlTimeuuid, CqlVarint};
    use std::collections::{BTreeMap, BTreeSet};
    let (server, session) = setup("ty").await;
    exec(
        &session,
        "CREATE TABLE t (k int PRIMARY KEY, a ascii, bi bigint, bl blob, bo boolean, d double, f float, ts timestamp, \
         u uuid, tu timeuuid, si smallint, ti tinyint, de decimal, vi varint, da date, tm time, ip inet, \
         l list<text>, s set<int>, m map<text, bigint>, fz frozen<list<int>>)",
    )
    .await;
    exec(
        &session,
        "INSERT INTO t (k, a, bi, bl, bo, d, f, ts, u, tu, si, ti, de, vi, da, tm, ip, l, s, m, fz) VALUES \
         (1, 'abc', -5, 0xcafe, true, 1.5, 2.5, '2024-01-02T03:04:05.006Z', 123e4567-e89b-12d3-a456-426614174000, \
         d2177dd0-eaa2-11de-a572-001b779c76e3, 300, -7, 12.345, 123456789012345678901234567890, '2024-02-29', '13:14:15.5', \
         '10.1.2.3', ['x', 'y'], {3, 1, 2}, {'k': 9}, [1, 2])",
    )
    .await;
    type Row = (
        String,
        i64,
        Vec<u8>,
        bool,
        f64,
        f32,
        CqlTimestamp,
        uuid::Uuid,
        CqlTimeuuid,
        i16,
        i8,
        CqlDecimal,
        CqlVarint,
        CqlDate,
        CqlTime,
        std::net::IpAddr,
    );
    let r: Vec<Row> = rows(
        &session,
        "SELECT a, bi, bl, bo, d, f, ts, u, tu, si, ti, de, vi, da, tm, ip FROM t WHERE k = 1",
    )
    .await;
    let r = &r[0];
    assert_eq!(r.0, "abc");
    assert_eq!(r.1, -5);
    assert_eq!(r.2, vec![0xca, 0xfe]);
    assert!(r.3);
    assert_eq!((r.4, r.5), (1.5, 2.5));
    assert_eq!(r.6, CqlTimestamp(1_704_164_645_006));
    assert_eq!(r.7.to_string(), "123e4567-e89b-12d3-a456-426614174000");
    assert_eq!(
        uuid::Uuid::from(r.8).to_string(),
        "d2177dd0-eaa2-11de-a572-001b779c76e3"
    );
    assert_eq!((r.9, r.10), (300, -7));
    assert_eq!(
        r.11,
        CqlDecimal::from_signed_be_bytes_slice_and_exponent(&12345i32.to_be_bytes(), 3)
    );
    assert_eq!(
        r.12.as_signed_bytes_be_slice(),
        &123456789012345678901234567890i128.to_be_bytes()[3..]
    );
    // 2024-02-29 is day 19782 after the epoch; dates are offset by 2^31.
    assert_eq!(r.13, CqlDate((1u32 << 31) + 19782));
    assert_eq!(
        r.14,
        CqlTime(((13 * 60 + 14) * 60 + 15) * 1_000_000_000 + 500_000_000)
    );
    assert_eq!(r.15.to_string(), "10.1.2.3");
    let (l, s, m, fz): (Vec<String>, BTreeSet<i32>, BTreeMap<String, i64>, Vec<i32>) =
        rows(&session, "SELECT l, s, m, fz FROM t WHERE k = 1")
            .await
            .remove(0);
    assert_eq!(l, vec!["x", "y"]);
    assert_eq!(s.into_iter().collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(m.get("k"), Some(&9));
    assert_eq!(fz, vec![1, 2]);
    // Bound collections through a prepared statement.
    let p = session
        .prepare("UPDATE t SET l = ?, m = ? WHERE k = ?")
        .await
        .unwrap();
    let mut mm = BTreeMap::new();
    mm.insert("z".to_string(), 1i64);
    session
        .execute_unpaged(&p, (vec!["q"], mm, 1i32))
        .await
        .unwrap();
    let (l, m): (Vec<String>, BTreeMap<String, i64>) =
        rows(&session, "SELECT l, m FROM t WHERE k = 1")
            .await
            .remove(0);
    assert_eq!(l, vec!["q"]);
    assert_eq!(
        m.into_iter().collect::<Vec<_>>(),
        vec![("z".to_string(), 1)]
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lz4_compressed_session() {
    let server = common::start(None).await;
    let session = scylla::client::session_builder::SessionBuilder::new()
        .known_node_addr(server.local_addr())
        .compression(Some(scylla::frame::Compression::Lz4))
        .build()
        .await
        .unwrap();
    exec(
        &session,
        "CREATE KEYSPACE z WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}",
    )
    .await;
    exec(&session, "CREATE TABLE z.t (k int PRIMARY KEY, v text)").await;
    let big = "x".repeat(100_000);
    let p = session
        .prepare("INSERT INTO z.t (k, v) VALUES (?, ?)")
        .await
        .unwrap();
    session
        .execute_unpaged(&p, (1i32, big.as_str()))
        .await
        .unwrap();
    let got: Vec<(String,)> = rows(&session, "SELECT v FROM z.t WHERE k = 1").await;
    assert_eq!(got[0].0, big);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_range_scans_cover_the_ring_once() {
    let (server, session) = setup("tok").await;
    exec(&session, "CREATE TABLE t (k int PRIMARY KEY, v int)").await;
    let ins = session
        .prepare("INSERT INTO t (k, v) VALUES (?, ?)")
        .await
        .unwrap();
    for k in 0..500i32 {
        session.execute_unpaged(&ins, (k, k * 2)).await.unwrap();
    }
    // The way Spark-style readers split a table: contiguous token ranges.
    let r: Vec<(i32, i64)> = rows(&session, "SELECT k, token(k) FROM t WHERE k = 7").await;
    assert_eq!(
        r,
        vec![(7, ember_cql::storage::murmur3_token(&7i32.to_be_bytes()))]
    );
    let scan = session
        .prepare("SELECT k, v FROM t WHERE token(k) > ? AND token(k) <= ?")
        .await
        .unwrap();
    let bounds = [
        i64::MIN,
        -4_000_000_000_000_000_000,
        0,
        3_000_000_000_000_000_000,
        i64::MAX,
    ];
    let mut all = Vec::new();
    for w in bounds.windows(2) {
        let r = session
            .execute_unpaged(&scan, (w[0], w[1]))
            .await
            .unwrap()
            .into_rows_result()
            .unwrap();
        for row in r.rows::<(i32, i32)>().unwrap() {
            let (k, v) = row.unwrap();
            let tok = ember_cql::storage::murmur3_token(&k.to_be_bytes());
            assert!(
                tok > w[0] && tok <= w[1],
                "k={k} token {tok} outside ({}, {}]",
                w[0],
                w[1]
            );
            assert_eq!(v, k * 2);
            all.push(k);
        }
    }
    // i64::MIN itself is not a valid token, so (MIN, MAX] covers everything exactly once.
    all.sort();
    assert_eq!(all, (0..500).collect::<Vec<_>>());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_paging_and_reprepare_after_recreate() {
    let (server, session) = setup("pp").await;
    exec(
        &session,
        "CREATE TABLE t (p int, c int, v text, PRIMARY KEY (p, c))",
    )
    .await;
    let ins = session
        .prepare("INSERT INTO t (p, c, v) VALUES (?, ?, ?)")
        .await
        .unwrap();
    for p in 0..3i32 {
        for c in 0..250i32 {
            session
                .execute_unpaged(&ins, (p, c, format!("{p}/{c}")))
                .await
                .unwrap();
        }
    }
    // Paging inside one partition and across partitions, with a prepared statement.
    let mut one = session
        .prepare("SELECT c, v FROM t WHERE p = ?")
        .await
        .unwrap();
    one.set_page_size(64);
    let got: Vec<(i32, String)> = session
        .execute_iter(one, (1i32,))
        .await
        .unwrap()
        .rows_stream::<(i32, String)>()
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(got.len(), 250);
    assert!(
        got.iter()
            .enumerate()
            .all(|(i, (c, v))| *c == i as i32 && *v == format!("1/{i}"))
    );
    let mut all = session.prepare("SELECT p, c FROM t LIMIT ?").await.unwrap();
    all.set_page_size(100);
    let got: Vec<(i32, i32)> = session
        .execute_iter(all, (700i32,))
        .await
        .unwrap()
        .rows_stream::<(i32, i32)>()
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(got.len(), 700, "LIMIT holds across pages");
    let mut dedup = got.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), 700);
    // Single-page API: the paging state resumes where the page ended.
    let mut page = session
        .prepare("SELECT c FROM t WHERE p = 2")
        .await
        .unwrap();
    page.set_page_size(200);
    let (r, state) = session
        .execute_single_page(&page, (), scylla::response::PagingState::start())
        .await
        .unwrap();
    assert_eq!(r.into_rows_result().unwrap().rows_num(), 200);
    let scylla::response::PagingStateResponse::HasMorePages { state } = state else {
        panic!("expected more pages");
    };
    let (r, state) = session.execute_single_page(&page, (), state).await.unwrap();
    let rest: Vec<(i32,)> = r
        .into_rows_result()
        .unwrap()
        .rows()
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rest, (200..250).map(|c| (c,)).collect::<Vec<_>>());
    assert!(matches!(
        state,
        scylla::response::PagingStateResponse::NoMorePages
    ));
    // Drop and recreate: the old prepared id is UNPREPARED, the driver re-prepares transparently.
    exec(&session, "DROP TABLE t").await;
    exec(
        &session,
        "CREATE TABLE t (p int, c int, v text, PRIMARY KEY (p, c))",
    )
    .await;
    session
        .execute_unpaged(&ins, (9i32, 9i32, "again"))
        .await
        .unwrap();
    let got: Vec<(String,)> = rows(&session, "SELECT v FROM t WHERE p = 9").await;
    assert_eq!(got, vec![("again".to_string(),)]);
    server.shutdown().await;
}

/// k, extra, tags, v: `SELECT *` order after ALTER TABLE ADD.
type AlteredRow = (i32, Option<i64>, Option<Vec<String>>, String);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alter_table_add_keeps_data_and_survives_restart() {
    let dir = common::temp_dir("alter");
    let server = common::start(Some(dir.clone())).await;
    let session = common::connect(&server).await;
    exec(
        &session,
        "CREATE KEYSPACE a WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}",
    )
    .await;
    exec(&session, "CREATE TABLE a.t (k int PRIMARY KEY, v text)").await;
    let ins = session
        .prepare("INSERT INTO a.t (k, v) VALUES (?, ?)")
        .await
        .unwrap();
    session.execute_unpaged(&ins, (1i32, "one")).await.unwrap();
    exec(
        &session,
        "ALTER TABLE a.t ADD (extra bigint, tags set<text>)",
    )
    .await;
    let (kind, _) = db_err(
        session
            .query_unpaged("ALTER TABLE a.t ADD v text", &[])
            .await
            .unwrap_err(),
    );
    assert_eq!(kind, DbError::Invalid);
    let (kind, msg) = db_err(
        session
            .query_unpaged("ALTER TABLE a.t DROP v", &[])
            .await
            .unwrap_err(),
    );
    assert_eq!(kind, DbError::Invalid, "{msg}");
    // The statement prepared before ALTER is re-prepared transparently and still works.
    session.execute_unpaged(&ins, (2i32, "two")).await.unwrap();
    exec(
        &session,
        "UPDATE a.t SET extra = 42, tags = {'x'} WHERE k = 1",
    )
    .await;
    let got: Vec<AlteredRow> = rows(&session, "SELECT * FROM a.t WHERE k IN (1, 2)").await;
    let mut got = got;
    got.sort_by_key(|r| r.0);
    assert_eq!(
        got,
        vec![
            (1, Some(42), Some(vec!["x".to_string()]), "one".to_string()),
            (2, None, None, "two".to_string())
        ]
    );
    drop(session);
    server.shutdown().await;

    let server = common::start(Some(dir.clone())).await;
    let session = common::connect(&server).await;
    let got: Vec<(i32, Option<i64>)> = rows(&session, "SELECT k, extra FROM a.t WHERE k = 1").await;
    assert_eq!(got, vec![(1, Some(42))]);
    drop(session);
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// p, c, s, v: `SELECT *` order (statics before regular columns).
type StaticRow = (i32, Option<i32>, Option<String>, Option<i32>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_columns() {
    let (server, session) = setup("st").await;
    let (kind, msg) = db_err(
        session
            .query_unpaged("CREATE TABLE bad (k int PRIMARY KEY, s int static)", &[])
            .await
            .unwrap_err(),
    );
    assert_eq!(kind, DbError::Invalid, "{msg}");
    exec(
        &session,
        "CREATE TABLE t (p int, c int, s text static, v int, PRIMARY KEY (p, c))",
    )
    .await;
    // Static-only insert: no clustering key, no row, but the partition reads as one row.
    exec(&session, "INSERT INTO t (p, s) VALUES (1, 'shared')").await;
    let got: Vec<StaticRow> = rows(&session, "SELECT * FROM t WHERE p = 1").await;
    assert_eq!(got, vec![(1, None, Some("shared".to_string()), None)]);
    exec(&session, "INSERT INTO t (p, c, v) VALUES (1, 1, 10)").await;
    exec(&session, "INSERT INTO t (p, c, v) VALUES (1, 2, 20)").await;
    let got: Vec<(i32, String, i32)> = rows(&session, "SELECT c, s, v FROM t WHERE p = 1").await;
    assert_eq!(
        got,
        vec![(1, "shared".into(), 10), (2, "shared".into(), 20)]
    );
    exec(&session, "UPDATE t SET s = 'changed' WHERE p = 1").await;
    let got: Vec<(i32, String)> = rows(&session, "SELECT c, s FROM t WHERE p = 1").await;
    assert_eq!(got, vec![(1, "changed".into()), (2, "changed".into())]);
    let (kind, _) = db_err(
        session
            .query_unpaged("UPDATE t SET v = 1 WHERE p = 1", &[])
            .await
            .unwrap_err(),
    );
    assert_eq!(kind, DbError::Invalid);
    exec(&session, "DELETE s FROM t WHERE p = 1").await;
    let got: Vec<(i32, Option<String>)> = rows(&session, "SELECT c, s FROM t WHERE p = 1").await;
    assert_eq!(got, vec![(1, None), (2, None)]);
    let got: Vec<(String,)> = rows(&session, "SELECT kind FROM system_schema.columns WHERE keyspace_name = 'st' AND table_name = 't' AND column_name = 's'").await;
    assert_eq!(got, vec![("static".to_string(),)]);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collection_element_updates() {
    use std::collections::BTreeMap;
    let (server, session) = setup("coll").await;
    exec(&session, "CREATE TABLE t (k int PRIMARY KEY, l list<text>, s set<int>, m map<text, int>, f frozen<list<int>>)").await;
    exec(
        &session,
        "INSERT INTO t (k, l, s, m) VALUES (1, ['b'], {2}, {'x': 1})",
    )
    .await;
    exec(
        &session,
        "UPDATE t SET l = l + ['c'], s = s + {1, 3}, m = m + {'y': 2} WHERE k = 1",
    )
    .await;
    exec(
        &session,
        "UPDATE t SET l = ['a'] + l, m['x'] = 10 WHERE k = 1",
    )
    .await;
    let p = session
        .prepare("UPDATE t SET s = s - ?, m = m - ?, l[?] = ? WHERE k = ?")
        .await
        .unwrap();
    session
        .execute_unpaged(&p, (vec![2i32], vec!["y"], 1i32, "B", 1i32))
        .await
        .unwrap();
    let (l, s, m): (Vec<String>, Vec<i32>, BTreeMap<String, i32>) =
        rows(&session, "SELECT l, s, m FROM t WHERE k = 1")
            .await
            .remove(0);
    assert_eq!(l, vec!["a", "B", "c"]);
    assert_eq!(s, vec![1, 3]);
    assert_eq!(
        m.into_iter().collect::<Vec<_>>(),
        vec![("x".to_string(), 10)]
    );
    exec(&session, "DELETE l[0], m['x'] FROM t WHERE k = 1").await;
    let (l, m): (Vec<String>, Option<BTreeMap<String, i32>>) =
        rows(&session, "SELECT l, m FROM t WHERE k = 1")
            .await
            .remove(0);
    assert_eq!(l, vec!["B", "c"]);
    assert_eq!(m, None, "an emptied collection reads as null");
    let (kind, msg) = db_err(
        session
            .query_unpaged("UPDATE t SET l[5] = 'z' WHERE k = 1", &[])
            .await
            .unwrap_err(),
    );
    assert_eq!(kind, DbError::Invalid);
    assert!(msg.contains("out of bound"), "{msg}");
    let (kind, msg) = db_err(
        session
            .query_unpaged("UPDATE t SET f = f + [1] WHERE k = 1", &[])
            .await
            .unwrap_err(),
    );
    assert_eq!(kind, DbError::Invalid);
    assert!(msg.contains("frozen"), "{msg}");
    // Updating a row that does not exist yet creates the collection.
    exec(&session, "UPDATE t SET s = s + {7} WHERE k = 2").await;
    let (s,): (Vec<i32>,) = rows(&session, "SELECT s FROM t WHERE k = 2")
        .await
        .remove(0);
    assert_eq!(s, vec![7]);
    server.shutdown().await;
}

type OptList = Option<Vec<i32>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_collections_read_as_null() {
    let (server, session) = setup("empty").await;
    exec(
        &session,
        "CREATE TABLE t (k int PRIMARY KEY, l list<int>, f frozen<list<int>>)",
    )
    .await;
    exec(&session, "INSERT INTO t (k, l, f) VALUES (1, [], [])").await;
    let p = session
        .prepare("INSERT INTO t (k, l, f) VALUES (?, ?, ?)")
        .await
        .unwrap();
    session
        .execute_unpaged(&p, (2i32, Vec::<i32>::new(), Vec::<i32>::new()))
        .await
        .unwrap();
    let mut got: Vec<(i32, OptList, OptList)> = rows(&session, "SELECT k, l, f FROM t").await;
    got.sort();
    // Non-frozen: empty means null; frozen: an empty list is a value.
    assert_eq!(got, vec![(1, None, Some(vec![])), (2, None, Some(vec![]))]);
    server.shutdown().await;
}
