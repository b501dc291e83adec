//! Helpers shared by the integration tests: the servers from `scripts/stack`
//! (EMBER_KAFKA, EMBER_PG, EMBER_TANSU), unique topics, reading a topic back.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

pub fn brokers() -> String {
    std::env::var("EMBER_KAFKA").unwrap_or_else(|_| "127.0.0.1:9092".to_string())
}

pub fn tansu() -> String {
    std::env::var("EMBER_TANSU").unwrap_or_else(|_| {
        let home = std::env::var("HOME").unwrap_or_else(|_| "/root".to_string());
        format!("{home}/.cache/ember/tools/bin/tansu")
    })
}

pub fn hex16() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Creates `ingest_<purpose>_<16 hex>` with 4 partitions. Topics are never
/// deleted: tansu deletes every topic whose name starts with the deleted one.
pub fn create_topic(purpose: &str) -> String {
    let name = format!("ingest_{purpose}_{}", hex16());
    create_topic_named(&name);
    name
}

pub fn create_topic_named(name: &str) {
    let out = Command::new(tansu())
        .args(["topic", "create", name, "--partitions", "4", "--broker"])
        .arg(format!("tcp://{}", brokers()))
        .output()
        .expect("run tansu topic create");
    assert!(
        out.status.success(),
        "tansu topic create {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[derive(Debug, Clone)]
pub struct Msg {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
}

/// Every message of `topic` (4 partitions), read with assign + seek from 0 to
/// the high watermark (no group coordination: tansu's group admin is partial).
pub fn read_topic(topic: &str) -> Vec<Msg> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", format!("ingest_test_{}", hex16()))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .expect("consumer");
    let mut highs = HashMap::new();
    let mut tpl = TopicPartitionList::new();
    for p in 0..4 {
        let (_, high) = consumer
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .expect("watermarks");
        highs.insert(p, high);
        if high > 0 {
            tpl.add_partition_offset(topic, p, Offset::Offset(0))
                .expect("add partition");
        }
    }
    let mut out = Vec::new();
    if tpl.count() == 0 {
        return out;
    }
    consumer.assign(&tpl).expect("assign");
    let mut next: HashMap<i32, i64> = HashMap::new();
    let done = |next: &HashMap<i32, i64>| {
        highs
            .iter()
            .all(|(p, h)| *h == 0 || next.get(p).copied().unwrap_or(0) >= *h)
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done(&next) {
        assert!(Instant::now() < deadline, "timed out reading {topic}");
        if let Some(r) = consumer.poll(Duration::from_millis(200)) {
            let m = r.expect("consume");
            if m.offset() >= highs[&m.partition()] {
                continue;
            }
            next.insert(m.partition(), m.offset() + 1);
            out.push(Msg {
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().map(<[u8]>::to_vec),
                value: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
            });
        }
    }
    out
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ember-ingest")
}

pub mod fixture;

use ember_ingest::api::ApiOptions;
use ember_ingest::kafka::Compression;
use ember_ingest::pipeline::Config;
use ember_ingest::record::USER_FIELDS;
use uuid::Uuid;

/// A pipeline config with its own staging table, for `topic`.
pub fn config(topic: &str, api_url: &str) -> Config {
    Config {
        pg_url: ember_ingest::outbox::pg_url_from_env(),
        staging_table: format!("ingest_t_{}", hex16()),
        brokers: brokers(),
        topic: topic.to_string(),
        compression: Compression::Lz4,
        message_timeout: Duration::from_secs(120),
        idempotence: false,
        max_lead: ember_ingest::pipeline::DEFAULT_MAX_LEAD,
        api: ApiOptions {
            url: api_url.to_string(),
            timeout: Duration::from_secs(5),
            attempts: 6,
            backoff: Duration::from_millis(10),
            backoff_max: Duration::from_millis(200),
            page_size: 5,
        },
    }
}

/// Rows of a staging table: (record_id, record, partition, offset).
pub async fn staged_rows(
    cfg: &Config,
    batch: Option<uuid::Uuid>,
) -> Vec<(uuid::Uuid, serde_json::Value, Option<i32>, Option<i64>)> {
    let client = ember_ingest::outbox::connect(&cfg.pg_url)
        .await
        .expect("postgres");
    client
        .query(
            &format!(
                "SELECT s.record_id, s.record, p.kafka_partition, p.kafka_offset
                 FROM {0} s LEFT JOIN {0}_produced p USING (seq)
                 WHERE ($1::uuid IS NULL OR s.batch_id = $1) ORDER BY s.seq",
                cfg.staging_table
            ),
            &[&batch],
        )
        .await
        .expect("query staging")
        .into_iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
}

pub async fn topic_messages(topic: &str) -> Vec<Msg> {
    let t = topic.to_string();
    tokio::task::spawn_blocking(move || read_topic(&t))
        .await
        .expect("reader thread")
}

/// Every staged row is on the topic exactly once, keyed by its id, at the
/// partition/offset recorded in the row, with the stored value.
pub async fn assert_exactly_once(cfg: &Config, expected_rows: usize) {
    let rows = staged_rows(cfg, None).await;
    assert_eq!(rows.len(), expected_rows, "rows in staging");
    let ids: HashSet<Uuid> = rows.iter().map(|r| r.0).collect();
    assert_eq!(ids.len(), rows.len(), "a record staged twice");
    let offsets: HashSet<(i32, i64)> = rows
        .iter()
        .map(|r| (r.2.expect("partition"), r.3.expect("offset")))
        .collect();
    assert_eq!(offsets.len(), rows.len(), "two rows share an offset");

    let msgs = topic_messages(&cfg.topic).await;
    let mut by_key: HashMap<String, Vec<&Msg>> = HashMap::new();
    for m in &msgs {
        let k = String::from_utf8(m.key.clone().expect("key")).expect("utf8 key");
        by_key.entry(k).or_default().push(m);
    }
    assert_eq!(msgs.len(), rows.len(), "messages on the topic");
    for (id, record, p, o) in &rows {
        let found = by_key.get(&id.to_string()).expect("row on topic");
        assert_eq!(
            found.len(),
            1,
            "record {id} on the topic {} times",
            found.len()
        );
        let m = found[0];
        assert_eq!((Some(m.partition), Some(m.offset)), (*p, *o));
        let v: serde_json::Value = serde_json::from_slice(&m.value).expect("json value");
        assert_eq!(&v, record);
        assert_eq!(v["id"], id.to_string());
        let obj = v.as_object().expect("object");
        assert_eq!(obj.len(), 12);
        for f in USER_FIELDS {
            assert!(obj[f].is_string(), "{f} is not a string in {v}");
        }
    }
}

/// Drops a test's staging tables (Postgres only; topics are never deleted).
/// Called at the end of a passing test; a failing one leaves them to inspect.
pub async fn drop_tables(cfg: &Config) {
    drop_table_named(&cfg.staging_table).await;
}

pub async fn drop_table_named(table: &str) {
    let client = ember_ingest::outbox::connect(&ember_ingest::outbox::pg_url_from_env())
        .await
        .expect("postgres");
    ember_ingest::outbox::drop_tables(&client, &ember_ingest::outbox::Tables::new(table))
        .await
        .expect("drop staging tables");
}
