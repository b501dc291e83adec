//! `ember-executor`: Ballista's executor (a Spark worker) with Ember's Kafka
//! source, Cassandra sink and functions registered through the codecs.
//! Start more of them to scale out; each takes its ports from `--index`.

use std::sync::Arc;

use ballista_core::config::TaskSchedulingPolicy;
use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use clap::Parser;
use ember_jobs::{EmberLogicalCodec, EmberPhysicalCodec};

#[derive(Debug, Parser)]
#[command(
    name = "ember-executor",
    version,
    about = "Ember executor: runs micro-batch tasks for the scheduler"
)]
struct Args {
    /// Scheduler host.
    #[arg(long, env = "EMBER_SCHEDULER_HOST", default_value = "127.0.0.1")]
    scheduler_host: String,
    /// Scheduler's Ballista port.
    #[arg(long, env = "EMBER_SCHEDULER_PORT", default_value_t = 50050)]
    scheduler_port: u16,
    /// Executor number on this host: ports are 50070 + 3 × index (Flight,
    /// then gRPC), so several executors can share a host.
    #[arg(long, default_value_t = 0)]
    index: u16,
    /// Flight port (overrides the one from --index); gRPC is the next port.
    #[arg(long)]
    port: Option<u16>,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    bind_host: String,
    /// Host the scheduler and other executors reach this one at.
    #[arg(long)]
    external_host: Option<String>,
    /// Task slots.
    #[arg(long, default_value_t = 4)]
    task_slots: usize,
    /// Executor id (default: generated).
    #[arg(long)]
    id: Option<String>,
    /// Heartbeat interval, seconds (Ballista's default of 60 s is far too slow for streaming).
    #[arg(long, default_value_t = 2)]
    heartbeat_secs: u64,
    /// Working directory for shuffle files.
    #[arg(long)]
    work_dir: Option<String>,
}

/// Keeps glibc's heap from growing with the Kafka path's large buffers.
///
/// A consumer's fetch response is one buffer of up to a few MB. glibc maps
/// the first of them with mmap, then raises its mmap threshold to their size,
/// so later ones come from heap arenas (one per thread, up to 8 per core)
/// whose freed space is kept. At 1M records an executor with 4 partitions
/// peaked at 189-219 MB; with a fixed 256 KiB threshold, at 162 MB, and
/// with 4 arenas as well, at 146 MB, at the same rows/s. 2 arenas gave
/// 116-130 MB but halved the engine scenario's rate (threads waiting on
/// arena locks), so 4 it is (BENCHMARKS.md, run 18). `MALLOC_ARENA_MAX`
/// and `MALLOC_MMAP_THRESHOLD_` in the environment still win.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_heap_growth() {
    let set = |var: &str, param: libc::c_int, value: libc::c_int| {
        if std::env::var_os(var).is_none() {
            // SAFETY: mallopt only tunes the allocator; it runs before any
            // other thread exists.
            unsafe { libc::mallopt(param, value) };
        }
    };
    set("MALLOC_ARENA_MAX", libc::M_ARENA_MAX, 4);
    set("MALLOC_MMAP_THRESHOLD_", libc::M_MMAP_THRESHOLD, 256 * 1024);
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_heap_growth() {}

fn main() -> anyhow::Result<()> {
    limit_heap_growth();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                "info,ballista_executor=warn,ballista_core=warn,scylla::cluster::metadata=off"
                    .into()
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let port = args.port.unwrap_or(50070 + 3 * args.index);
    let mut config = ExecutorProcessConfig {
        bind_host: args.bind_host.clone(),
        external_host: args.external_host.clone(),
        port,
        grpc_port: port + 1,
        scheduler_host: args.scheduler_host.clone(),
        scheduler_port: args.scheduler_port,
        scheduler_connect_timeout_seconds: 30,
        vcores: args.task_slots.max(1),
        task_scheduling_policy: TaskSchedulingPolicy::PushStaged,
        work_dir: args.work_dir.clone(),
        executor_heartbeat_interval_seconds: args.heartbeat_secs.max(1),
        print_thread_info: false,
        override_logical_codec: Some(Arc::new(EmberLogicalCodec::default())),
        override_physical_codec: Some(Arc::new(EmberPhysicalCodec::default())),
        ..Default::default()
    };
    if let Some(id) = args.id {
        config.executor_id = id;
    }
    ember_jobs::runtime::set_executor_id(config.executor_id.clone());
    tracing::info!(
        "ember-executor {} on {}:{} (gRPC {}), scheduler {}:{}",
        config.executor_id,
        config.bind_host,
        config.port,
        config.grpc_port,
        config.scheduler_host,
        config.scheduler_port
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(start_executor_process(Arc::new(config)))?;
    Ok(())
}
