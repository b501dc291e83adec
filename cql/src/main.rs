use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use ember_cql::{Config, Server, SyncMode};

/// Single-node CQL (Cassandra native protocol v4) store for development and CI.
#[derive(Parser, Debug)]
#[command(name = "ember-cql", version)]
struct Args {
    /// Address to listen on for CQL clients.
    #[arg(long, default_value = "127.0.0.1:9042", env = "EMBER_CQL_LISTEN")]
    listen: SocketAddr,
    /// Directory for the commit log and snapshot.
    #[arg(
        long,
        env = "EMBER_CQL_DATA_DIR",
        required_unless_present = "memory",
        conflicts_with = "memory"
    )]
    data_dir: Option<PathBuf>,
    /// Keep everything in memory; nothing survives a restart.
    #[arg(long)]
    memory: bool,
    /// When a write is acknowledged relative to its fsync (like Cassandra's commitlog_sync).
    #[arg(long, value_enum, default_value = "group")]
    commitlog_sync: SyncMode,
    /// Group window (group; default 10) or fsync interval (periodic; default 10000, like
    /// Cassandra's commitlog_sync_period); ignored for batch.
    #[arg(long)]
    commitlog_sync_period_ms: Option<u64>,
    /// Compact the commit log into the snapshot once a segment reaches this size.
    #[arg(long, default_value_t = 64)]
    commitlog_segment_size_mb: u64,
    /// Enable PasswordAuthenticator with this user (requires --password).
    #[arg(long, requires = "password", env = "EMBER_CQL_USER")]
    user: Option<String>,
    #[arg(long, requires = "user", env = "EMBER_CQL_PASSWORD")]
    password: Option<String>,
    #[arg(long, default_value = "ember")]
    cluster_name: String,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let config = Config {
        listen: args.listen,
        data_dir: if args.memory { None } else { args.data_dir },
        commitlog_sync: args.commitlog_sync,
        commitlog_sync_period: Duration::from_millis(args.commitlog_sync_period_ms.unwrap_or(
            match args.commitlog_sync {
                SyncMode::Periodic => 10_000,
                SyncMode::Group | SyncMode::Batch => 10,
            },
        )),
        commitlog_segment_bytes: args.commitlog_segment_size_mb.max(1) << 20,
        credentials: args.user.zip(args.password),
        cluster_name: args.cluster_name,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let handle = Server::start(config).await?;
        // Graceful stop on SIGINT/SIGTERM (acknowledged writes are durable either way).
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutting down");
        handle.shutdown().await;
        Ok(())
    })
}
