//! The outbox relay: claims pending staged rows, sends them to Kafka and
//! records each one produced (with partition/offset) only after its delivery
//! report. Rows whose delivery fails stay pending and are sent again on a
//! later cycle, so an outage delays records but loses none.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::join_all;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use tokio::sync::{Notify, watch};
use tokio_postgres::Client;
use tracing::{info, warn};
use uuid::Uuid;

use crate::handoff::Handoff;
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
    /// Rows staged by this process, sent without reading them back.
    pub handoff: Arc<Handoff>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CycleOutcome {
    pub claimed: usize,
    pub produced: usize,
    pub failed: usize,
}

/// Queues every row on the producer now, in order, so rows queued by a later
/// call follow these on each partition; returns their delivery futures
/// (None: the row could not be queued).
async fn enqueue(
    producer: &FutureProducer,
    topic: &str,
    rows: &[StagedRow],
    metrics: &Metrics,
) -> Vec<Option<DeliveryFuture>> {
    let mut out = Vec::with_capacity(rows.len());
    let mut errors_logged = 0;
    for row in rows {
        let key = row.record_id.to_string();
        let mut record = FutureRecord::to(topic).key(&key).payload(&row.payload);
        let queued = loop {
            match producer.send_result(record) {
                Ok(f) => break Some(f),
                // librdkafka's local queue is full: let it drain.
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((e, _)) => {
                    inc(&metrics.produce_errors, 1);
                    if errors_logged < 3 {
                        warn!(error = %e, "cannot queue a row; it stays staged");
                        errors_logged += 1;
                    }
                    break None;
                }
            }
        };
        out.push(queued);
    }
    out
}

/// Waits for every delivery report; per-row `Some((partition, offset))` or
/// `None` on failure.
async fn deliveries(
    queued: Vec<Option<DeliveryFuture>>,
    metrics: &Metrics,
) -> Vec<Option<(i32, i64)>> {
    let mut errors_logged = 0;
    join_all(queued.into_iter().map(|f| async move {
        match f {
            Some(f) => f.await.ok(),
            None => None,
        }
    }))
    .await
    .into_iter()
    .map(|r| match r {
        Some(Ok(d)) => Some((d.partition, d.offset)),
        Some(Err((e, _))) => {
            inc(&metrics.produce_errors, 1);
            if errors_logged < 3 {
                warn!(error = %e, "delivery failed; the row stays staged");
                errors_logged += 1;
            }
            None
        }
        None => None,
    })
    .collect()
}

/// The runs of consecutive values in `seqs` (ascending), at most `max`
/// long, as 1-based inclusive index bounds into `seqs`.
fn runs_of(seqs: &[i64], max: usize) -> Vec<(i32, i32)> {
    let mut runs = Vec::new();
    let mut start = 0;
    for i in 1..=seqs.len() {
        let breaks = i == seqs.len() || seqs[i] != seqs[i - 1] + 1 || i - start == max;
        if breaks {
            runs.push((start as i32 + 1, i as i32));
            start = i;
        }
    }
    runs
}

/// Sends `rows` and waits for every delivery report.
async fn send_all(
    producer: &FutureProducer,
    topic: &str,
    rows: &[StagedRow],
    metrics: &Metrics,
) -> Vec<Option<(i32, i64)>> {
    deliveries(enqueue(producer, topic, rows, metrics).await, metrics).await
}

impl Relay {
    /// Claims pending rows in the transaction open on `c`: takes whole
    /// ranges off the queue (`FOR UPDATE SKIP LOCKED`, so several relays,
    /// e.g. serve and run on the same table or the two halves of
    /// [`Relay::drain`], never send the same row concurrently), as many as
    /// fit in `claim_size` rows (at least one), and gets their records in
    /// seq order: from the handoff if this process staged them, else from
    /// the staging table. A rollback puts them back.
    async fn claim(&self, c: &Client) -> anyhow::Result<Vec<StagedRow>> {
        let t = &self.tables;
        let ranges = (self.claim_size / outbox::RANGE_ROWS).max(1);
        let claimed = c
            .query(
                &format!(
                    "DELETE FROM {q} WHERE lo IN (
                         SELECT lo FROM {q} ORDER BY lo LIMIT $1 FOR UPDATE SKIP LOCKED)
                     RETURNING lo, hi",
                    q = t.queue
                ),
                &[&ranges],
            )
            .await?;
        let mut staged = Vec::new();
        let (mut los, mut his) = (Vec::new(), Vec::new());
        let mut lowest = i64::MAX;
        for r in &claimed {
            let (lo, hi): (i64, i64) = (r.get(0), r.get(1));
            lowest = lowest.min(lo);
            match self.handoff.take(lo, hi) {
                Some(rows) => staged.extend(rows),
                None => {
                    los.push(lo);
                    his.push(hi);
                }
            }
        }
        inc(&self.metrics.records_handed_off, staged.len() as u64);
        if !claimed.is_empty() {
            self.handoff.evict_below(lowest);
        }
        if !los.is_empty() {
            // OFFSET 0 keeps the lateral subquery apart: flattened, the
            // planner joins the ranges against a scan of the whole table.
            let rows = c
                .query(
                    &format!(
                        "SELECT s.seq, s.record_id, s.record, s.batch_id
                         FROM unnest($1::bigint[], $2::bigint[]) AS r(lo, hi),
                         LATERAL (SELECT seq, record_id, record::text, batch_id FROM {}
                                  WHERE seq BETWEEN r.lo AND r.hi OFFSET 0) s",
                        t.staging
                    ),
                    &[&los, &his],
                )
                .await?;
            inc(&self.metrics.records_read_back, rows.len() as u64);
            staged.extend(rows.iter().map(|r| StagedRow {
                seq: r.get(0),
                record_id: r.get(1),
                payload: r.get::<_, String>(2).into_bytes(),
                batch_id: r.get(3),
            }));
        }
        // Here, not in SQL: a sort of ~5 MB of records can spill to disk.
        staged.sort_unstable_by_key(|r| r.seq);
        Ok(staged)
    }

    /// Records the delivered rows produced, puts the others back on the
    /// queue, adds the delivered to their batches' `produced` counts, and
    /// commits the transaction on `c`.
    async fn mark(
        &self,
        c: &Client,
        staged: &[StagedRow],
        results: &[Option<(i32, i64)>],
    ) -> anyhow::Result<CycleOutcome> {
        let t = &self.tables;
        let (mut seqs, mut parts, mut offs, mut failed) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        // Sorted, so concurrent relays lock batch rows in one order.
        let mut per_batch = std::collections::BTreeMap::<Uuid, i64>::new();
        for (row, res) in staged.iter().zip(results) {
            if let Some((p, o)) = res {
                seqs.push(row.seq);
                parts.push(*p);
                offs.push(*o);
                *per_batch.entry(row.batch_id).or_default() += 1;
            } else {
                failed.push(row.seq);
            }
        }
        if !seqs.is_empty() {
            // One row per run of consecutive seqs, sliced out of the arrays
            // of all delivered rows (1-based, inclusive bounds).
            let runs = runs_of(&seqs, outbox::RANGE_ROWS as usize);
            let (starts, ends): (Vec<i32>, Vec<i32>) = runs.iter().copied().unzip();
            c.execute(
                &format!(
                    "INSERT INTO {} (lo, hi, topic, partitions, offsets)
                     SELECT ($2::bigint[])[r.a], ($2::bigint[])[r.b], $1,
                            ($3::int[])[r.a:r.b], ($4::bigint[])[r.a:r.b]
                     FROM unnest($5::int[], $6::int[]) AS r(a, b)",
                    t.produced_runs
                ),
                &[&self.topic, &seqs, &parts, &offs, &starts, &ends],
            )
            .await?;
            let (ids, counts): (Vec<Uuid>, Vec<i64>) = per_batch.into_iter().unzip();
            c.execute(
                &format!(
                    "UPDATE {b} SET produced = produced + u.n
                     FROM unnest($1::uuid[], $2::bigint[]) AS u(id, n) WHERE {b}.id = u.id",
                    b = t.batches
                ),
                &[&ids, &counts],
            )
            .await?;
        }
        if !failed.is_empty() {
            outbox::requeue(c, t, &failed).await?;
        }
        c.batch_execute("COMMIT").await?;
        inc(&self.metrics.records_produced, seqs.len() as u64);
        Ok(CycleOutcome {
            claimed: staged.len(),
            produced: seqs.len(),
            failed: failed.len(),
        })
    }

    /// Claim → send → mark cycles until nothing is left to claim or a
    /// delivery failed, on two connections in turn: the next rows are
    /// claimed and queued while this cycle's deliveries are pending, and
    /// marked while the next ones are, so Postgres round trips overlap with
    /// Kafka's. Rows are queued in claim order, so each partition keeps it.
    /// On an error the caller drops both connections, which rolls back what
    /// was claimed and not marked (those rows are sent again: at least once).
    pub async fn drain(&self, c: &[Client; 2]) -> anyhow::Result<CycleOutcome> {
        let mut total = CycleOutcome::default();
        let mut i = 0;
        c[i].batch_execute("BEGIN").await?;
        let mut staged = self.claim(&c[i]).await?;
        let mut queued = enqueue(&self.producer, &self.topic, &staged, &self.metrics).await;
        while !staged.is_empty() {
            let j = 1 - i;
            let (next, next_queued) = if total.failed == 0 {
                c[j].batch_execute("BEGIN").await?;
                let next = self.claim(&c[j]).await?;
                let q = enqueue(&self.producer, &self.topic, &next, &self.metrics).await;
                (next, q)
            } else {
                (Vec::new(), Vec::new()) // back off: finish what is in flight
            };
            let results =
                deliveries(std::mem::replace(&mut queued, next_queued), &self.metrics).await;
            let o = self.mark(&c[i], &staged, &results).await?;
            total.claimed += o.claimed;
            total.produced += o.produced;
            total.failed += o.failed;
            if next.is_empty() && total.failed == 0 {
                c[j].batch_execute("COMMIT").await?; // the empty claim
                break;
            }
            (i, staged) = (j, next);
        }
        if staged.is_empty() && total.claimed == 0 {
            c[i].batch_execute("COMMIT").await?;
        }
        Ok(total)
    }

    /// Runs cycles until `shutdown` turns true, reconnecting to Postgres and
    /// backing off on errors. Never returns an error: the relay must outlive
    /// both Postgres and Kafka outages.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut clients: Option<[Client; 2]> = None;
        let mut backoff = Duration::from_millis(200);
        while !*shutdown.borrow() {
            if clients
                .as_ref()
                .is_none_or(|c| c.iter().any(Client::is_closed))
            {
                let connected = async {
                    Ok::<_, tokio_postgres::Error>([
                        outbox::connect(&self.pg_url).await?,
                        outbox::connect(&self.pg_url).await?,
                    ])
                }
                .await;
                match connected {
                    Ok(c) => clients = Some(c),
                    Err(e) => {
                        warn!(error = %e, "relay: cannot connect to Postgres; retrying");
                        self.pause(&mut shutdown, backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                        continue;
                    }
                }
            }
            let Some(c) = clients.as_ref() else { continue };
            match self.drain(c).await {
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
                    // Dropping the connections rolls back their open claims.
                    clients = None;
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
                        "SELECT s.seq, s.record_id, s.record::text, s.batch_id
                         FROM {} s
                         WHERE s.fetched_at >= $1 AND s.fetched_at < $2
                         AND ($3::uuid IS NULL OR s.batch_id = $3) AND s.seq > $4
                         AND (SELECT r.hi >= s.seq FROM {} r WHERE r.lo <= s.seq
                              ORDER BY r.lo DESC LIMIT 1)
                         ORDER BY s.seq LIMIT $5",
                        self.tables.staging, self.tables.produced_runs
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
                    payload: r.get::<_, String>(2).into_bytes(),
                    batch_id: r.get(3),
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

#[cfg(test)]
mod tests {
    use super::runs_of;

    #[test]
    fn runs_split_at_gaps_and_at_the_cap() {
        assert_eq!(runs_of(&[], 3), Vec::<(i32, i32)>::new());
        assert_eq!(runs_of(&[7], 3), vec![(1, 1)]);
        // 1-2 | 4-6 (capped at 3) | 7 | 9
        assert_eq!(
            runs_of(&[1, 2, 4, 5, 6, 7, 9], 3),
            vec![(1, 2), (3, 5), (6, 6), (7, 7)]
        );
    }
}
