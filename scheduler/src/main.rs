//! `ember-scheduler`: Ballista's scheduler (the Spark master) with Ember's
//! codecs, the streaming-job manager, the CLI's gRPC service, the REST API,
//! `/metrics` and the web UI, in one process.

mod checkpoint;
mod executors;
mod grpc;
mod http;
mod manager;
mod ui;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::{SchedulerConfig, TaskDistributionPolicy};
use ballista_scheduler::scheduler_process::start_server;
use clap::Parser;
use ember_jobs::{EmberLogicalCodec, EmberPhysicalCodec};

#[derive(Debug, Parser)]
#[command(
    name = "ember-scheduler",
    version,
    about = "Ember scheduler: the cluster's master and streaming-job manager"
)]
struct Args {
    /// Address to bind every port on.
    #[arg(long, default_value = "127.0.0.1")]
    bind_host: String,
    /// Host executors and clients reach this scheduler at.
    #[arg(long, default_value = "127.0.0.1")]
    external_host: String,
    /// Ballista's gRPC + REST port.
    #[arg(long, default_value_t = 50050)]
    port: u16,
    /// Ember's gRPC port for the CLI.
    #[arg(long, default_value_t = 50060)]
    grpc_port: u16,
    /// Web UI, REST API (/api/v1) and /metrics.
    #[arg(long, default_value_t = 4040)]
    ui_port: u16,
    /// Where checkpoints and job specs live (default $EMBER_HOME/scheduler).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// An executor with no heartbeat for this long is declared lost and its
    /// tasks re-run elsewhere (Ballista's default, 180 s, stalls streaming).
    #[arg(long, default_value_t = 10)]
    executor_timeout_secs: u64,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                "info,ballista_scheduler=warn,ballista_core=warn,scylla::cluster::metadata=off"
                    .into()
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let state_dir = args.state_dir.clone().unwrap_or_else(|| {
        PathBuf::from(std::env::var("EMBER_HOME").unwrap_or_else(|_| ".ember".into()))
            .join("scheduler")
    });
    std::fs::create_dir_all(&state_dir)
        .with_context(|| format!("creating {}", state_dir.display()))?;

    let config = SchedulerConfig {
        bind_host: args.bind_host.clone(),
        external_host: args.external_host.clone(),
        bind_port: args.port,
        executor_timeout_seconds: args.executor_timeout_secs,
        expire_dead_executor_interval_seconds: 2,
        // Spread a batch's ranges over every executor (Bias fills one first),
        // so more executors means more parallel reads and writes.
        task_distribution: TaskDistributionPolicy::RoundRobin,
        override_logical_codec: Some(Arc::new(EmberLogicalCodec::default())),
        override_physical_codec: Some(Arc::new(EmberPhysicalCodec::default())),
        ..Default::default()
    };
    let addr: SocketAddr = format!("{}:{}", args.bind_host, args.port)
        .parse()
        .context("--bind-host/--port")?;
    let cluster = BallistaCluster::new_from_config(&config).await?;
    let ballista = tokio::spawn(start_server(cluster, addr, Arc::new(config)));

    let ballista_http = format!("http://{}:{}", args.external_host, args.port);
    wait_for_port(addr).await?;
    let manager = manager::Manager::new(state_dir.clone(), ballista_http.clone());
    manager.recover().await;

    let grpc_addr: SocketAddr = format!("{}:{}", args.bind_host, args.grpc_port).parse()?;
    let service = grpc::Service {
        manager: manager.clone(),
        ballista_http: ballista_http.clone(),
        executor_timeout_secs: args.executor_timeout_secs,
    };
    let grpc = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(ember_proto::ember_service_server::EmberServiceServer::new(
                service,
            ))
            .serve(grpc_addr),
    );

    let ui_addr: SocketAddr = format!("{}:{}", args.bind_host, args.ui_port).parse()?;
    let app = http::router(http::AppState {
        manager: manager.clone(),
        ballista_http,
        executor_timeout_secs: args.executor_timeout_secs,
    });
    let listener = tokio::net::TcpListener::bind(ui_addr)
        .await
        .with_context(|| format!("binding the UI on {ui_addr}"))?;
    let ui = tokio::spawn(async move { axum::serve(listener, app).await });
    tracing::info!(
        "ember-scheduler: Ballista on {addr}, CLI gRPC on {grpc_addr}, UI/REST on http://{ui_addr}, state in {}",
        state_dir.display()
    );
    tokio::select! {
        r = ballista => anyhow::bail!("Ballista scheduler ended: {r:?}"),
        r = grpc => anyhow::bail!("gRPC service ended: {r:?}"),
        r = ui => anyhow::bail!("web UI ended: {r:?}"),
        _ = tokio::signal::ctrl_c() => { tracing::info!("shutting down"); Ok(()) }
    }
}

async fn wait_for_port(addr: SocketAddr) -> anyhow::Result<()> {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    anyhow::bail!("Ballista's scheduler did not listen on {addr}")
}
