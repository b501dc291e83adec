//! Wiring shared by `run`, `serve` and the tests: schema, ingestor, relay.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::api::{ApiOptions, ApiSource};
use crate::handoff::Handoff;
use crate::ingest::Ingestor;
use crate::kafka::Compression;
use crate::metrics::Metrics;
use crate::outbox::{self, BatchStatus, Tables};
use crate::producer::{self, Relay};

#[derive(Debug, Clone)]
pub struct Config {
    pub pg_url: String,
    pub staging_table: String,
    pub brokers: String,
    pub topic: String,
    pub compression: Compression,
    /// How long librdkafka keeps trying one message before the relay gets a
    /// failure (and sends the row again on a later cycle).
    pub message_timeout: Duration,
    /// `enable.idempotence`; see [`crate::kafka::producer`].
    pub idempotence: bool,
    /// Most rows a batch is staged ahead of a relay that is producing it
    /// (0: no limit); see [`crate::ingest::Ingestor::max_lead`].
    pub max_lead: u64,
    pub api: ApiOptions,
}

/// Rows per claim → send → mark cycle: each cycle waits for every delivery
/// report and a commit, so larger cycles keep the producer busy.
pub const CLAIM_SIZE: i64 = 5000;

/// The default [`Config::max_lead`]: four claims, so the relay always has its
/// next claim staged while one is being delivered and one marked.
pub const DEFAULT_MAX_LEAD: u64 = 4 * CLAIM_SIZE as u64;

pub struct Pipeline {
    pub ingestor: Arc<Ingestor>,
    pub relay: Relay,
    shutdown: watch::Sender<bool>,
    relay_task: JoinHandle<()>,
}

impl Pipeline {
    /// Creates the schema and starts the relay in the background.
    pub async fn start(cfg: Config) -> anyhow::Result<Pipeline> {
        let tables = Tables::new(&cfg.staging_table);
        let mut client = outbox::connect(&cfg.pg_url).await?;
        outbox::ensure_schema(&mut client, &tables).await?;
        let metrics = Arc::new(Metrics::default());
        let notify = Arc::new(Notify::new());
        let api = ApiSource::new(cfg.api.clone(), metrics.clone())?;
        let handoff = Arc::new(Handoff::default());
        let relay = Relay {
            pg_url: cfg.pg_url.clone(),
            tables: tables.clone(),
            topic: cfg.topic.clone(),
            producer: producer::make_producer(
                &cfg.brokers,
                cfg.compression,
                cfg.message_timeout,
                cfg.idempotence,
            )?,
            metrics: metrics.clone(),
            notify: notify.clone(),
            claim_size: CLAIM_SIZE,
            poll_interval: Duration::from_secs(1),
            handoff: handoff.clone(),
        };
        let ingestor = Arc::new(Ingestor {
            pg_url: cfg.pg_url,
            tables,
            api,
            metrics,
            notify,
            max_lead: cfg.max_lead,
            handoff: Some(handoff),
        });
        warn_if_topic_missing(&relay);
        let (shutdown, rx) = watch::channel(false);
        let relay_task = tokio::spawn(relay.clone().run(rx));
        Ok(Pipeline {
            ingestor,
            relay,
            shutdown,
            relay_task,
        })
    }

    pub async fn status(&self, batch: Uuid) -> anyhow::Result<Option<BatchStatus>> {
        let client = outbox::connect(&self.ingestor.pg_url).await?;
        Ok(outbox::batch_status(&client, &self.ingestor.tables, batch).await?)
    }

    /// See [`outbox::wait_produced`].
    pub async fn wait_produced(
        &self,
        batch: Uuid,
        timeout: Duration,
    ) -> anyhow::Result<BatchStatus> {
        outbox::wait_produced(&self.ingestor.pg_url, &self.ingestor.tables, batch, timeout).await
    }

    /// Stops the relay after its current cycle, or abandons that cycle after
    /// 15 s (e.g. the broker is down): its transaction rolls back and the
    /// rows stay staged for the next start.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let mut task = self.relay_task;
        if tokio::time::timeout(Duration::from_secs(15), &mut task)
            .await
            .is_err()
        {
            tracing::warn!("relay still waiting for Kafka at shutdown; abandoning its cycle");
            task.abort();
        }
    }
}

/// tansu does not auto-create topics, and a send to a missing topic waits for
/// the whole message timeout; say so at start instead of looking stuck. Only
/// a warning: the broker may just be down, and staging works regardless.
fn warn_if_topic_missing(relay: &Relay) {
    use rdkafka::producer::Producer;
    let producer = relay.producer.clone();
    let topic = relay.topic.clone();
    tokio::task::spawn_blocking(move || {
        match producer
            .client()
            .fetch_metadata(Some(&topic), Duration::from_secs(5))
        {
            Ok(md) => {
                let missing = md
                    .topics()
                    .iter()
                    .all(|t| t.name() != topic || t.partitions().is_empty() || t.error().is_some());
                if missing {
                    tracing::warn!(%topic, "topic does not exist on the broker; rows stay staged until it is created");
                }
            }
            Err(e) => {
                tracing::warn!(%topic, error = %e, "cannot read topic metadata; is the broker up?")
            }
        }
    });
}
