//! Acknowledged writes survive `kill -9` of the real binary and a restart on the same data dir.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;

struct Proc {
    child: Child,
    addr: SocketAddr,
}

/// Starts the binary on a free port and reads the bound address from its log.
fn spawn(dir: &Path, extra: &[&str]) -> Proc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ember-cql"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .args(extra)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn ember-cql");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if !sent && let Some(a) = line.split("local_addr=").nth(1) {
                let a = a.split_whitespace().next().unwrap_or("").to_string();
                let _ = tx.send(a);
                sent = true;
            }
            eprintln!("[ember-cql] {line}");
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("server reported its address")
        .parse()
        .expect("address parses");
    Proc { child, addr }
}

impl Proc {
    fn kill9(mut self) {
        // Child::kill sends SIGKILL on Unix: no chance to flush anything.
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reap");
    }
}

async fn connect(addr: SocketAddr) -> Session {
    SessionBuilder::new()
        .known_node_addr(addr)
        .build()
        .await
        .expect("connect")
}

fn payload(i: i32, round: i32) -> Vec<u8> {
    (0..600)
        .map(|j| ((i * 31 + j + round) % 251) as u8)
        .collect()
}

async fn write_rows(session: &Session, from: i32, to: i32, round: i32) {
    let ins = session
        .prepare("INSERT INTO d.t (id, bucket, name, data) VALUES (?, ?, ?, ?)")
        .await
        .unwrap();
    futures::stream::iter(from..to)
        .map(|i| {
            let ins = &ins;
            async move {
                session
                    .execute_unpaged(
                        ins,
                        (i, i % 7, format!("name-{i}-{round}"), payload(i, round)),
                    )
                    .await
            }
        })
        .buffer_unordered(128)
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
}

async fn check_rows(session: &Session, n: i32, round_of: impl Fn(i32) -> i32) {
    let mut st = scylla::statement::Statement::new("SELECT id, bucket, name, data FROM d.t");
    st.set_page_size(500);
    let mut got: Vec<(i32, i32, String, Vec<u8>)> = session
        .query_iter(st, &[])
        .await
        .unwrap()
        .rows_stream()
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    got.sort_by_key(|r| r.0);
    assert_eq!(got.len(), n as usize);
    for (i, r) in got.iter().enumerate() {
        let i = i as i32;
        let round = round_of(i);
        assert_eq!(r.0, i);
        assert_eq!(r.1, i % 7);
        assert_eq!(r.2, format!("name-{i}-{round}"));
        assert_eq!(r.3, payload(i, round), "row {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_dash_nine_and_restart_keeps_acknowledged_writes() {
    let dir = common::temp_dir("durability");
    // Small segments so the run also exercises compaction into the snapshot while writing.
    let p = spawn(&dir, &["--commitlog-segment-size-mb", "1"]);
    {
        let s = connect(p.addr).await;
        s.query_unpaged("CREATE KEYSPACE d WITH replication = {'class': 'SimpleStrategy', 'replication_factor': '1'}", &[])
            .await
            .unwrap();
        s.query_unpaged(
            "CREATE TABLE d.t (id int PRIMARY KEY, bucket int, name text, data blob)",
            &[],
        )
        .await
        .unwrap();
        write_rows(&s, 0, 3000, 0).await;
        s.query_unpaged("DELETE FROM d.t WHERE id = 2999", &[])
            .await
            .unwrap();
    }
    p.kill9();
    // A torn record at the tail (a write that was never acknowledged) must not break replay.
    let segs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".log"))
        .collect();
    assert!(!segs.is_empty(), "commit log segment exists");
    let last = segs.iter().max().unwrap();
    let mut f = std::fs::OpenOptions::new().append(true).open(last).unwrap();
    std::io::Write::write_all(&mut f, &[0, 0, 0, 50, 1, 2, 3]).unwrap();
    drop(f);

    let p = spawn(&dir, &[]);
    {
        let s = connect(p.addr).await;
        check_rows(&s, 2999, |_| 0).await;
        // Overwrite half, then crash again: the replay must apply the newer values.
        write_rows(&s, 0, 1500, 1).await;
        write_rows(&s, 2999, 3000, 1).await;
    }
    p.kill9();

    let p = spawn(&dir, &["--commitlog-sync", "batch"]);
    {
        let s = connect(p.addr).await;
        check_rows(&s, 3000, |i| if i < 1500 || i == 2999 { 1 } else { 0 }).await;
        let (n,): (i64,) = s
            .query_unpaged("SELECT COUNT(*) FROM d.t", &[])
            .await
            .unwrap()
            .into_rows_result()
            .unwrap()
            .single_row()
            .unwrap();
        assert_eq!(n, 3000);
    }
    p.kill9();

    // Periodic mode acknowledges once the OS has the bytes: a process crash loses nothing.
    let p = spawn(
        &dir,
        &[
            "--commitlog-sync",
            "periodic",
            "--commitlog-sync-period-ms",
            "60000",
            // Small segments: appenders write while the log thread rotates and compacts.
            "--commitlog-segment-size-mb",
            "1",
        ],
    );
    {
        let s = connect(p.addr).await;
        write_rows(&s, 0, 3000, 2).await;
    }
    p.kill9();
    let p = spawn(&dir, &[]);
    {
        let s = connect(p.addr).await;
        check_rows(&s, 3000, |_| 2).await;
    }
    p.kill9();
    let _ = std::fs::remove_dir_all(dir);
}
