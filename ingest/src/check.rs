//! `ember-ingest check`: verifies that staged rows were produced and that the
//! message at each row's recorded partition/offset has the row's key and
//! value. Used by airflow-test.sh and handy after an incident.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde::Serialize;
use uuid::Uuid;

use crate::outbox::{self, Tables};

#[derive(Debug, Default, Serialize)]
pub struct CheckReport {
    pub staged: u64,
    pub produced: u64,
    pub verified_on_topic: u64,
    pub problems: Vec<String>,
}

impl CheckReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty() && self.staged > 0 && self.produced == self.staged
    }
}

pub async fn check(
    pg_url: &str,
    tables: &Tables,
    brokers: &str,
    batch: Option<Uuid>,
    timeout: Duration,
) -> anyhow::Result<CheckReport> {
    let client = outbox::connect(pg_url).await?;
    let rows = client
        .query(
            &format!(
                "SELECT s.record_id, s.record, p.topic, p.kafka_partition, p.kafka_offset
                 FROM {} s LEFT JOIN {} p USING (seq)
                 WHERE ($1::uuid IS NULL OR s.batch_id = $1) ORDER BY s.seq",
                tables.staging, tables.produced
            ),
            &[&batch],
        )
        .await?;
    let mut report = CheckReport {
        staged: rows.len() as u64,
        ..CheckReport::default()
    };
    // (topic, partition, offset) → (key, value) expected there.
    let mut want: HashMap<(String, i32, i64), (String, serde_json::Value)> = HashMap::new();
    for r in &rows {
        let id: Uuid = r.get(0);
        let (topic, p, o): (Option<String>, Option<i32>, Option<i64>) =
            (r.get(2), r.get(3), r.get(4));
        match (topic, p, o) {
            (Some(t), Some(p), Some(o)) => {
                report.produced += 1;
                if want.insert((t, p, o), (id.to_string(), r.get(1))).is_some() {
                    report
                        .problems
                        .push(format!("two rows claim the same offset {p}/{o}"));
                }
            }
            _ => report.problems.push(format!("row {id} is not produced")),
        }
    }
    if want.is_empty() {
        return Ok(report);
    }
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("ember-ingest-check-{}", Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .create()?;
    // Read each partition from the lowest to the highest offset we expect.
    let mut ranges: HashMap<(String, i32), (i64, i64)> = HashMap::new();
    for (t, p, o) in want.keys() {
        let e = ranges.entry((t.clone(), *p)).or_insert((*o, *o));
        e.0 = e.0.min(*o);
        e.1 = e.1.max(*o);
    }
    let mut tpl = TopicPartitionList::new();
    for ((t, p), (lo, _)) in &ranges {
        tpl.add_partition_offset(t, *p, Offset::Offset(*lo))?;
    }
    consumer.assign(&tpl)?;
    let mut remaining = want.len();
    let deadline = Instant::now() + timeout;
    while remaining > 0 && Instant::now() < deadline {
        let Some(m) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = m?;
        let k = (m.topic().to_string(), m.partition(), m.offset());
        if let Some((id, record)) = want.remove(&k) {
            remaining -= 1;
            let key_ok = m.key() == Some(id.as_bytes());
            let value: Option<serde_json::Value> =
                m.payload().and_then(|v| serde_json::from_slice(v).ok());
            if key_ok && value.as_ref() == Some(&record) {
                report.verified_on_topic += 1;
            } else {
                report.problems.push(format!(
                    "message at {}/{} does not match row {id}",
                    k.1, k.2
                ));
            }
        }
    }
    for ((_, p, o), (id, _)) in want {
        report
            .problems
            .push(format!("row {id}: no message at {p}/{o}"));
    }
    Ok(report)
}
