//! Process counters, rendered in the Prometheus text format by `GET /metrics`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Metrics {
    pub api_requests: AtomicU64,
    pub api_retries: AtomicU64,
    pub api_malformed: AtomicU64,
    pub api_http_errors: AtomicU64,
    pub api_transport_errors: AtomicU64,
    pub records_fetched: AtomicU64,
    pub records_staged: AtomicU64,
    pub records_produced: AtomicU64,
    pub records_handed_off: AtomicU64,
    pub records_read_back: AtomicU64,
    pub records_replayed: AtomicU64,
    pub produce_errors: AtomicU64,
    pub batches: AtomicU64,
    pub batches_failed: AtomicU64,
}

pub fn inc(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl Metrics {
    /// Prometheus exposition text; `backlog` is the staged-but-unproduced
    /// row count, read from Postgres at scrape time (None if unavailable).
    pub fn render(&self, backlog: Option<i64>) -> String {
        let mut out = String::new();
        let counters: [(&str, &str, &AtomicU64); 14] = [
            (
                "ember_ingest_api_requests_total",
                "HTTP requests to the user API",
                &self.api_requests,
            ),
            (
                "ember_ingest_api_retries_total",
                "API requests retried after an error",
                &self.api_retries,
            ),
            (
                "ember_ingest_api_malformed_total",
                "API responses that could not be parsed",
                &self.api_malformed,
            ),
            (
                "ember_ingest_api_http_errors_total",
                "API responses with an error status (429, 5xx, ...)",
                &self.api_http_errors,
            ),
            (
                "ember_ingest_api_transport_errors_total",
                "API requests that failed to connect or timed out",
                &self.api_transport_errors,
            ),
            (
                "ember_ingest_records_fetched_total",
                "Users fetched or generated",
                &self.records_fetched,
            ),
            (
                "ember_ingest_records_staged_total",
                "Users written to the staging table",
                &self.records_staged,
            ),
            (
                "ember_ingest_records_produced_total",
                "Staged users acknowledged by Kafka",
                &self.records_produced,
            ),
            (
                "ember_ingest_records_handed_off_total",
                "Claimed users the relay got from this process's stager, in memory",
                &self.records_handed_off,
            ),
            (
                "ember_ingest_records_read_back_total",
                "Claimed users the relay read back from the staging table",
                &self.records_read_back,
            ),
            (
                "ember_ingest_records_replayed_total",
                "Users re-sent by replay",
                &self.records_replayed,
            ),
            (
                "ember_ingest_produce_errors_total",
                "Kafka delivery failures (rows stay staged)",
                &self.produce_errors,
            ),
            (
                "ember_ingest_batches_total",
                "Ingest batches started",
                &self.batches,
            ),
            (
                "ember_ingest_batches_failed_total",
                "Ingest batches that failed to fetch",
                &self.batches_failed,
            ),
        ];
        for (name, help, c) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", c.load(Ordering::Relaxed));
        }
        if let Some(b) = backlog {
            let name = "ember_ingest_staging_backlog";
            let _ = writeln!(
                out,
                "# HELP {name} Staged rows not yet produced\n# TYPE {name} gauge\n{name} {b}"
            );
        }
        out
    }
}
