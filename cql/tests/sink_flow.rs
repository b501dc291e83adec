//! The exact statements the Ember streaming sink issues, through the scylla driver.

mod common;

use futures::{StreamExt, TryStreamExt};
use scylla::value::CqlTimestamp;
use uuid::Uuid;

const CREATE_KS: &str = "CREATE KEYSPACE IF NOT EXISTS spark_streams WITH replication = {'class': 'SimpleStrategy', 'replication_factor': '1'}";
const CREATE_USERS: &str = "CREATE TABLE IF NOT EXISTS spark_streams.created_users (id uuid PRIMARY KEY, first_name text, last_name text, gender text, address text, post_code text, email text, username text, dob text, registered_date text, phone text, picture text)";
const CREATE_DEAD: &str = "CREATE TABLE IF NOT EXISTS spark_streams.dead_letters (topic text, partition int, offset bigint, job text, value blob, reason text, failed_at timestamp, PRIMARY KEY ((topic, partition), offset))";
const INSERT_USER: &str = "INSERT INTO spark_streams.created_users (id, first_name, last_name, gender, address, post_code, email, username, dob, registered_date, phone, picture) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?";

fn user(i: u32) -> (Uuid, [String; 11]) {
    let id = Uuid::from_u128(0x1234_0000_0000_4000_8000_0000_0000_0000 | u128::from(i));
    let f = |k: &str| format!("{k}-{i}");
    (
        id,
        [
            f("first"),
            f("last"),
            if i.is_multiple_of(2) {
                "female".into()
            } else {
                "male".into()
            },
            f("address"),
            f("post"),
            format!("user{i}@example.com"),
            f("username"),
            f("dob"),
            f("registered"),
            f("phone"),
            f("https://pictures.example/p"),
        ],
    )
}

type UserRow = (
    Uuid,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sink_flow_prepared_inserts_count_and_paged_read() {
    let dir = common::temp_dir("sink");
    let server = common::start(Some(dir.clone())).await;
    let session = common::connect(&server).await;

    session.query_unpaged(CREATE_KS, &[]).await.unwrap();
    session.query_unpaged(CREATE_USERS, &[]).await.unwrap();
    session.query_unpaged(CREATE_DEAD, &[]).await.unwrap();
    // Idempotent on re-run, as the sink does on every start.
    session.query_unpaged(CREATE_KS, &[]).await.unwrap();
    session.query_unpaged(CREATE_USERS, &[]).await.unwrap();

    let insert = session.prepare(INSERT_USER).await.unwrap();
    const N: u32 = 10_000;
    futures::stream::iter(0..N)
        .map(|i| {
            let session = &session;
            let insert = &insert;
            async move {
                let (id, v) = user(i);
                let ts: i64 = 1_700_000_000_000_000 + i64::from(i);
                session
                    .execute_unpaged(
                        insert,
                        (
                            id, &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8],
                            &v[9], &v[10], ts,
                        ),
                    )
                    .await
            }
        })
        .buffer_unordered(256)
        .try_collect::<Vec<_>>()
        .await
        .unwrap();

    let (count,): (i64,) = session
        .query_unpaged("SELECT COUNT(*) FROM spark_streams.created_users", &[])
        .await
        .unwrap()
        .into_rows_result()
        .unwrap()
        .single_row()
        .unwrap();
    assert_eq!(count, i64::from(N));

    let first = session
        .query_unpaged("SELECT * FROM spark_streams.created_users LIMIT 1", &[])
        .await
        .unwrap()
        .into_rows_result()
        .unwrap();
    let names: Vec<String> = first
        .column_specs()
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "id",
            "address",
            "dob",
            "email",
            "first_name",
            "gender",
            "last_name",
            "phone",
            "picture",
            "post_code",
            "registered_date",
            "username"
        ]
    );
    assert_eq!(first.rows_num(), 1);

    let mut select = scylla::statement::Statement::new("SELECT * FROM spark_streams.created_users");
    select.set_page_size(1000);
    let rows: Vec<UserRow> = session
        .query_iter(select, &[])
        .await
        .unwrap()
        .rows_stream::<UserRow>()
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(rows.len(), N as usize);
    let mut seen = std::collections::HashSet::new();
    for r in &rows {
        let i = (r.0.as_u128() & 0xffff_ffff) as u32;
        let (id, v) = user(i);
        assert_eq!(r.0, id);
        let got = [
            &r.1, &r.2, &r.3, &r.4, &r.5, &r.6, &r.7, &r.8, &r.9, &r.10, &r.11,
        ];
        // `SELECT *` returns the key, then regular columns in alphabetical order (like Cassandra).
        let want_order = [3, 7, 5, 0, 2, 1, 9, 10, 4, 8, 6];
        for (g, want) in got.iter().zip(want_order.iter().map(|&k| &v[k])) {
            assert_eq!(g.as_deref(), Some(want.as_str()), "row {i}");
        }
        assert!(seen.insert(i), "row {i} returned twice");
    }
    // Rows come back in token order, as from Cassandra.
    let tokens: Vec<i64> = rows
        .iter()
        .map(|r| ember_cql::storage::murmur3_token(r.0.as_bytes()))
        .collect();
    assert!(tokens.windows(2).all(|w| w[0] <= w[1]));

    // WRITETIME reflects USING TIMESTAMP.
    let (wt,): (i64,) = session
        .query_unpaged(
            "SELECT WRITETIME(first_name) FROM spark_streams.created_users WHERE id = ?",
            (user(42).0,),
        )
        .await
        .unwrap()
        .into_rows_result()
        .unwrap()
        .single_row()
        .unwrap();
    assert_eq!(wt, 1_700_000_000_000_042);

    // Dead letters: composite partition key, clustering on offset, blob and timestamp.
    let dl = session
        .prepare("INSERT INTO spark_streams.dead_letters (topic, partition, offset, job, value, reason, failed_at) VALUES (?, ?, ?, ?, ?, ?, ?)")
        .await
        .unwrap();
    for off in [5i64, 1, 3] {
        session
            .execute_unpaged(
                &dl,
                (
                    "users",
                    2i32,
                    off,
                    "job-1",
                    vec![0u8, 1, 2, off as u8],
                    "bad json",
                    CqlTimestamp(1_700_000_000_000 + off),
                ),
            )
            .await
            .unwrap();
    }
    let rows: Vec<(String, i32, i64, Vec<u8>, CqlTimestamp)> = session
        .query_unpaged(
            "SELECT topic, partition, offset, value, failed_at FROM spark_streams.dead_letters WHERE topic = ? AND partition = ?",
            ("users", 2i32),
        )
        .await
        .unwrap()
        .into_rows_result()
        .unwrap()
        .rows()
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows.iter().map(|r| r.2).collect::<Vec<_>>(), vec![1, 3, 5]);
    assert_eq!(rows[2].3, vec![0u8, 1, 2, 5]);
    assert_eq!(rows[0].4, CqlTimestamp(1_700_000_000_001));

    drop(session);
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}
