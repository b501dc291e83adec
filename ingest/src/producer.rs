//! The outbox relay: claims unproduced staged rows, sends them to Kafka and
//! marks each produced (with partition/offset) only after its delivery
//! report. Rows whose delivery fails stay unproduced and are sent again on a
//! later cycle, so an outage delays records but loses none.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::join_all;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::sync::{Notify, watch};
use tokio_postgres::Client;
use tracing::{info, warn};
use uuid::Uuid;

use crate::kafka;
use crate::metrics::{Metrics, inc};
use crate::outbox::{self, StagedRow, Tables};

#[derive(Clone)]
pub struct Relay {
    pub pg_url: String,
    pub tables: Tables,
    pub topic: String,
    pub producer: FutureProducer,
    pub metrics: Arc<Metrics>,
    /// Woken when rows are staged, so the relay does not wait a poll interval.
    pub notify: Arc<Notify>,
    pub claim_size: i64,
    pub poll_interval: Duration,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CycleOutcome {
    pub claimed: usize,
    pub produced: usize,
    pub failed: usize,
}

/// Sends `rows` and waits for every delivery report; returns per-row results
/// in order: `Some((partition, offset))` or `None` on failure.
async fn send_all(
    producer: &FutureProducer,
    topic: &str,
    rows: &[StagedRow],
    metrics: &Metrics,
) -> Vec<Option<(i32, i64)>> {
    let mut futures = Vec::with_capacity(rows.len());
    for row in rows {
        let key = row.record_id.to_string();
        // `send` queues with retry on a full local queue (up to the timeout)
        // and resolves with the delivery report.
        futures.push(async move {
            let record = FutureRecord::to(topic).key(&key).payload(&row.payload);
            producer.send(record, Duration::from_secs(30)).await
        });
    }
    let mut errors_logged = 0;
    join_all(futures)
        .await
        .into_iter()
        .map(|r| match r {
            Ok(d) => Some((d.partition, d.offset)),
            Err((e, _)) => {
                inc(&metrics.produce_errors, 1);
                if errors_logged < 3 {
                    warn!(error = %e, "delivery failed; the row stays staged");
                    errors_logged += 1;
                }
                None
            }
        })
        .collect()
}

impl Relay {
    /// One claim → send → mark cycle over up to `claim_size` rows. Rows are
    /// claimed `FOR UPDATE SKIP LOCKED` so several relays (serve and run on
    /// the same table) never send the same row concurrently.
    pub async fn cycle(&self, client: &mut Client) -> anyhow::Result<CycleOutcome> {
        let tx = client.transaction().await?;
        let rows = tx
            .query(
                &format!(
                    "SELECT seq, record_id, record FROM {} WHERE produced_at IS NULL
                     ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED",
                    self.tables.staging
                ),
                &[&self.claim_size],
            )
            .await?;
        if rows.is_empty() {
            tx.commit().await?;
            return Ok(CycleOutcome::default());
        }
        let staged: Vec<StagedRow> = rows
            .iter()
            .map(|r| StagedRow {
                seq: r.get(0),
                record_id: r.get(1),
                payload: outbox::payload(&r.get::<_, serde_json::Value>(2)),
            })
            .collect();
        let results = send_all(&self.producer, &self.topic, &staged, &self.metrics).await;
        let (mut seqs, mut parts, mut offs) = (Vec::new(), Vec::new(), Vec::new());
        for (row, res) in staged.iter().zip(&results) {
            if let Some((p, o)) = res {
                seqs.push(row.seq);
                parts.push(*p);
                offs.push(*o);
            }
        }
        if !seqs.is_empty() {
            tx.execute(
                &format!(
                    "UPDATE {s} SET produced_at = now(), topic = $1,
                            kafka_partition = u.p, kafka_offset = u.o
                     FROM unnest($2::bigint[], $3::int[], $4::bigint[]) AS u(seq, p, o)
                     WHERE {s}.seq = u.seq",
                    s = self.tables.staging
                ),
                &[&self.topic, &seqs, &parts, &offs],
            )
            .await?;
        }
        tx.commit().await?;
        inc(&self.metrics.records_produced, seqs.len() as u64);
        Ok(CycleOutcome {
            claimed: staged.len(),
            produced: seqs.len(),
            failed: staged.len() - seqs.len(),
        })
    }

    /// Runs cycles until `shutdown` turns true, reconnecting to Postgres and
    /// backing off on errors. Never returns an error: the relay must outlive
    /// both Postgres and Kafka outages.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut client: Option<Client> = None;
        let mut backoff = Duration::from_millis(200);
        while !*shutdown.borrow() {
            if client.as_ref().is_none_or(Client::is_closed) {
                match outbox::connect(&self.pg_url).await {
                    Ok(c) => client = Some(c),
                    Err(e) => {
                        warn!(error = %e, "relay: cannot connect to Postgres; retrying");
                        self.pause(&mut shutdown, backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                        continue;
                    }
                }
            }
            let Some(c) = client.as_mut() else { continue };
            match self.cycle(c).await {
                Ok(o) if o.failed > 0 => {
                    warn!(
                        produced = o.produced,
                        failed = o.failed,
                        "relay: some deliveries failed; retrying"
                    );
                    self.pause(&mut shutdown, backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
                Ok(o) if o.claimed == 0 => {
                    backoff = Duration::from_millis(200);
                    tokio::select! {
                        _ = self.notify.notified() => {}
                        _ = tokio::time::sleep(self.poll_interval) => {}
                        _ = shutdown.changed() => {}
                    }
                }
                Ok(o) => {
                    backoff = Duration::from_millis(200);
                    info!(produced = o.produced, "relay: produced");
                }
                Err(e) => {
                    warn!(error = %e, "relay cycle failed; retrying");
                    self.pause(&mut shutdown, backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
    }

    async fn pause(&self, shutdown: &mut watch::Receiver<bool>, d: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = shutdown.changed() => {}
        }
    }

    /// Re-sends already-produced rows whose `fetched_at` is in
    /// [since, until) (optionally one batch), e.g. after a downstream loss.
    /// The original partition/offset are kept; `replay_count` is bumped.
    pub async fn replay(
        &self,
        client: &mut Client,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        batch: Option<Uuid>,
    ) -> anyhow::Result<ReplayReport> {
        let mut report = ReplayReport::default();
        let mut after_seq: i64 = 0;
        loop {
            let rows = client
                .query(
                    &format!(
                        "SELECT seq, record_id, record FROM {} WHERE produced_at IS NOT NULL
                         AND fetched_at >= $1 AND fetched_at < $2
                         AND ($3::uuid IS NULL OR batch_id = $3) AND seq > $4
                         ORDER BY seq LIMIT $5",
                        self.tables.staging
                    ),
                    &[&since, &until, &batch, &after_seq, &self.claim_size],
                )
                .await?;
            let Some(last) = rows.last() else { break };
            after_seq = last.get(0);
            let staged: Vec<StagedRow> = rows
                .iter()
                .map(|r| StagedRow {
                    seq: r.get(0),
                    record_id: r.get(1),
                    payload: outbox::payload(&r.get::<_, serde_json::Value>(2)),
                })
                .collect();
            let results = send_all(&self.producer, &self.topic, &staged, &self.metrics).await;
            let ok: Vec<i64> = staged
                .iter()
                .zip(&results)
                .filter(|(_, r)| r.is_some())
                .map(|(s, _)| s.seq)
                .collect();
            client
                .execute(
                    &format!(
                        "UPDATE {} SET replay_count = replay_count + 1, replayed_at = now()
                         WHERE seq = ANY($1)",
                        self.tables.staging
                    ),
                    &[&ok],
                )
                .await?;
            report.sent += ok.len() as u64;
            report.failed += (staged.len() - ok.len()) as u64;
            inc(&self.metrics.records_replayed, ok.len() as u64);
        }
        Ok(report)
    }
}

#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct ReplayReport {
    pub sent: u64,
    pub failed: u64,
}

/// Builds the relay's idempotent producer.
pub fn make_producer(
    brokers: &str,
    compression: kafka::Compression,
    message_timeout: Duration,
    idempotence: bool,
) -> anyhow::Result<FutureProducer> {
    Ok(kafka::producer(
        brokers,
        compression,
        message_timeout,
        idempotence,
    )?)
}
