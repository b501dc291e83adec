//! Rough throughput probe (ignored by default; run with `--ignored --nocapture`).
//! Numbers from a debug build are only useful for spotting regressions or lock contention.

mod common;

use std::time::Instant;

use futures::{StreamExt, TryStreamExt};

async fn run(data_dir: Option<std::path::PathBuf>, sync: ember_cql::SyncMode, n: u32) -> f64 {
    let mut cfg = common::config(data_dir);
    cfg.commitlog_sync = sync;
    cfg.commitlog_sync_period = std::time::Duration::from_millis(10);
    let server = ember_cql::Server::start(cfg).await.unwrap();
    let s = common::connect(&server).await;
    common::exec(
        &s,
        "CREATE KEYSPACE b WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}",
    )
    .await;
    common::exec(
        &s,
        "CREATE TABLE b.t (id uuid PRIMARY KEY, a text, b text, c bigint)",
    )
    .await;
    let ins = s
        .prepare("INSERT INTO b.t (id, a, b, c) VALUES (?, ?, ?, ?) USING TIMESTAMP ?")
        .await
        .unwrap();
    let start = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let (s, ins) = (&s, &ins);
            async move {
                s.execute_unpaged(
                    ins,
                    (
                        uuid::Uuid::new_v4(),
                        "first name",
                        "some longer text value",
                        i64::from(i),
                        1i64 + i64::from(i),
                    ),
                )
                .await
            }
        })
        .buffer_unordered(256)
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    let rate = f64::from(n) / start.elapsed().as_secs_f64();
    server.shutdown().await;
    rate
}

#[tokio::test(flavor = "multi_thread")]
#[ignore]
async fn prepared_insert_throughput() {
    let n = 50_000;
    println!(
        "memory:   {:>9.0} inserts/s",
        run(None, ember_cql::SyncMode::Group, n).await
    );
    for mode in [
        ember_cql::SyncMode::Periodic,
        ember_cql::SyncMode::Group,
        ember_cql::SyncMode::Batch,
    ] {
        let dir = common::temp_dir("bench");
        println!(
            "{mode:?}: {:>9.0} inserts/s",
            run(Some(dir.clone()), mode, n).await
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
