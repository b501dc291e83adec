//! One ingest batch: fetch (API) or generate users page by page, staging each
//! page in its own transaction, and wake the relay after each page.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tracing::{info, warn};
use uuid::Uuid;

use crate::api::ApiSource;
use crate::generator::Generator;
use crate::handoff::Handoff;
use crate::metrics::{Metrics, inc};
use crate::outbox::{self, Tables};
use crate::record::User;

/// Largest `count` one request may ask for.
pub const MAX_COUNT: u32 = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Api,
    Generate,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Api => "api",
            SourceKind::Generate => "generate",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestRequest {
    pub count: u32,
    pub source: SourceKind,
    #[serde(default)]
    pub seed: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct IngestSummary {
    pub batch_id: Uuid,
    pub source: SourceKind,
    pub requested: u32,
    pub fetched: u64,
    pub staged: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// staged | failed
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Everything a batch needs; shared by `serve` and `run`.
pub struct Ingestor {
    pub pg_url: String,
    pub tables: Tables,
    pub api: ApiSource,
    pub metrics: Arc<Metrics>,
    pub notify: Arc<Notify>,
    /// Most rows a batch is staged ahead of its `produced` count while a
    /// relay is advancing it (0: no limit). Staging, the relay and the
    /// broker share the CPU: a batch staged flat out leaves the relay behind,
    /// and the backlog is then sent at the end with the CPU half idle
    /// (measured at 300k generated users: the last 2.5 s of 9.4 s).
    pub max_lead: u64,
    /// Where staged rows are handed to this process's relay (None: no relay
    /// runs here).
    pub handoff: Option<Arc<Handoff>>,
}

/// How long a batch's `produced` count may stand still before staging stops
/// waiting for it: the broker is down, or the relays are busy with older
/// rows. Staging then goes on, so an outage still leaves fetched rows staged.
const STALL: Duration = Duration::from_secs(1);

/// Keeps one batch's staging within [`Ingestor::max_lead`] of its relay.
struct Pace {
    max_lead: u64,
    produced: u64,
    advanced: Instant,
}

impl Pace {
    /// Returns once `staged` is within the lead of the batch's produced
    /// count, or the count has not moved for [`STALL`].
    async fn wait(
        &mut self,
        client: &tokio_postgres::Client,
        tables: &Tables,
        batch: Uuid,
        staged: u64,
    ) -> Result<(), tokio_postgres::Error> {
        if self.max_lead == 0 {
            return Ok(());
        }
        while staged.saturating_sub(self.produced) > self.max_lead {
            let produced = outbox::batch_produced(client, tables, batch)
                .await?
                .map_or(0, |p| u64::try_from(p).unwrap_or(0));
            if produced > self.produced {
                self.produced = produced;
                self.advanced = Instant::now();
            } else if self.advanced.elapsed() >= STALL {
                return Ok(());
            } else {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("postgres: {0}")]
    Postgres(String),
}

impl Ingestor {
    /// Runs one batch to the end. A fetch failure is reported in the summary
    /// (state "failed", pages staged so far are kept and produced); only a
    /// Postgres failure before the batch exists is an `Err`.
    pub async fn ingest(&self, req: IngestRequest) -> Result<IngestSummary, IngestError> {
        if req.count == 0 || req.count > MAX_COUNT {
            return Err(IngestError::Invalid(format!(
                "count must be in 1..={MAX_COUNT}, got {}",
                req.count
            )));
        }
        let pg = |e: &dyn std::fmt::Display| IngestError::Postgres(e.to_string());
        let mut client = outbox::connect(&self.pg_url).await.map_err(|e| pg(&e))?;
        let batch = Uuid::new_v4();
        let seed = match req.source {
            SourceKind::Generate => Some(req.seed.unwrap_or_else(rand::random)),
            SourceKind::Api => None,
        };
        outbox::create_batch(
            &client,
            &self.tables,
            batch,
            req.source.as_str(),
            i32::try_from(req.count).unwrap_or(i32::MAX),
            seed.map(|s| s as i64),
        )
        .await
        .map_err(|e| pg(&e))?;
        inc(&self.metrics.batches, 1);
        info!(%batch, source = req.source.as_str(), count = req.count, "batch started");

        let mut summary = IngestSummary {
            batch_id: batch,
            source: req.source,
            requested: req.count,
            fetched: 0,
            staged: 0,
            seed,
            state: "staged",
            error: None,
        };
        let result = self
            .fill(&mut client, batch, req.count, seed, &mut summary)
            .await;
        if let Err(e) = &result {
            warn!(%batch, error = %e, "batch failed");
            inc(&self.metrics.batches_failed, 1);
            summary.state = "failed";
            summary.error = Some(e.to_string());
        }
        // If Postgres went away the row stays "fetching"; staged pages are
        // still produced by the relay.
        let finish = if client.is_closed() {
            outbox::connect(&self.pg_url).await.map_err(|e| pg(&e))?
        } else {
            client
        };
        outbox::finish_batch(&finish, &self.tables, batch, summary.error.as_deref())
            .await
            .map_err(|e| pg(&e))?;
        Ok(summary)
    }

    async fn fill(
        &self,
        client: &mut tokio_postgres::Client,
        batch: Uuid,
        count: u32,
        seed: Option<u64>,
        summary: &mut IngestSummary,
    ) -> anyhow::Result<()> {
        let page_size = self.api.page_size().max(1);
        let mut remaining = count as usize;
        // Generate batches always have a seed; API batches never do.
        let mut generator = seed.map(Generator::new);
        let mut empty_pages = 0;
        let stager = outbox::Stager::prepare(client, &self.tables).await?;
        let mut pace = Pace {
            max_lead: self.max_lead,
            produced: 0,
            advanced: Instant::now(),
        };
        while remaining > 0 {
            pace.wait(client, &self.tables, batch, summary.staged)
                .await?;
            let want = remaining.min(page_size);
            let users: Vec<User> = match generator.as_mut() {
                Some(g) => (0..want).map(|_| g.next_user()).collect(),
                None => {
                    let page = self.api.fetch_page(want).await?;
                    // Each fetch is a new event, even if the API repeats a
                    // person (seeded API calls do), hence a fresh id.
                    page.iter()
                        .take(want)
                        .map(|u| User::from_api(u, Uuid::new_v4()))
                        .collect()
                }
            };
            if users.is_empty() {
                empty_pages += 1;
                anyhow::ensure!(
                    empty_pages < 3,
                    "the API returned no users 3 times in a row"
                );
                continue;
            }
            empty_pages = 0;
            inc(&self.metrics.records_fetched, users.len() as u64);
            summary.fetched += users.len() as u64;
            let n = stager
                .stage_page(client, batch, &users, Utc::now(), self.handoff.as_deref())
                .await?;
            inc(&self.metrics.records_staged, n);
            summary.staged += n;
            remaining -= users.len();
            self.notify.notify_one();
        }
        Ok(())
    }
}
