//! Prepared-insert throughput with the scylla driver against ember-cql.
//!
//! ```sh
//! cargo run -p ember-cql --profile bench --example insert_bench -- \
//!     --concurrency 256 --count 200000 --commitlog-sync periodic
//! ```
//!
//! Without `--addr` the server runs in-process (on its own tokio runtime) with a temporary data
//! directory; with `--addr HOST:PORT` it benchmarks an already running server (ember-cql, Scylla,
//! Cassandra). Each of `--concurrency` workers issues one request at a time, so at most that many
//! inserts are in flight. Prints rows, seconds, inserts/s and per-insert latency percentiles.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use ember_cql::{Config, Server, SyncMode};
use scylla::client::session_builder::SessionBuilder;

#[derive(Parser, Debug)]
struct Args {
    /// Requests in flight.
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// Rows to insert.
    #[arg(long, default_value_t = 200_000)]
    count: u64,
    /// Commit-log mode of the in-process server (ignored with --addr).
    #[arg(long, value_enum, default_value = "periodic")]
    commitlog_sync: SyncMode,
    /// Group window / periodic fsync interval in ms (default: the binary's defaults).
    #[arg(long)]
    commitlog_sync_period_ms: Option<u64>,
    /// Keep the in-process server in memory (no commit log).
    #[arg(long)]
    memory: bool,
    /// Benchmark a running server instead of starting one.
    #[arg(long)]
    addr: Option<SocketAddr>,
    /// Server runtime worker threads (in-process server; default: number of CPUs).
    #[arg(long)]
    server_threads: Option<usize>,
    /// Client runtime worker threads (default: number of CPUs).
    #[arg(long)]
    client_threads: Option<usize>,
}

fn runtime(threads: Option<usize>, name: &str) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    b.enable_all().thread_name(name);
    if let Some(n) = threads {
        b.worker_threads(n.max(1));
    }
    Ok(b.build()?)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let server_rt = runtime(args.server_threads, "ember-cql-server")?;
    let client_rt = runtime(args.client_threads, "bench-client")?;

    let mut data_dir: Option<PathBuf> = None;
    let (addr, server, mode) = match args.addr {
        Some(a) => (a, None, "external server".to_string()),
        None => {
            if !args.memory {
                let d = std::env::temp_dir().join(format!(
                    "ember-cql-bench-{}-{}",
                    std::process::id(),
                    uuid::Uuid::new_v4()
                ));
                std::fs::create_dir_all(&d)?;
                data_dir = Some(d);
            }
            let period = args
                .commitlog_sync_period_ms
                .unwrap_or(match args.commitlog_sync {
                    SyncMode::Periodic => 10_000,
                    SyncMode::Group | SyncMode::Batch => 10,
                });
            let cfg = Config {
                listen: "127.0.0.1:0".parse()?,
                data_dir: data_dir.clone(),
                commitlog_sync: args.commitlog_sync,
                commitlog_sync_period: Duration::from_millis(period),
                ..Config::default()
            };
            let handle = server_rt.block_on(Server::start(cfg))?;
            let mode = match (args.memory, args.commitlog_sync) {
                (true, _) => "memory (no commit log)".to_string(),
                (false, SyncMode::Batch) => "batch".to_string(),
                (false, m) => format!("{m:?}, {period} ms").to_lowercase(),
            };
            (handle.local_addr(), Some(handle), mode)
        }
    };

    let cpu_before = thread_cpu();
    let result = client_rt.block_on(run(addr, args.concurrency, args.count));
    let cpu = thread_cpu().into_iter().map(|(name, t)| {
        let before = cpu_before
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(0.0, |(_, b)| *b);
        (name, t - before)
    });
    let cpu: Vec<(String, f64)> = cpu.filter(|(_, t)| *t > 0.005).collect();

    if let Some(h) = server {
        server_rt.block_on(h.shutdown());
    }
    if let Some(d) = data_dir {
        let _ = std::fs::remove_dir_all(d);
    }
    let r = result?;
    println!();
    println!(
        "| rows | concurrency | seconds | inserts/s | p50 ms | p99 ms | p99.9 ms | commit log |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---|");
    println!(
        "| {} | {} | {:.2} | {:.0} | {:.2} | {:.2} | {:.2} | {} |",
        args.count,
        args.concurrency,
        r.secs,
        args.count as f64 / r.secs,
        r.p50_us as f64 / 1000.0,
        r.p99_us as f64 / 1000.0,
        r.p999_us as f64 / 1000.0,
        mode
    );
    if !cpu.is_empty() {
        let parts: Vec<String> = cpu.iter().map(|(n, t)| format!("{n} {t:.2}")).collect();
        println!(
            "\nCPU seconds by thread during the run: {}",
            parts.join(", ")
        );
        let server: f64 = cpu
            .iter()
            .filter(|(n, _)| n.starts_with("ember-cql"))
            .map(|(_, t)| t)
            .sum();
        if server > 0.0 {
            println!(
                "server CPU per insert: {:.1} µs ({:.0} inserts per server CPU-second)",
                server * 1e6 / args.count as f64,
                args.count as f64 / server
            );
        }
    }
    Ok(())
}

/// CPU seconds used so far by this process's threads, grouped by thread name (Linux only;
/// empty elsewhere).
fn thread_cpu() -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = Vec::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for t in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ... utime stime: fields 14 and 15, counted after the ')'.
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let name = head.split_once('(').map_or("?", |(_, n)| n).to_string();
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks: f64 = f.get(11..13).map_or(0.0, |v| {
            v.iter().filter_map(|x| x.parse::<f64>().ok()).sum()
        });
        let secs = ticks / 100.0; // USER_HZ is 100 on Linux
        match out.iter_mut().find(|(n, _)| *n == name) {
            Some(e) => e.1 += secs,
            None => out.push((name, secs)),
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

struct Outcome {
    secs: f64,
    p50_us: u64,
    p99_us: u64,
    p999_us: u64,
}

async fn run(addr: SocketAddr, concurrency: usize, count: u64) -> anyhow::Result<Outcome> {
    let session = Arc::new(
        SessionBuilder::new()
            .known_node_addr(addr)
            .build()
            .await
            .context("connect")?,
    );
    session
        .query_unpaged("DROP KEYSPACE IF EXISTS ember_bench", &[])
        .await?;
    session
        .query_unpaged(
            "CREATE KEYSPACE ember_bench WITH replication = \
             {'class': 'SimpleStrategy', 'replication_factor': 1}",
            &[],
        )
        .await?;
    session
        .query_unpaged(
            "CREATE TABLE ember_bench.t (id bigint PRIMARY KEY, a text, b text, c bigint)",
            &[],
        )
        .await?;
    let insert = Arc::new(
        session
            .prepare("INSERT INTO ember_bench.t (id, a, b, c) VALUES (?, ?, ?, ?)")
            .await?,
    );

    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut workers = Vec::with_capacity(concurrency);
    for _ in 0..concurrency.max(1) {
        let (session, insert, next) = (session.clone(), insert.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity((count as usize) / concurrency.max(1) + 1);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    break;
                }
                let id = i as i64;
                let t = Instant::now();
                session
                    .execute_unpaged(
                        &insert,
                        (id, "first name", "some longer text value", id * 7),
                    )
                    .await
                    .with_context(|| format!("insert {i}"))?;
                lat.push(t.elapsed().as_micros() as u64);
            }
            anyhow::Ok(lat)
        }));
    }
    let mut lat = Vec::with_capacity(count as usize);
    for w in workers {
        lat.extend(w.await??);
    }
    let secs = start.elapsed().as_secs_f64();

    let (n,): (i64,) = session
        .query_unpaged("SELECT COUNT(*) FROM ember_bench.t", &[])
        .await?
        .into_rows_result()?
        .single_row()?;
    anyhow::ensure!(n as u64 == count, "COUNT(*) = {n}, expected {count}");

    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    anyhow::ensure!(!lat.is_empty(), "no inserts measured");
    Ok(Outcome {
        secs,
        p50_us: pct(0.50),
        p99_us: pct(0.99),
        p999_us: pct(0.999),
    })
}
