//! `ember-ingest replay --since/--until` re-sends produced rows in a range.

mod common;

use std::process::Command;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use ember_ingest::ingest::{IngestRequest, SourceKind};
use ember_ingest::pipeline::Pipeline;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_resends_a_range() {
    let topic = common::create_topic("replay");
    let cfg = common::config(&topic, "http://127.0.0.1:9/unused");
    let pipeline = Pipeline::start(cfg.clone()).await.expect("pipeline");
    let ingest = |seed| IngestRequest {
        count: 30,
        source: SourceKind::Generate,
        seed: Some(seed),
    };
    let early = pipeline.ingestor.ingest(ingest(1)).await.expect("ingest");
    pipeline
        .wait_produced(early.batch_id, Duration::from_secs(60))
        .await
        .expect("produced");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let since = Utc::now();
    let late = pipeline.ingestor.ingest(ingest(2)).await.expect("ingest");
    pipeline
        .wait_produced(late.batch_id, Duration::from_secs(60))
        .await
        .expect("produced");
    pipeline.stop().await;
    common::assert_exactly_once(&cfg, 60).await;

    // Replay only the second batch's time range, via the CLI.
    let out = Command::new(common::bin())
        .args([
            "replay",
            "--since",
            &since.to_rfc3339_opts(SecondsFormat::Micros, true),
        ])
        .args(["--topic", &topic, "--staging-table", &cfg.staging_table])
        .args(["--brokers", &cfg.brokers, "--pg", &cfg.pg_url])
        .output()
        .expect("run replay");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("report");
    assert_eq!(report["sent"], 30);
    assert_eq!(report["failed"], 0);

    let msgs = common::topic_messages(&topic).await;
    assert_eq!(msgs.len(), 90);
    let late_ids: std::collections::HashSet<String> =
        common::staged_rows(&cfg, Some(late.batch_id))
            .await
            .iter()
            .map(|r| r.0.to_string())
            .collect();
    let mut counts = std::collections::HashMap::<String, usize>::new();
    for m in &msgs {
        let k = String::from_utf8(m.key.clone().expect("key")).expect("utf8");
        *counts.entry(k).or_default() += 1;
    }
    for (k, n) in counts {
        let want = if late_ids.contains(&k) { 2 } else { 1 };
        assert_eq!(n, want, "{k}");
    }
    common::drop_tables(&cfg).await;
}
