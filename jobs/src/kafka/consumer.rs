//! Kafka consumers for offset-range reads and watermark look-ups.
//!
//! A fresh consumer costs a connection and a metadata round trip, so
//! executors keep them across batches in a small pool and re-assign (seek) per
//! range. Consumers are assign-only: no group subscription and no committed
//! offsets; the job's checkpoint owns the offsets, as in Spark.

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;
use std::time::Duration;

use parking_lot::Mutex;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaResult;

use super::ranges::{PartitionOffsets, TopicPartition};

const POOL_MAX_PER_KEY: usize = 16;

static POOL: LazyLock<Mutex<HashMap<String, Vec<BaseConsumer>>>> = LazyLock::new(Default::default);

/// librdkafka settings for Ember's range reads; user `kafka.*` options win.
pub fn consumer_config(
    bootstrap: &str,
    job: &str,
    options: &BTreeMap<String, String>,
) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap)
        // librdkafka refuses an assign-only consumer without a group id.
        .set("group.id", format!("ember-{job}"))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        // Micro-batches want the first record fast, not a full fetch window.
        .set("fetch.wait.max.ms", "10")
        .set("socket.keepalive.enable", "true");
    for (k, v) in options {
        cfg.set(k, v);
    }
    cfg
}

fn pool_key(bootstrap: &str, job: &str, options: &BTreeMap<String, String>) -> String {
    format!("{bootstrap}|{job}|{options:?}")
}

/// A pooled consumer, returned to the pool on drop unless it failed.
pub struct PooledConsumer {
    key: String,
    consumer: Option<BaseConsumer>,
    pub broken: bool,
}

impl PooledConsumer {
    pub fn get(
        bootstrap: &str,
        job: &str,
        options: &BTreeMap<String, String>,
    ) -> KafkaResult<Self> {
        let key = pool_key(bootstrap, job, options);
        let pooled = POOL.lock().get_mut(&key).and_then(|v| v.pop());
        let consumer = match pooled {
            Some(c) => c,
            None => consumer_config(bootstrap, job, options).create()?,
        };
        Ok(Self {
            key,
            consumer: Some(consumer),
            broken: false,
        })
    }

    pub fn consumer(&self) -> &BaseConsumer {
        self.consumer.as_ref().expect("consumer present until drop")
    }
}

impl Drop for PooledConsumer {
    fn drop(&mut self) {
        if self.broken {
            return;
        }
        if let Some(c) = self.consumer.take() {
            let _ = c.unassign();
            let mut pool = POOL.lock();
            let v = pool.entry(self.key.clone()).or_default();
            if v.len() < POOL_MAX_PER_KEY {
                v.push(c);
            }
        }
    }
}

/// Partitions of `topics` with their low and high watermarks. Blocking: call
/// from a blocking thread.
pub fn watermarks(
    consumer: &BaseConsumer,
    topics: &[String],
    timeout: Duration,
) -> Result<(PartitionOffsets, PartitionOffsets), String> {
    let mut low = PartitionOffsets::new();
    let mut high = PartitionOffsets::new();
    for topic in topics {
        let md = consumer
            .fetch_metadata(Some(topic), timeout)
            .map_err(|e| format!("cannot read metadata of topic {topic:?}: {e}"))?;
        let t = md
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .ok_or_else(|| format!("topic {topic:?} is not in the broker's metadata"))?;
        if let Some(err) = t.error() {
            return Err(format!("topic {topic:?}: {:?}", err));
        }
        if t.partitions().is_empty() {
            return Err(format!("topic {topic:?} does not exist (no partitions)"));
        }
        for p in t.partitions() {
            let (lo, hi) = consumer
                .fetch_watermarks(topic, p.id(), timeout)
                .map_err(|e| format!("cannot read offsets of {topic}/{}: {e}", p.id()))?;
            let tp = TopicPartition {
                topic: topic.clone(),
                partition: p.id(),
            };
            low.insert(tp.clone(), lo);
            high.insert(tp, hi);
        }
    }
    Ok((low, high))
}
