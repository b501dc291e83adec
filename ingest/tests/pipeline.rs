//! API source → Postgres outbox → Kafka, against the real Postgres and tansu
//! and a local fixture server replaying recorded randomuser.me responses.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::fixture::{self, ERROR_BODY, PAGE1, PAGE2, Reply, TRUNCATED};
use common::{assert_exactly_once, topic_messages};
use ember_ingest::api::ApiSource;
use ember_ingest::ingest::{IngestRequest, Ingestor, SourceKind};
use ember_ingest::metrics::Metrics;
use ember_ingest::outbox::{self, Tables};
use ember_ingest::pipeline::{Config, Pipeline};
use ember_ingest::producer::Relay;
use ember_ingest::record::{ApiResponse, User};
use tokio::sync::Notify;
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
    // The staged text is sent as is: fields in the record's order.
    for m in &msgs {
        let u: User = serde_json::from_slice(&m.value).expect("user");
        assert_eq!(m.value, serde_json::to_vec(&u).expect("json"));
    }
    common::drop_tables(&cfg).await;
}

/// Creates `cfg`'s tables and builds an ingestor on them, without the
/// pipeline's relay (tests that stage on their own terms); with a
/// connection for the test's own queries.
async fn ingestor_with_schema(cfg: &Config, max_lead: u64) -> (tokio_postgres::Client, Ingestor) {
    let tables = Tables::new(&cfg.staging_table);
    let mut client = outbox::connect(&cfg.pg_url).await.expect("postgres");
    outbox::ensure_schema(&mut client, &tables)
        .await
        .expect("schema");
    let metrics = Arc::new(Metrics::default());
    let ingestor = Ingestor {
        pg_url: cfg.pg_url.clone(),
        tables,
        api: ApiSource::new(cfg.api.clone(), metrics.clone()).expect("api"),
        metrics,
        notify: Arc::new(Notify::new()),
        max_lead,
        handoff: None,
    };
    (client, ingestor)
}

/// Staging stays within `max_lead` rows of a relay that is producing the
/// batch, so it does not take the CPU the relay and the broker need. The
/// relay here is slowed on purpose (its producer lingers 200 ms per send), so
/// staging without the limit runs thousands of rows ahead of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staging_keeps_within_its_lead_of_a_producing_relay() {
    let topic = common::create_topic("lead");
    let mut cfg = common::config(&topic, "http://127.0.0.1:9/unused");
    cfg.api.page_size = 500;
    let (client, ingestor) = ingestor_with_schema(&cfg, 2000).await;
    let tables = ingestor.tables.clone();
    let (metrics, notify) = (ingestor.metrics.clone(), ingestor.notify.clone());
    let relay = Relay {
        pg_url: cfg.pg_url.clone(),
        tables: tables.clone(),
        topic: topic.clone(),
        producer: rdkafka::ClientConfig::new()
            .set("bootstrap.servers", common::brokers())
            .set("linger.ms", "200")
            .create()
            .expect("producer"),
        metrics,
        notify,
        claim_size: 500,
        poll_interval: Duration::from_millis(200),
        handoff: Arc::default(),
    };
    let (stop_relay, stopped) = tokio::sync::watch::channel(false);
    let relay_task = tokio::spawn(relay.run(stopped));

    // Sample the batch's lead (staged − produced) while it is staged.
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (done, batches) = (done.clone(), tables.batches.clone());
        tokio::spawn(async move {
            let mut max_lead = 0i64;
            while !done.load(Ordering::Relaxed) {
                if let Some(r) = client
                    .query_opt(&format!("SELECT fetched, produced FROM {batches}"), &[])
                    .await
                    .expect("sample")
                {
                    let (fetched, produced): (i32, i64) = (r.get(0), r.get(1));
                    max_lead = max_lead.max(i64::from(fetched) - produced);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            max_lead
        })
    };
    let s = ingestor
        .ingest(IngestRequest {
            count: 10_000,
            source: SourceKind::Generate,
            seed: Some(5),
        })
        .await
        .expect("ingest");
    done.store(true, Ordering::Relaxed);
    let max_lead = sampler.await.expect("sampler");
    assert_eq!(s.staged, 10_000);
    eprintln!("largest lead of staging over the relay: {max_lead} rows");
    assert!(
        max_lead <= 2000 + 500,
        "staged {max_lead} rows ahead of the relay (limit 2000, pages of 500)"
    );
    let status = outbox::wait_produced(&cfg.pg_url, &tables, s.batch_id, Duration::from_secs(120))
        .await
        .expect("produced");
    assert_eq!(status.state, "produced");
    let _ = stop_relay.send(true);
    relay_task.await.expect("relay");
    assert_exactly_once(&cfg, 10_000).await;
    common::drop_tables(&cfg).await;
}

/// A staging table an earlier version created (records as jsonb, delivery
/// columns on the record's row, batches without the produced counter) keeps
/// working: ensure_schema moves its deliveries to the queue and results
/// tables and adds the counter, the relay sends the pending row, the
/// produced row keeps its recorded offset, and the old batch's status is
/// counted from its rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staging_table_of_an_earlier_version_keeps_working() {
    let topic = common::create_topic("legacy");
    let cfg = common::config(&topic, "http://127.0.0.1:9/unused");
    let (s, b) = (&cfg.staging_table, format!("{}_batches", cfg.staging_table));
    let client = outbox::connect(&cfg.pg_url).await.expect("postgres");
    client
        .batch_execute(&format!(
            "CREATE TABLE {b} (id uuid PRIMARY KEY, source text NOT NULL,
                requested integer NOT NULL, seed bigint, fetched integer NOT NULL DEFAULT 0,
                state text NOT NULL, error text,
                created_at timestamptz NOT NULL DEFAULT now(),
                updated_at timestamptz NOT NULL DEFAULT now());
             CREATE TABLE {s} (seq bigserial PRIMARY KEY, batch_id uuid NOT NULL,
                record_id uuid NOT NULL, record jsonb NOT NULL,
                fetched_at timestamptz NOT NULL, staged_at timestamptz NOT NULL DEFAULT now(),
                produced_at timestamptz, topic text, kafka_partition integer,
                kafka_offset bigint, replay_count integer NOT NULL DEFAULT 0,
                replayed_at timestamptz);"
        ))
        .await
        .expect("old schema");
    let old = Uuid::new_v4();
    let mut users = ember_ingest::generator::Generator::new(5);
    let (done, pending) = (users.next_user(), users.next_user());
    client
        .execute(
            &format!(
                "INSERT INTO {b} (id, source, requested, fetched, state)
                 VALUES ($1, 'generate', 2, 2, 'staged')"
            ),
            &[&old],
        )
        .await
        .expect("old batch");
    for (u, produced) in [(&done, true), (&pending, false)] {
        let id = Uuid::parse_str(&u.id).expect("uuid");
        let record = serde_json::to_value(u).expect("json");
        client
            .execute(
                &format!(
                    "INSERT INTO {s} (batch_id, record_id, record, fetched_at, produced_at,
                        topic, kafka_partition, kafka_offset)
                     VALUES ($1, $2, $3, now(), CASE WHEN $4 THEN now() END,
                        CASE WHEN $4 THEN 'elsewhere' END, CASE WHEN $4 THEN 0 END,
                        CASE WHEN $4 THEN 99 END)"
                ),
                &[&old, &id, &record, &produced],
            )
            .await
            .expect("old row");
    }

    let pipeline = Pipeline::start(cfg.clone()).await.expect("pipeline");
    let status = pipeline
        .wait_produced(old, Duration::from_secs(60))
        .await
        .expect("the old batch's pending row is produced");
    assert_eq!((status.staged, status.produced), (2, 2));
    // A new batch on the migrated table uses the counter.
    let s_new = pipeline
        .ingestor
        .ingest(IngestRequest {
            count: 7,
            source: SourceKind::Generate,
            seed: Some(9),
        })
        .await
        .expect("ingest");
    let new_status = pipeline
        .wait_produced(s_new.batch_id, Duration::from_secs(60))
        .await
        .expect("produced");
    assert_eq!((new_status.staged, new_status.produced), (7, 7));
    pipeline.stop().await;

    let counter: Option<i64> = client
        .query_one(&format!("SELECT produced FROM {b} WHERE id = $1"), &[&old])
        .await
        .expect("old batch")
        .get(0);
    assert_eq!(counter, None, "the old batch is counted from its rows");
    let old_rows = common::staged_rows(&cfg, Some(old)).await;
    let done_id = Uuid::parse_str(&done.id).expect("uuid");
    let kept = old_rows.iter().find(|r| r.0 == done_id).expect("old row");
    assert_eq!(
        (kept.2, kept.3),
        (Some(0), Some(99)),
        "recorded offset kept"
    );
    let msgs = topic_messages(&topic).await;
    assert_eq!(msgs.len(), 8, "the pending old row and the 7 new ones");
    let sent: User = msgs
        .iter()
        .find(|m| m.key.as_deref() == Some(pending.id.as_bytes()))
        .map(|m| serde_json::from_slice(&m.value).expect("user"))
        .expect("the old pending row is on the topic");
    assert_eq!(sent, pending);
    common::drop_tables(&cfg).await;
}

/// Deliveries that fail (the topic does not exist yet, so each message times
/// out) put their rows back on the queue: none is recorded produced, and
/// all are sent once the topic exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_deliveries_stay_pending_until_sent() {
    let topic = format!("ingest_late_{}", common::hex16());
    let mut cfg = common::config(&topic, "http://127.0.0.1:9/unused");
    cfg.message_timeout = Duration::from_secs(1);
    let pipeline = Pipeline::start(cfg.clone()).await.expect("pipeline");
    let batch = pipeline
        .ingestor
        .ingest(IngestRequest {
            count: 30,
            source: SourceKind::Generate,
            seed: Some(3),
        })
        .await
        .expect("ingest");
    let metrics = pipeline.ingestor.metrics.clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    while metrics.produce_errors.load(Ordering::Relaxed) == 0 {
        assert!(Instant::now() < deadline, "no delivery failed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let tables = Tables::new(&cfg.staging_table);
    let client = outbox::connect(&cfg.pg_url).await.expect("postgres");
    // Between cycles every row is back on the queue (a cycle in flight holds
    // some of them, hence the retries).
    let mut pending = 0;
    for _ in 0..50 {
        pending = outbox::backlog(&client, &tables).await.expect("backlog");
        if pending == 30 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(pending, 30, "failed rows back on the queue");
    let status = pipeline
        .status(batch.batch_id)
        .await
        .expect("status")
        .expect("batch");
    assert_eq!(status.produced, 0);
    assert!(
        common::staged_rows(&cfg, None)
            .await
            .iter()
            .all(|r| r.2.is_none())
    );

    common::create_topic_named(&topic);
    let s = pipeline
        .wait_produced(batch.batch_id, Duration::from_secs(120))
        .await
        .expect("produced once the topic exists");
    assert_eq!(s.produced, 30);
    pipeline.stop().await;
    common::assert_exactly_once(&cfg, 30).await;
    common::drop_tables(&cfg).await;
}

/// Rows put back on the queue become ranges of consecutive seqs, at most
/// `RANGE_ROWS` each, in whatever order they come: the relay claims whole
/// ranges, so a range must never cover a seq that is not pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requeued_seqs_are_queued_as_runs_of_consecutive_seqs() {
    let cfg = common::config("unused", "http://127.0.0.1:9/unused");
    let tables = Tables::new(&cfg.staging_table);
    let mut client = outbox::connect(&cfg.pg_url).await.expect("postgres");
    outbox::ensure_schema(&mut client, &tables)
        .await
        .expect("schema");
    let mut seqs: Vec<i64> = vec![6, 2, 5, 1, 3];
    seqs.extend((9..=1200).rev());
    outbox::requeue(&client, &tables, &seqs)
        .await
        .expect("requeue");
    let ranges: Vec<(i64, i64)> = client
        .query(
            &format!("SELECT lo, hi FROM {} ORDER BY lo", tables.queue),
            &[],
        )
        .await
        .expect("queue")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    // 500 rows a range at most, counted over the seqs in order: 1–3 and
    // 5–6 are the first 5, so 9–503 ends the first 500.
    assert_eq!(
        ranges,
        vec![(1, 3), (5, 6), (9, 503), (504, 1003), (1004, 1200)]
    );
    assert_eq!(
        outbox::backlog(&client, &tables).await.expect("backlog"),
        1197
    );
    common::drop_tables(&cfg).await;
}

/// Two batches staged at the same moment into one table: each page is
/// queued as one range holding only its rows (stagers take turns), and the
/// relay sends every row exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_batches_are_queued_exactly() {
    let topic = common::create_topic("concurrent");
    let mut cfg = common::config(&topic, "http://127.0.0.1:9/unused");
    cfg.api.page_size = 500;
    let (client, ingestor) = ingestor_with_schema(&cfg, 0).await;
    let tables = ingestor.tables.clone();
    let req = |seed| IngestRequest {
        count: 10_000,
        source: SourceKind::Generate,
        seed: Some(seed),
    };
    let (a, b) = tokio::join!(ingestor.ingest(req(1)), ingestor.ingest(req(2)));
    let (a, b) = (a.expect("batch a"), b.expect("batch b"));
    assert_eq!((a.staged, b.staged), (10_000, 10_000));

    // Every range: all its seqs staged, of one batch, at most 500.
    let ranges = client
        .query(
            &format!(
                "SELECT q.lo, q.hi, count(s.seq), count(DISTINCT s.batch_id)
                 FROM {} q JOIN {} s ON s.seq BETWEEN q.lo AND q.hi GROUP BY q.lo, q.hi",
                tables.queue, tables.staging
            ),
            &[],
        )
        .await
        .expect("ranges");
    let mut queued = 0;
    for r in &ranges {
        let (lo, hi, rows, batches): (i64, i64, i64, i64) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        assert_eq!(rows, hi - lo + 1, "range {lo}–{hi} covers a seq not staged");
        assert_eq!(batches, 1, "range {lo}–{hi} spans two batches");
        assert!(rows <= outbox::RANGE_ROWS, "range {lo}–{hi} too long");
        queued += rows;
    }
    assert_eq!(queued, 20_000);
    // Stagers take turns per page, so each page of 500 is one range.
    assert_eq!(
        ranges.len(),
        40,
        "40 pages, queued as {} ranges",
        ranges.len()
    );

    let pipeline = Pipeline::start(cfg.clone()).await.expect("pipeline");
    for batch in [a.batch_id, b.batch_id] {
        let s = pipeline
            .wait_produced(batch, Duration::from_secs(120))
            .await
            .expect("produced");
        assert_eq!(s.produced, 10_000);
    }
    // Staged by another ingestor than the relay's: read back from Postgres.
    let m = &pipeline.relay.metrics;
    assert_eq!(
        (
            m.records_read_back.load(Ordering::Relaxed),
            m.records_handed_off.load(Ordering::Relaxed)
        ),
        (20_000, 0)
    );
    pipeline.stop().await;
    assert_exactly_once(&cfg, 20_000).await;
    // Where each row went is kept per run of consecutive seqs: every run's
    // arrays cover exactly its seqs, at most a queue range long.
    let runs = client
        .query(
            &format!(
                "SELECT lo, hi, cardinality(partitions), cardinality(offsets)
                 FROM {}_produced_runs",
                cfg.staging_table
            ),
            &[],
        )
        .await
        .expect("runs");
    let mut covered = 0;
    for r in &runs {
        let (lo, hi, parts, offs): (i64, i64, i32, i32) = (r.get(0), r.get(1), r.get(2), r.get(3));
        assert_eq!(
            (hi - lo + 1, hi - lo + 1),
            (i64::from(parts), i64::from(offs))
        );
        assert!(hi - lo < outbox::RANGE_ROWS, "run {lo}–{hi} too long");
        covered += hi - lo + 1;
    }
    assert_eq!(covered, 20_000);
    assert!(runs.len() <= 80, "{} runs for 40 pages", runs.len());
    // The arrays stay inline: nothing was compressed into the TOAST table.
    let toast: i64 = client
        .query_one(
            "SELECT pg_relation_size(reltoastrelid) FROM pg_class WHERE oid = to_regclass($1)",
            &[&format!("{}_produced_runs", cfg.staging_table)],
        )
        .await
        .expect("toast size")
        .get(0);
    assert_eq!(toast, 0, "runs were moved to the TOAST table");
    common::drop_tables(&cfg).await;
}

/// The previous version queued each pending seq on its own row in
/// `<table>_pending`. At start its queue is moved to ranges (a produced row
/// between two pending ones splits them) and dropped, and only the pending
/// rows are sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_of_the_previous_version_is_moved_to_ranges() {
    let topic = common::create_topic("seqqueue");
    let cfg = common::config(&topic, "http://127.0.0.1:9/unused");
    let s = &cfg.staging_table;
    let client = outbox::connect(&cfg.pg_url).await.expect("postgres");
    client
        .batch_execute(&format!(
            "CREATE TABLE {s}_batches (id uuid PRIMARY KEY, source text NOT NULL,
                requested integer NOT NULL, seed bigint, fetched integer NOT NULL DEFAULT 0,
                state text NOT NULL, error text,
                created_at timestamptz NOT NULL DEFAULT now(),
                updated_at timestamptz NOT NULL DEFAULT now(), produced bigint DEFAULT 0);
             CREATE TABLE {s} (seq bigserial PRIMARY KEY, batch_id uuid NOT NULL,
                record_id uuid NOT NULL, record json NOT NULL,
                fetched_at timestamptz NOT NULL, staged_at timestamptz NOT NULL DEFAULT now(),
                replay_count integer NOT NULL DEFAULT 0, replayed_at timestamptz);
             CREATE TABLE {s}_pending (seq bigint PRIMARY KEY);
             CREATE TABLE {s}_produced (seq bigint PRIMARY KEY, topic text NOT NULL,
                kafka_partition integer NOT NULL, kafka_offset bigint NOT NULL,
                produced_at timestamptz NOT NULL DEFAULT now());"
        ))
        .await
        .expect("previous schema");
    let batch = Uuid::new_v4();
    client
        .execute(
            &format!(
                "INSERT INTO {s}_batches (id, source, requested, fetched, state, produced)
                 VALUES ($1, 'generate', 3, 3, 'staged', 1)"
            ),
            &[&batch],
        )
        .await
        .expect("batch");
    let mut users = ember_ingest::generator::Generator::new(11);
    let users: Vec<User> = (0..3).map(|_| users.next_user()).collect();
    for u in &users {
        client
            .execute(
                &format!(
                    "INSERT INTO {s} (batch_id, record_id, record, fetched_at)
                     VALUES ($1, $2, $3::text::json, now())"
                ),
                &[
                    &batch,
                    &Uuid::parse_str(&u.id).expect("uuid"),
                    &serde_json::to_string(u).expect("json"),
                ],
            )
            .await
            .expect("row");
    }
    // The middle row was produced; the first and the last are pending.
    client
        .batch_execute(&format!(
            "INSERT INTO {s}_pending SELECT seq FROM {s} WHERE seq <> (SELECT min(seq) + 1 FROM {s});
             INSERT INTO {s}_produced SELECT min(seq) + 1, 'elsewhere', 0, 99 FROM {s};"
        ))
        .await
        .expect("queue");

    let pipeline = Pipeline::start(cfg.clone()).await.expect("pipeline");
    let status = pipeline
        .wait_produced(batch, Duration::from_secs(60))
        .await
        .expect("the pending rows are produced");
    assert_eq!((status.staged, status.produced), (3, 3));
    pipeline.stop().await;
    let gone: bool = client
        .query_one("SELECT to_regclass($1) IS NULL", &[&format!("{s}_pending")])
        .await
        .expect("regclass")
        .get(0);
    assert!(gone, "the previous queue is dropped");
    // The previous per-seq produced table is moved into runs and read
    // through the view of the same name.
    let kind: i8 = client
        .query_one(
            "SELECT relkind FROM pg_class WHERE oid = to_regclass($1)",
            &[&format!("{s}_produced")],
        )
        .await
        .expect("relkind")
        .get(0);
    assert_eq!(kind as u8, b'v', "{s}_produced is a view");
    let old_produced = client
        .query_one(
            &format!(
                "SELECT topic, kafka_partition, kafka_offset FROM {s}_produced
                 WHERE seq = (SELECT min(seq) + 1 FROM {s})"
            ),
            &[],
        )
        .await
        .expect("the produced row");
    assert_eq!(
        (
            old_produced.get::<_, String>(0),
            old_produced.get::<_, i32>(1),
            old_produced.get::<_, i64>(2)
        ),
        ("elsewhere".to_string(), 0, 99)
    );
    let mut keys: Vec<Vec<u8>> = topic_messages(&topic)
        .await
        .into_iter()
        .map(|m| m.key.expect("key"))
        .collect();
    keys.sort();
    let mut want = vec![
        users[0].id.as_bytes().to_vec(),
        users[2].id.as_bytes().to_vec(),
    ];
    want.sort();
    assert_eq!(
        keys, want,
        "the two pending rows, once each, and not the produced one"
    );
    common::drop_tables(&cfg).await;
}

/// A runs table the previous version created (arrays compressed and moved
/// to the TOAST table by default) keeps its arrays inline from then on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_table_of_the_previous_version_keeps_its_arrays_inline() {
    let topic = common::create_topic("plainruns");
    let cfg = common::config(&topic, "http://127.0.0.1:9/unused");
    let s = &cfg.staging_table;
    let mut client = outbox::connect(&cfg.pg_url).await.expect("postgres");
    client
        .batch_execute(&format!(
            "CREATE TABLE {s}_produced_runs (lo bigint PRIMARY KEY, hi bigint NOT NULL,
                 topic text NOT NULL, partitions integer[] NOT NULL, offsets bigint[] NOT NULL,
                 produced_at timestamptz NOT NULL DEFAULT now());"
        ))
        .await
        .expect("previous runs table");
    let storage = format!(
        "SELECT string_agg(attstorage::text, '' ORDER BY attname) FROM pg_attribute
         WHERE attrelid = to_regclass('{s}_produced_runs')
         AND attname IN ('topic', 'partitions', 'offsets')"
    );
    let storage_of = async |client: &tokio_postgres::Client| -> String {
        client
            .query_one(&storage, &[])
            .await
            .expect("storage")
            .get(0)
    };
    assert_eq!(storage_of(&client).await, "xxx", "extended, as created");
    outbox::ensure_schema(&mut client, &outbox::Tables::new(s))
        .await
        .expect("schema");
    assert_eq!(storage_of(&client).await, "ppp", "plain after the upgrade");
    common::drop_tables(&cfg).await;
}

/// ember-ingest's sessions run with JIT off (Postgres compiled each claim
/// with LLVM once the staging table grew), keeping options from the URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_run_without_jit() {
    let base = outbox::pg_url_from_env();
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-c%20work_mem%3D8MB");
    let client = outbox::connect(&url).await.expect("postgres");
    for (setting, want) in [("jit", "off"), ("work_mem", "8MB")] {
        let got: String = client
            .query_one(&format!("SHOW {setting}"), &[])
            .await
            .expect("show")
            .get(0);
        assert_eq!(got, want, "{setting}");
    }
}
