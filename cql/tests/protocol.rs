//! Wire-level behaviour with a raw socket: version negotiation, malformed frames, stream ids,
//! UNPREPARED, and authentication.

mod common;

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn frame(version: u8, stream: i16, opcode: u8, body: &[u8]) -> Vec<u8> {
    let mut f = vec![version, 0];
    f.extend_from_slice(&stream.to_be_bytes());
    f.push(opcode);
    f.extend_from_slice(&(body.len() as u32).to_be_bytes());
    f.extend_from_slice(body);
    f
}

fn string_map(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut b = (pairs.len() as u16).to_be_bytes().to_vec();
    for (k, v) in pairs {
        for s in [k, v] {
            b.extend_from_slice(&(s.len() as u16).to_be_bytes());
            b.extend_from_slice(s.as_bytes());
        }
    }
    b
}

fn query_body(q: &str) -> Vec<u8> {
    let mut b = (q.len() as u32).to_be_bytes().to_vec();
    b.extend_from_slice(q.as_bytes());
    b.extend_from_slice(&1u16.to_be_bytes()); // consistency ONE
    b.push(0); // flags
    b
}

struct Resp {
    version: u8,
    stream: i16,
    opcode: u8,
    body: Vec<u8>,
}

impl Resp {
    fn error(&self) -> (i32, String) {
        assert_eq!(
            self.opcode, 0x00,
            "expected ERROR, got opcode {:#x}",
            self.opcode
        );
        let code = i32::from_be_bytes(self.body[0..4].try_into().unwrap());
        let n = u16::from_be_bytes([self.body[4], self.body[5]]) as usize;
        (
            code,
            String::from_utf8(self.body[6..6 + n].to_vec()).unwrap(),
        )
    }
}

async fn read(s: &mut TcpStream) -> Resp {
    let mut h = [0u8; 9];
    s.read_exact(&mut h).await.unwrap();
    let len = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) as usize;
    let mut body = vec![0; len];
    s.read_exact(&mut body).await.unwrap();
    Resp {
        version: h[0],
        stream: i16::from_be_bytes([h[2], h[3]]),
        opcode: h[4],
        body,
    }
}

async fn ready(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&frame(4, 0, 0x01, &string_map(&[("CQL_VERSION", "3.0.0")])))
        .await
        .unwrap();
    let r = read(&mut s).await;
    assert_eq!(r.opcode, 0x02, "READY");
    s
}

#[tokio::test]
async fn newer_protocol_versions_get_a_v4_protocol_error() {
    let server = common::start(None).await;
    for v in [5u8, 6, 3] {
        let mut s = TcpStream::connect(server.local_addr()).await.unwrap();
        s.write_all(&frame(v, 7, 0x05, &[])).await.unwrap();
        let r = read(&mut s).await;
        assert_eq!(r.version, 0x84);
        assert_eq!(r.stream, 7);
        let (code, msg) = r.error();
        assert_eq!(code, 0x000A);
        assert_eq!(
            msg,
            format!("Invalid or unsupported protocol version ({v}); supported versions are (4/v4)")
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn options_startup_and_request_ordering() {
    let server = common::start(None).await;
    let mut s = TcpStream::connect(server.local_addr()).await.unwrap();
    s.write_all(&frame(4, 1, 0x05, &[])).await.unwrap();
    let r = read(&mut s).await;
    assert_eq!(r.opcode, 0x06);
    let text = String::from_utf8_lossy(&r.body);
    assert!(
        text.contains("CQL_VERSION") && text.contains("3.4.") && text.contains("lz4"),
        "{text}"
    );
    // QUERY before STARTUP is refused but the connection stays usable.
    s.write_all(&frame(
        4,
        2,
        0x07,
        &query_body("SELECT * FROM system.local"),
    ))
    .await
    .unwrap();
    let (code, msg) = read(&mut s).await.error();
    assert_eq!(code, 0x000A);
    assert!(msg.contains("STARTUP"), "{msg}");
    s.write_all(&frame(4, 3, 0x01, &string_map(&[("CQL_VERSION", "3.0.0")])))
        .await
        .unwrap();
    assert_eq!(read(&mut s).await.opcode, 0x02);
    server.shutdown().await;
}

#[tokio::test]
async fn malformed_bodies_get_protocol_errors_not_disconnects() {
    let server = common::start(None).await;
    let mut s = ready(server.local_addr()).await;
    // Truncated QUERY: long string length says 100 bytes, only 3 follow.
    s.write_all(&frame(4, 9, 0x07, &[0, 0, 0, 100, b'a', b'b', b'c']))
        .await
        .unwrap();
    let r = read(&mut s).await;
    assert_eq!(r.stream, 9);
    assert_eq!(r.error().0, 0x000A);
    // Unknown opcode.
    s.write_all(&frame(4, 10, 0x42, &[])).await.unwrap();
    assert_eq!(read(&mut s).await.error().0, 0x000A);
    // Compressed flag without negotiated compression.
    let mut f = frame(4, 11, 0x07, &query_body("SELECT * FROM system.local"));
    f[1] = 0x01;
    s.write_all(&f).await.unwrap();
    assert_eq!(read(&mut s).await.error().0, 0x000A);
    // Garbage value bytes for an int column are refused with Invalid, not a panic.
    s.write_all(&frame(4, 12, 0x07, &query_body("CREATE KEYSPACE m WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}"))).await.unwrap();
    assert_eq!(read(&mut s).await.opcode, 0x08);
    s.write_all(&frame(
        4,
        13,
        0x07,
        &query_body("CREATE TABLE m.t (k int PRIMARY KEY)"),
    ))
    .await
    .unwrap();
    assert_eq!(read(&mut s).await.opcode, 0x08);
    let mut body = query_body("INSERT INTO m.t (k) VALUES (?)");
    let flags_at = body.len() - 1;
    body[flags_at] = 0x01;
    body.extend_from_slice(&1u16.to_be_bytes());
    body.extend_from_slice(&3i32.to_be_bytes());
    body.extend_from_slice(&[1, 2, 3]);
    s.write_all(&frame(4, 14, 0x07, &body)).await.unwrap();
    let (code, msg) = read(&mut s).await.error();
    assert_eq!(code, 0x2200, "{msg}");
    // The connection still works.
    s.write_all(&frame(4, 15, 0x05, &[])).await.unwrap();
    assert_eq!(read(&mut s).await.opcode, 0x06);
    server.shutdown().await;
}

#[tokio::test]
async fn pipelined_streams_and_unprepared() {
    let server = common::start(None).await;
    let mut s = ready(server.local_addr()).await;
    let mut batch = Vec::new();
    for stream in 100..164i16 {
        batch.extend(frame(
            4,
            stream,
            0x07,
            &query_body("SELECT key FROM system.local WHERE key = 'local'"),
        ));
    }
    s.write_all(&batch).await.unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 100..164 {
        let r = read(&mut s).await;
        assert_eq!(r.opcode, 0x08);
        seen.insert(r.stream);
    }
    assert_eq!(seen, (100..164).collect());
    // EXECUTE with an unknown id: Unprepared (0x2500) echoing the id.
    let id = [0xab_u8; 16];
    let mut body = 16u16.to_be_bytes().to_vec();
    body.extend_from_slice(&id);
    body.extend_from_slice(&1u16.to_be_bytes());
    body.push(0);
    s.write_all(&frame(4, 5, 0x0A, &body)).await.unwrap();
    let r = read(&mut s).await;
    let (code, _) = r.error();
    assert_eq!(code, 0x2500);
    let n = u16::from_be_bytes([r.body[4], r.body[5]]) as usize;
    let rest = &r.body[6 + n..];
    assert_eq!(&rest[..2], &16u16.to_be_bytes());
    assert_eq!(&rest[2..18], &id);
    server.shutdown().await;
}

/// Requests that finish at once are answered on the connection's own task;
/// one that waits for its fsync must not hold up those behind it.
#[tokio::test]
async fn a_write_waiting_for_its_fsync_does_not_block_the_connection() {
    let dir = common::temp_dir("fsync-wait");
    let mut cfg = common::config(Some(dir.clone()));
    // Group commit: at most one fsync per window, so a second write waits
    // for the window to end.
    cfg.commitlog_sync_period = std::time::Duration::from_millis(1500);
    let server = ember_cql::Server::start(cfg).await.unwrap();
    let mut s = ready(server.local_addr()).await;
    for (stream, q) in [
        (
            1,
            "CREATE KEYSPACE ks WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}",
        ),
        (2, "CREATE TABLE ks.t (k int PRIMARY KEY, v int)"),
        (3, "INSERT INTO ks.t (k, v) VALUES (1, 1)"),
    ] {
        s.write_all(&frame(4, stream, 0x07, &query_body(q)))
            .await
            .unwrap();
        assert_eq!(read(&mut s).await.stream, stream);
    }
    let started = std::time::Instant::now();
    let mut two = frame(
        4,
        10,
        0x07,
        &query_body("INSERT INTO ks.t (k, v) VALUES (2, 2)"),
    );
    two.extend(frame(
        4,
        11,
        0x07,
        &query_body("SELECT key FROM system.local WHERE key = 'local'"),
    ));
    s.write_all(&two).await.unwrap();
    let first = read(&mut s).await;
    assert_eq!(
        (first.stream, first.opcode),
        (11, 0x08),
        "the read behind the waiting write is answered first"
    );
    let second = read(&mut s).await;
    assert_eq!((second.stream, second.opcode), (10, 0x08));
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(500),
        "the second write waited for the group window ({:?})",
        started.elapsed()
    );
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn password_authenticator() {
    let mut cfg = common::config(None);
    cfg.credentials = Some(("cassandra".into(), "s3cret".into()));
    let server = ember_cql::Server::start(cfg).await.unwrap();
    let ok = scylla::client::session_builder::SessionBuilder::new()
        .known_node_addr(server.local_addr())
        .user("cassandra", "s3cret")
        .build()
        .await
        .expect("right credentials connect");
    ok.query_unpaged("SELECT * FROM system.local", &[])
        .await
        .unwrap();
    let bad = scylla::client::session_builder::SessionBuilder::new()
        .known_node_addr(server.local_addr())
        .user("cassandra", "wrong")
        .build()
        .await;
    let err = format!("{:?}", bad.expect_err("wrong credentials are refused"));
    assert!(
        err.contains("AuthenticationError") || err.contains("incorrect"),
        "{err}"
    );
    // Raw: requests before AUTH_RESPONSE are refused; bad credentials get 0x0100.
    let mut s = TcpStream::connect(server.local_addr()).await.unwrap();
    s.write_all(&frame(4, 0, 0x01, &string_map(&[("CQL_VERSION", "3.0.0")])))
        .await
        .unwrap();
    assert_eq!(read(&mut s).await.opcode, 0x03);
    s.write_all(&frame(
        4,
        1,
        0x07,
        &query_body("SELECT * FROM system.local"),
    ))
    .await
    .unwrap();
    assert_eq!(read(&mut s).await.error().0, 0x000A);
    let token = b"\0cassandra\0nope";
    let mut body = (token.len() as i32).to_be_bytes().to_vec();
    body.extend_from_slice(token);
    s.write_all(&frame(4, 2, 0x0F, &body)).await.unwrap();
    assert_eq!(read(&mut s).await.error().0, 0x0100);
    server.shutdown().await;
}

#[tokio::test]
async fn dropping_a_keyspace_frees_its_rows_while_statements_stay_prepared() {
    let server = ember_cql::Server::start(common::config(None))
        .await
        .unwrap();
    let s = scylla::client::session_builder::SessionBuilder::new()
        .known_node_addr(server.local_addr())
        .build()
        .await
        .unwrap();
    s.query_unpaged(
        "CREATE KEYSPACE dk WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}",
        &[],
    )
    .await
    .unwrap();
    s.query_unpaged("CREATE TABLE dk.t (id int PRIMARY KEY, v text)", &[])
        .await
        .unwrap();
    // The prepared statement (cached by the server) keeps the table alive.
    let insert = s
        .prepare("INSERT INTO dk.t (id, v) VALUES (?, ?)")
        .await
        .unwrap();
    for i in 0..100i32 {
        s.execute_unpaged(&insert, (i, "x")).await.unwrap();
    }
    let table = server.db().table("dk", "t").unwrap();
    let rows = |t: &ember_cql::storage::Table| -> usize {
        t.shards.iter().map(|sh| sh.read().partitions.len()).sum()
    };
    assert_eq!(rows(&table), 100);
    s.query_unpaged("DROP KEYSPACE dk", &[]).await.unwrap();
    assert_eq!(rows(&table), 0, "a dropped table's rows are freed at once");
    server.shutdown().await;
}
