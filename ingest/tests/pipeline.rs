//! API source → Postgres outbox → Kafka, against the real Postgres and tansu
//! and a local fixture server replaying recorded randomuser.me responses.

mod common;

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::fixture::{self, ERROR_BODY, PAGE1, PAGE2, Reply, TRUNCATED};
use common::{assert_exactly_once, topic_messages};
use ember_ingest::ingest::{IngestRequest, SourceKind};
use ember_ingest::pipeline::Pipeline;
use ember_ingest::record::{ApiResponse, User};
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_batch_with_errors_arrives_exactly_once() {
    let topic = common::create_topic("api");
    // 503, a good page, a truncated body, the API's JSON error body, a 429,
    // then recorded pages alternately.
    let (url, fx) = fixture::serve(
        vec![
            Reply::Status(503, "<html>Service Unavailable</html>", None),
            Reply::Body(PAGE1),
            Reply::Body(TRUNCATED),
            Reply::Body(ERROR_BODY),
            Reply::Status(429, "Too Many Requests", Some(0)),
        ],
        vec![Reply::Body(PAGE2), Reply::Body(PAGE1)],
    )
    .await;
    let cfg = common::config(&topic, &url);
    let pipeline = Pipeline::start(cfg.clone()).await.expect("pipeline");
    let summary = pipeline
        .ingestor
        .ingest(IngestRequest {
            count: 23,
            source: SourceKind::Api,
            seed: None,
        })
        .await
        .expect("ingest");
    assert_eq!(summary.state, "staged", "{summary:?}");
    assert_eq!((summary.fetched, summary.staged), (23, 23));
    let status = pipeline
        .wait_produced(summary.batch_id, Duration::from_secs(60))
        .await
        .expect("produced");
    assert_eq!((status.staged, status.produced), (23, 23));
    assert_eq!(status.state, "produced");

    let m = &pipeline.ingestor.metrics;
    assert_eq!(m.api_malformed.load(Ordering::Relaxed), 2);
    assert_eq!(m.api_http_errors.load(Ordering::Relaxed), 2);
    assert_eq!(m.api_retries.load(Ordering::Relaxed), 4);
    // Pages of 5 (page_size), the last asks only for the 3 still missing.
    assert_eq!(fx.asked().last(), Some(&3));
    pipeline.stop().await;

    assert_exactly_once(&cfg, 23).await;

    // The mapped fields match the recorded responses, in order: the first
    // good page is PAGE1, then PAGE2, PAGE1, ...
    let rows = common::staged_rows(&cfg, Some(summary.batch_id)).await;
    let p1: ApiResponse = serde_json::from_str(PAGE1).expect("page1");
    let p2: ApiResponse = serde_json::from_str(PAGE2).expect("page2");
    let pages = [&p1, &p2, &p1, &p2, &p1];
    for (i, (id, record, _, _)) in rows.iter().enumerate() {
        let api_user = &pages[i / 5].results[i % 5];
        let want = User::from_api(api_user, *id);
        let got: User = serde_json::from_value(record.clone()).expect("user");
        assert_eq!(got, want);
    }
    // post_code: number → string, string kept.
    let first: User = serde_json::from_value(rows[0].1.clone()).expect("user");
    assert_eq!(first.post_code, "63104");
    assert_eq!(
        first.address,
        "8929 Valwood Pkwy, Billings, Michigan, United States"
    );
    let second: User = serde_json::from_value(rows[1].1.clone()).expect("user");
    assert_eq!(second.post_code, "EX6 3LY");
    common::drop_tables(&cfg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_that_never_recovers_fails_the_batch_cleanly() {
    let topic = common::create_topic("apifail");
    // One good page, then only malformed answers: the good page is kept
    // and produced, the batch is reported failed with the reason.
    let (url, _fx) = fixture::serve(
        vec![Reply::Body(PAGE1)],
        vec![
            Reply::Body(TRUNCATED),
            Reply::Status(502, "Bad Gateway", None),
        ],
    )
    .await;
    let mut cfg = common::config(&topic, &url);
    cfg.api.attempts = 3;
    let pipeline = Pipeline::start(cfg.clone()).await.expect("pipeline");
    let summary = pipeline
        .ingestor
        .ingest(IngestRequest {
            count: 12,
            source: SourceKind::Api,
            seed: None,
        })
        .await
        .expect("ingest returns a summary, not an error");
    assert_eq!(summary.state, "failed");
    assert_eq!(summary.staged, 5);
    let err = summary.error.clone().expect("error");
    assert!(err.contains("3 attempts"), "{err}");
    let status = pipeline
        .wait_produced(summary.batch_id, Duration::from_secs(60))
        .await
        .expect("staged rows produced");
    assert_eq!((status.state.as_str(), status.produced), ("failed", 5));
    pipeline.stop().await;
    assert_exactly_once(&cfg, 5).await;
    common::drop_tables(&cfg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_batch_is_reproducible_and_produced() {
    let topic = common::create_topic("gen");
    let cfg = common::config(&topic, "http://127.0.0.1:9/unused");
    let pipeline = Pipeline::start(cfg.clone()).await.expect("pipeline");
    let mut batches = Vec::new();
    for _ in 0..2 {
        let s = pipeline
            .ingestor
            .ingest(IngestRequest {
                count: 40,
                source: SourceKind::Generate,
                seed: Some(77),
            })
            .await
            .expect("ingest");
        assert_eq!(s.staged, 40);
        pipeline
            .wait_produced(s.batch_id, Duration::from_secs(60))
            .await
            .expect("produced");
        batches.push(s.batch_id);
    }
    pipeline.stop().await;
    let a = common::staged_rows(&cfg, Some(batches[0])).await;
    let b = common::staged_rows(&cfg, Some(batches[1])).await;
    let records = |rows: &[(Uuid, serde_json::Value, Option<i32>, Option<i64>)]| {
        rows.iter().map(|r| r.1.clone()).collect::<Vec<_>>()
    };
    assert_eq!(records(&a), records(&b), "same seed, same users");
    // The same users twice: each staged row produced once (80 messages).
    let msgs = topic_messages(&topic).await;
    assert_eq!(msgs.len(), 80);
    let offsets: HashSet<(i32, i64)> = a
        .iter()
        .chain(&b)
        .map(|r| (r.2.unwrap_or(-1), r.3.unwrap_or(-1)))
        .collect();
    assert_eq!(offsets.len(), 80);
    common::drop_tables(&cfg).await;
}
