//! Kafka consumers for offset-range reads and watermark look-ups.
//!
//! A fresh consumer costs a connection and a metadata round trip, and what it
//! has prefetched is lost when it is unassigned. So executors keep one
//! consumer per topic-partition across micro-batches, still assigned: when
//! the next batch's range starts where the last one ended (the usual case),
//! the read goes on from the records already fetched, as Spark's cached
//! `KafkaDataConsumer` does. Otherwise it seeks. Ballista does not place a
//! partition's tasks on the same executor every time, so a consumer whose
//! read had to seek (its partition's last range went to another executor) is
//! unassigned while idle rather than fetch what the other one reads; it is
//! assigned again when its partition's next range comes back to it. So is a
//! consumer that has read to within [`END_LAG`] records of its partition's
//! end: at the end, every fetch comes back empty after
//! `fetch.wait.max.ms` and is sent again, and tansu answers each one with
//! fresh SQL, so a few idle consumers saturated its core in the latency
//! benchmark (BENCHMARKS.md, run 41). Consumers are
//! assign-only: no group subscription and no committed offsets; the job's
//! checkpoint owns the offsets, as in Spark. A consumer idle for
//! [`IDLE_EVICT`] is closed.

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaResult;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use super::ranges::{PartitionOffsets, TopicPartition};

/// An idle consumer (and what it has prefetched) is closed after this long.
pub const IDLE_EVICT: Duration = Duration::from_secs(60);
/// Idle consumers kept per executor at most; the longest idle go first.
const POOL_MAX: usize = 64;
/// An idle consumer this close to its partition's end (by the high
/// watermark of its last fetch) is unassigned: what it could prefetch would
/// save the next read little, and assigning it again costs that read one
/// fetch.
pub const END_LAG: i64 = 1_000;

struct Idle {
    consumer: BaseConsumer,
    /// The next offset `poll` returns, when known.
    position: Option<i64>,
    /// Unassigned while idle: not fetching, nothing prefetched. Not paused:
    /// a resume does not wake librdkafka's broker thread, so the next fetch
    /// waited for its 1 s idle wake-up (reads of ~1 s in the latency
    /// benchmark), while an assign fetches at once.
    unassigned: bool,
    since: Instant,
}

static POOL: LazyLock<Mutex<HashMap<String, Vec<Idle>>>> = LazyLock::new(|| {
    // Closing a consumer blocks, so eviction runs on a thread of its own.
    let _ = std::thread::Builder::new()
        .name("ember-kafka-evict".into())
        .spawn(|| {
            loop {
                std::thread::sleep(Duration::from_secs(5));
                drop(evict(IDLE_EVICT, POOL_MAX));
            }
        });
    Default::default()
});

/// Takes the consumers idle for longer than `idle`, and the longest idle
/// beyond `max`, out of the pool (the caller drops them, outside the lock).
fn evict(idle: Duration, max: usize) -> Vec<BaseConsumer> {
    let mut pool = POOL.lock();
    let mut out = Vec::new();
    for v in pool.values_mut() {
        let (old, keep): (Vec<Idle>, Vec<Idle>) =
            v.drain(..).partition(|i| i.since.elapsed() > idle);
        *v = keep;
        out.extend(old.into_iter().map(|i| i.consumer));
    }
    let mut all: Vec<(String, Instant)> = pool
        .iter()
        .flat_map(|(k, v)| v.iter().map(move |i| (k.clone(), i.since)))
        .collect();
    if all.len() > max {
        let excess = all.len() - max;
        all.sort_by_key(|(_, since)| *since);
        for (k, _) in all.into_iter().take(excess) {
            if let Some(v) = pool.get_mut(&k)
                && !v.is_empty()
            {
                out.push(v.remove(0).consumer);
            }
        }
    }
    pool.retain(|_, v| !v.is_empty());
    out
}

static CREATED: AtomicU64 = AtomicU64::new(0);
static CONTINUED: AtomicU64 = AtomicU64::new(0);
static SEEKS: AtomicU64 = AtomicU64::new(0);
static UNASSIGNED_AT_END: AtomicU64 = AtomicU64::new(0);

/// How range reads found their consumer, since the process started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConsumerStats {
    /// New consumers created.
    pub created: u64,
    /// Reads that went on from where the consumer stood (prefetch reused).
    pub continued: u64,
    /// Reads that had to re-position a pooled consumer.
    pub seeks: u64,
    /// Consumers unassigned while idle because they had read to within
    /// [`END_LAG`] records of their partition's end.
    pub unassigned_at_end: u64,
}

pub fn consumer_stats() -> ConsumerStats {
    ConsumerStats {
        created: CREATED.load(Ordering::Relaxed),
        continued: CONTINUED.load(Ordering::Relaxed),
        seeks: SEEKS.load(Ordering::Relaxed),
        unassigned_at_end: UNASSIGNED_AT_END.load(Ordering::Relaxed),
    }
}

/// What one consumer may hold prefetched, in KiB (librdkafka's
/// `queued.max.messages.kbytes`, whose default is 64 MiB). Pooled consumers
/// stay assigned between batches, so when an executor falls behind the
/// broker each of its partitions fills this budget: with 4 partitions an
/// executor peaked at 359-381 MB with librdkafka's default and at 201-220 MB
/// with this, at the same rows/s (BENCHMARKS.md, run 46). A budget well
/// under one batch's range would stall reads instead.
pub const PREFETCH_KBYTES: u32 = 16 * 1024;

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
        .set("queued.max.messages.kbytes", PREFETCH_KBYTES.to_string())
        .set("socket.keepalive.enable", "true");
    for (k, v) in options {
        cfg.set(k, v);
    }
    cfg
}

fn pool_key(
    bootstrap: &str,
    job: &str,
    options: &BTreeMap<String, String>,
    topic: &str,
    partition: i32,
) -> String {
    format!("{bootstrap}|{job}|{options:?}|{topic}|{partition}")
}

/// A consumer assigned to one topic-partition, returned to the pool (still
/// assigned) on drop unless it failed.
pub struct PartitionConsumer {
    key: String,
    topic: String,
    partition: i32,
    consumer: Option<BaseConsumer>,
    /// This read re-positioned a pooled consumer.
    sought: bool,
    /// The next offset `poll` returns, when known: the reader sets it when it
    /// stops cleanly. None (after an error, or a record taken past the range)
    /// makes the next read seek.
    pub position: Option<i64>,
    pub broken: bool,
}

impl PartitionConsumer {
    /// A consumer of `topic`/`partition` whose next record is at `offset`:
    /// the pooled one as it stands when it is there already, else the pooled
    /// one sought there, else a new one.
    pub fn get(
        bootstrap: &str,
        job: &str,
        options: &BTreeMap<String, String>,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> KafkaResult<Self> {
        let key = pool_key(bootstrap, job, options, topic, partition);
        let pooled = {
            let mut pool = POOL.lock();
            pool.get_mut(&key).and_then(|v| {
                let i = v
                    .iter()
                    .position(|i| i.position == Some(offset))
                    .unwrap_or(0);
                (!v.is_empty()).then(|| v.remove(i))
            })
        };
        let at = partition_list(topic, partition, offset)?;
        let (consumer, sought) = match pooled {
            Some(idle) => {
                let sought = idle.position != Some(offset);
                // A seek drops what was prefetched.
                if idle.unassigned || sought {
                    idle.consumer.assign(&at)?;
                }
                let counter = if sought { &SEEKS } else { &CONTINUED };
                counter.fetch_add(1, Ordering::Relaxed);
                (idle.consumer, sought)
            }
            None => {
                let c: BaseConsumer = consumer_config(bootstrap, job, options).create()?;
                CREATED.fetch_add(1, Ordering::Relaxed);
                c.assign(&at)?;
                (c, false)
            }
        };
        Ok(Self {
            key,
            topic: topic.to_string(),
            partition,
            consumer: Some(consumer),
            sought,
            // Unknown until the read says where it stopped: a read that ends
            // early leaves it so, and the next read seeks.
            position: None,
            broken: false,
        })
    }

    pub fn consumer(&self) -> &BaseConsumer {
        self.consumer.as_ref().expect("consumer present until drop")
    }
}

/// The one partition, at `offset`, to assign (a seek: librdkafka drops what
/// it had prefetched).
fn partition_list(topic: &str, partition: i32, offset: i64) -> KafkaResult<TopicPartitionList> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(offset))?;
    Ok(tpl)
}

impl Drop for PartitionConsumer {
    fn drop(&mut self) {
        if self.broken {
            return;
        }
        if let Some(consumer) = self.consumer.take() {
            // A consumer that had to seek lost its partition's last range to
            // another executor: it would fetch what that one reads. One at
            // the partition's end would fetch nothing, again and again.
            let at_end = near_end(&consumer, &self.topic, self.partition, self.position);
            let unassigned =
                (self.sought || self.position.is_none() || at_end) && consumer.unassign().is_ok();
            if unassigned && at_end {
                UNASSIGNED_AT_END.fetch_add(1, Ordering::Relaxed);
            }
            POOL.lock().entry(self.key.clone()).or_default().push(Idle {
                consumer,
                position: self.position,
                unassigned,
                since: Instant::now(),
            });
        }
    }
}

/// Whether `position` is within [`END_LAG`] of the partition's end, by the
/// high watermark of the consumer's last fetch (cached: no request).
fn near_end(consumer: &BaseConsumer, topic: &str, partition: i32, position: Option<i64>) -> bool {
    let Some(position) = position else {
        return false;
    };
    cached_high_watermark(consumer, topic, partition).is_some_and(|high| high - position < END_LAG)
}

/// The partition's high watermark as of the consumer's last fetch, from
/// librdkafka's cache (rdkafka 0.39 wraps only the call that asks the broker).
fn cached_high_watermark(consumer: &BaseConsumer, topic: &str, partition: i32) -> Option<i64> {
    use rdkafka::bindings::{rd_kafka_get_watermark_offsets, rd_kafka_resp_err_t};
    let topic = std::ffi::CString::new(topic).ok()?;
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: the client handle lives as long as `consumer`; librdkafka only
    // reads the NUL-terminated topic and writes the two offsets.
    let err = unsafe {
        rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    (err == rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0).then_some(high)
}

/// Partitions of `topics` with their low and high watermarks. Blocking: call
/// from a blocking thread.
///
/// One metadata request per topic, then one ListOffsets request for the
/// earliest and one for the latest offsets of every partition, sent together (librdkafka's
/// `query_watermark_offsets` would send two per partition, one after the
/// other). It matters under load: tansu serves storage requests one at a
/// time, so each request of a trigger waits behind the prefetching
/// consumers' fetches.
pub fn watermarks(
    consumer: &BaseConsumer,
    topics: &[String],
    timeout: Duration,
) -> Result<(PartitionOffsets, PartitionOffsets), String> {
    let mut tpl = TopicPartitionList::new();
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
            tpl.add_partition(topic, p.id());
        }
    }
    // ListOffsets takes -2 and -1 as "earliest" and "latest" timestamps.
    let query = |at: Offset| -> Result<PartitionOffsets, String> {
        let mut q = tpl.clone();
        q.set_all_offsets(at)
            .map_err(|e| format!("cannot build the offsets request: {e}"))?;
        let r = consumer
            .offsets_for_times(q, timeout)
            .map_err(|e| format!("cannot read offsets of {topics:?}: {e}"))?;
        let mut out = PartitionOffsets::new();
        for e in r.elements() {
            let name = format!("{}/{}", e.topic(), e.partition());
            e.error()
                .map_err(|err| format!("cannot read offsets of {name}: {err}"))?;
            let Offset::Offset(o) = e.offset() else {
                return Err(format!("no offset for {name} ({:?})", e.offset()));
            };
            let tp = TopicPartition {
                topic: e.topic().to_string(),
                partition: e.partition(),
            };
            out.insert(tp, o);
        }
        Ok(out)
    };
    let (low, high) = std::thread::scope(|s| {
        let low = s.spawn(|| query(Offset::Beginning));
        let high = query(Offset::End);
        let low = low
            .join()
            .unwrap_or_else(|_| Err("the earliest-offsets query panicked".into()));
        (low, high)
    });
    Ok((low?, high?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prefetch_budget_is_embers_unless_the_job_sets_one() {
        let none = BTreeMap::new();
        let cfg = consumer_config("b:9092", "j", &none);
        assert_eq!(cfg.get("queued.max.messages.kbytes"), Some("16384"));
        assert_eq!(cfg.get("group.id"), Some("ember-j"));
        let set = BTreeMap::from([(
            "queued.max.messages.kbytes".to_string(),
            "65536".to_string(),
        )]);
        let cfg = consumer_config("b:9092", "j", &set);
        assert_eq!(cfg.get("queued.max.messages.kbytes"), Some("65536"));
    }
}
