//! The broker stopped mid-run (`scripts/stack stop tansu`) and started again:
//! every staged record is produced afterwards, exactly once. This test stops
//! the shared broker for a few seconds, so it lives in its own binary.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use ember_ingest::ingest::{IngestRequest, SourceKind};
use ember_ingest::pipeline::Pipeline;

fn stack(action: &str) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/stack");
    let out = Command::new(&script)
        .args([action, "tansu"])
        .output()
        .expect("run scripts/stack");
    assert!(
        out.status.success(),
        "scripts/stack {action} tansu: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Restarts the broker even if the test panics half-way.
struct RestartOnDrop;
impl Drop for RestartOnDrop {
    fn drop(&mut self) {
        stack("start");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_outage_loses_nothing() {
    let topic = common::create_topic("outage");
    let mut cfg = common::config(&topic, "http://127.0.0.1:9/unused");
    // Stage fast, so the relay is still sending when the broker goes away.
    cfg.api.page_size = 500;
    // Staging may lead a producing relay by 1000 rows; a relay that is not
    // producing (the broker is down) must not hold it back.
    cfg.max_lead = 1000;
    let pipeline = Pipeline::start(cfg.clone()).await.expect("pipeline");
    let ingest = |count, seed| IngestRequest {
        count,
        source: SourceKind::Generate,
        seed: Some(seed),
    };

    // A batch is produced while the broker goes away under it.
    let first = pipeline
        .ingestor
        .ingest(ingest(5000, 1))
        .await
        .expect("ingest");
    let guard = RestartOnDrop;
    stack("stop");
    let at_stop = pipeline
        .status(first.batch_id)
        .await
        .expect("status")
        .expect("batch");
    eprintln!(
        "broker stopped with {}/{} of the first batch produced",
        at_stop.produced, at_stop.staged
    );
    // Staging keeps working while the broker is down, past its lead.
    let second = pipeline
        .ingestor
        .ingest(ingest(2500, 2))
        .await
        .expect("ingest");
    assert_eq!(second.staged, 2500);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during = pipeline
        .status(second.batch_id)
        .await
        .expect("status")
        .expect("batch");
    assert_eq!(during.produced, 0, "produced with the broker down?");
    drop(guard); // starts tansu again

    for b in [first.batch_id, second.batch_id] {
        let s = pipeline
            .wait_produced(b, Duration::from_secs(180))
            .await
            .expect("produced after the broker came back");
        assert_eq!(s.produced, s.staged);
    }
    pipeline.stop().await;
    common::assert_exactly_once(&cfg, 7500).await;
    common::drop_tables(&cfg).await;
}
