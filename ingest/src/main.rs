//! The `ember-ingest` command.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use ember_ingest::api::ApiOptions;
use ember_ingest::check;
use ember_ingest::cli;
use ember_ingest::ingest::{IngestRequest, SourceKind};
use ember_ingest::kafka::Compression;
use ember_ingest::load::{self, LoadOptions};
use ember_ingest::outbox::{self, Tables};
use ember_ingest::pipeline::{Config, Pipeline};
use ember_ingest::service;
use tracing::info;
use uuid::Uuid;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "ember-ingest",
    version,
    about = "Users (randomuser.me API or generator) → Postgres outbox → Kafka; and a load producer"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fetch or generate one batch, stage it, produce it, then exit.
    Run(RunArgs),
    /// HTTP service: POST /ingest, GET /batches/{id}, /healthz, /metrics.
    Serve(ServeArgs),
    /// Re-send already produced rows fetched in [--since, --until).
    Replay(ReplayArgs),
    /// Verify staged rows were produced and are on the topic (exit 1 if not).
    Check(CheckArgs),
    /// Write synthetic users straight to Kafka at a target rate.
    Load(LoadArgs),
}

#[derive(Args, Clone)]
struct Common {
    /// Postgres URL of the staging database (alias --pg).
    #[arg(
        long = "postgres",
        visible_alias = "pg",
        env = "EMBER_PG",
        default_value = ember_ingest::outbox::DEFAULT_PG_URL
    )]
    pg: String,
    /// Staging (outbox) table; `<name>_batches` holds the batches.
    #[arg(long, env = "EMBER_INGEST_TABLE", default_value = "ember_ingest_staging", value_parser = cli::sql_ident)]
    staging_table: String,
    #[arg(long, env = "EMBER_KAFKA", default_value = "127.0.0.1:9092")]
    brokers: String,
    #[arg(long, env = "EMBER_INGEST_TOPIC", default_value = "users_created", value_parser = cli::topic)]
    topic: String,
    /// The producer's compression.type. None by default, as in Kafka: tansu
    /// stores records uncompressed and compresses every fetch again, so lz4
    /// cuts its consume rate by more than half (see kafka.rs). lz4 pays off
    /// on real Kafka.
    #[arg(long, value_enum, default_value = "none")]
    compression: Compression,
    /// Seconds librdkafka retries one message before the row is retried later.
    #[arg(long, default_value = "120", value_parser = clap::value_parser!(u64).range(1..=3600))]
    message_timeout_secs: u64,
    /// enable.idempotence for the producer. Off by default: tansu 0.6 breaks
    /// when an idempotent producer outlives a broker restart.
    #[arg(long, env = "EMBER_INGEST_IDEMPOTENCE", default_value_t = false, action = clap::ArgAction::Set)]
    idempotence: bool,
    /// Most rows a batch is staged ahead of a relay that is producing it, so
    /// staging does not take the CPU the relay and the broker need (0: no
    /// limit). A relay that stops producing (broker down) is not waited for.
    #[arg(long, value_name = "ROWS", default_value_t = ember_ingest::pipeline::DEFAULT_MAX_LEAD)]
    max_lead: u64,
}

#[derive(Args, Clone)]
struct ApiArgs {
    /// randomuser.me-compatible endpoint (`?results=N` is appended).
    #[arg(long, env = "EMBER_INGEST_API_URL", default_value = "https://randomuser.me/api/", value_parser = cli::http_url)]
    api_url: String,
    /// Per-request timeout, seconds.
    #[arg(long, default_value = "10", value_parser = clap::value_parser!(u64).range(1..=600))]
    api_timeout_secs: u64,
    /// Attempts per page (first try included) before the batch fails.
    #[arg(long, default_value = "6", value_parser = clap::value_parser!(u32).range(1..=100))]
    api_attempts: u32,
    /// First retry delay in ms (doubles per retry, with jitter).
    #[arg(long, default_value = "500", value_parser = clap::value_parser!(u64).range(1..=600_000))]
    api_backoff_ms: u64,
    /// Longest retry delay in ms.
    #[arg(long, default_value = "30000", value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    api_backoff_max_ms: u64,
    /// Users per API call (randomuser.me allows up to 5000).
    #[arg(long, default_value = "500", value_parser = clap::value_parser!(u64).range(1..=5000))]
    page_size: u64,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    api: ApiArgs,
    /// Users to fetch or generate.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    count: u32,
    #[arg(long, value_enum, default_value = "api")]
    source: SourceKind,
    /// Generator seed (generate only; default random).
    #[arg(long)]
    seed: Option<u64>,
    /// How long to wait for Kafka to acknowledge the batch.
    #[arg(long, default_value = "300", value_parser = clap::value_parser!(u64).range(1..))]
    produce_timeout_secs: u64,
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    api: ApiArgs,
    #[arg(long, env = "EMBER_INGEST_LISTEN", default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
}

#[derive(Args)]
struct ReplayArgs {
    #[command(flatten)]
    common: Common,
    /// Start (inclusive) of the fetched_at range, RFC 3339.
    #[arg(long, value_parser = rfc3339)]
    since: DateTime<Utc>,
    /// End (exclusive) of the fetched_at range, RFC 3339 (default now).
    #[arg(long, value_parser = rfc3339)]
    until: Option<DateTime<Utc>>,
    /// Only this batch.
    #[arg(long)]
    batch: Option<Uuid>,
}

#[derive(Args)]
struct CheckArgs {
    #[command(flatten)]
    common: Common,
    /// Only this batch (default: the whole staging table).
    #[arg(long)]
    batch: Option<Uuid>,
    #[arg(long, default_value = "60", value_parser = clap::value_parser!(u64).range(1..))]
    timeout_secs: u64,
}

#[derive(Args)]
struct LoadArgs {
    /// Target messages per second (token bucket); omit for as fast as possible.
    #[arg(long, value_name = "R", value_parser = cli::positive_rate)]
    rate: Option<f64>,
    /// Number of messages to write.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    count: u64,
    #[arg(long, value_name = "T", default_value = "users_created", value_parser = cli::topic)]
    topic: String,
    #[arg(
        long,
        value_name = "B",
        env = "EMBER_KAFKA",
        default_value = "127.0.0.1:9092"
    )]
    brokers: String,
    /// Fraction of malformed messages (not JSON, non-object, empty, non-UTF-8, missing id).
    #[arg(long, value_name = "RATIO", default_value = "0", value_parser = cli::ratio)]
    bad_ratio: f64,
    /// Generator seed (default: random).
    #[arg(long)]
    seed: Option<u64>,
    /// The producer's compression.type (see `run --help`).
    #[arg(long, value_enum, default_value = "none")]
    compression: Compression,
    /// enable.idempotence (off by default, see `run --help`).
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set)]
    idempotence: bool,
    /// Print the final report as one JSON line on stdout.
    #[arg(long)]
    json: bool,
}

fn rfc3339(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| format!("`{s}` is not an RFC 3339 time (e.g. 2026-01-31T12:00:00Z): {e}"))
}

fn config(c: &Common, api: Option<&ApiArgs>) -> Config {
    let api = api.map_or_else(ApiOptions::default, |a| ApiOptions {
        url: a.api_url.clone(),
        timeout: Duration::from_secs(a.api_timeout_secs),
        attempts: a.api_attempts,
        backoff: Duration::from_millis(a.api_backoff_ms),
        backoff_max: Duration::from_millis(a.api_backoff_max_ms),
        page_size: a.page_size as usize,
    });
    Config {
        pg_url: c.pg.clone(),
        staging_table: c.staging_table.clone(),
        brokers: c.brokers.clone(),
        topic: c.topic.clone(),
        compression: c.compression,
        message_timeout: Duration::from_secs(c.message_timeout_secs),
        idempotence: c.idempotence,
        max_lead: c.max_lead,
        api,
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Cli::parse();
    init_tracing();
    match dispatch(args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ember-ingest: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

async fn dispatch(args: Cli) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::Run(a) => {
            let pipeline = Pipeline::start(config(&a.common, Some(&a.api))).await?;
            let summary = pipeline
                .ingestor
                .ingest(IngestRequest {
                    count: a.count,
                    source: a.source,
                    seed: a.seed,
                })
                .await?;
            let status = pipeline
                .wait_produced(
                    summary.batch_id,
                    Duration::from_secs(a.produce_timeout_secs),
                )
                .await;
            pipeline.stop().await;
            let status = status?;
            println!("{}", serde_json::to_string(&status)?);
            Ok(if status.state == "produced" {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Serve(a) => {
            let pipeline = Pipeline::start(config(&a.common, Some(&a.api))).await?;
            let listener = tokio::net::TcpListener::bind(a.listen).await?;
            // The resolved address, so callers can pass port 0 and read it back.
            let addr = listener.local_addr()?;
            info!(%addr, "ember-ingest serving");
            println!("listening on http://{addr}");
            axum::serve(listener, service::router(Arc::clone(&pipeline.ingestor)))
                .with_graceful_shutdown(shutdown_signal())
                .await?;
            pipeline.stop().await;
            Ok(ExitCode::SUCCESS)
        }
        Command::Replay(a) => {
            let until = a.until.unwrap_or_else(Utc::now);
            anyhow::ensure!(a.since < until, "--since must be before --until");
            let cfg = config(&a.common, None);
            let pipeline = Pipeline::start(cfg.clone()).await?;
            let mut client = outbox::connect(&cfg.pg_url).await?;
            let report = pipeline
                .relay
                .replay(&mut client, a.since, until, a.batch)
                .await;
            pipeline.stop().await;
            let report = report?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(if report.failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Check(a) => {
            let tables = Tables::new(&a.common.staging_table);
            let report = check::check(
                &a.common.pg,
                &tables,
                &a.common.brokers,
                a.batch,
                Duration::from_secs(a.timeout_secs),
            )
            .await?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(if report.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Load(a) => {
            let report = load::run(LoadOptions {
                brokers: a.brokers,
                topic: a.topic,
                count: a.count,
                rate: a.rate,
                bad_ratio: a.bad_ratio,
                seed: a.seed.unwrap_or_else(rand::random),
                compression: a.compression,
                idempotence: a.idempotence,
                progress: true,
            })
            .await?;
            if a.json {
                println!("{}", serde_json::to_string(&report)?);
            }
            eprintln!(
                "load: {} sent, {} delivered, {} delivery errors, {} good, {} bad {:?} in {:.2}s ({:.0} msg/s achieved)",
                report.sent,
                report.delivered,
                report.delivery_errors,
                report.good,
                report.bad_total,
                report.bad,
                report.elapsed_secs,
                report.achieved_rate
            );
            for e in &report.errors {
                eprintln!("load: delivery error: {e}");
            }
            Ok(if report.delivery_errors == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}
