//! `ember-bench`: start what a scenario needs, run it, print a table.
//!
//!     scripts/stack up
//!     cargo build --profile bench -p ember-scheduler -p ember-executor -p ember-ingest -p ember-cql
//!     cargo run -p ember-bench --profile bench -- all --count 200000
//!
//! Figures to compare are measured in the same run (the machine is shared).

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use ember_e2e::{Cluster, cql, cql_session, create_topic, kafka, reference_spec, unique};
use futures::StreamExt;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

#[derive(Parser)]
#[command(name = "ember-bench", about = "Ember benchmarks")]
struct Args {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand, Clone, Copy)]
enum Scenario {
    /// The broker's raw consume rate and the store's prepared-insert rate.
    Ceiling {
        #[arg(long, default_value_t = 200_000)]
        count: u64,
    },
    /// The reference job draining a backlog with 1 and 2 executors, with peak RSS.
    Pipeline {
        #[arg(long, default_value_t = 200_000)]
        count: u64,
    },
    /// Both, against the same backlog, with ratios.
    All {
        #[arg(long, default_value_t = 200_000)]
        count: u64,
    },
}

fn bin_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(PathBuf::from))
        .unwrap_or_default()
}

/// Produces `count` users with the bench-built ember-ingest; returns its rate.
fn produce(topic: &str, count: u64) -> Result<f64> {
    let t = Instant::now();
    let out = Command::new(bin_dir().join("ember-ingest"))
        .args([
            "load",
            "--count",
            &count.to_string(),
            "--topic",
            topic,
            "--brokers",
            &kafka(),
            "--seed",
            "1",
        ])
        .output()
        .context("running ember-ingest (build it with --profile bench)")?;
    if !out.status.success() {
        bail!(
            "ember-ingest load failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(count as f64 / t.elapsed().as_secs_f64())
}

/// Raw rdkafka consume of the whole topic, one consumer per partition.
fn consume_rate(topic: &str, partitions: i32, count: u64) -> Result<f64> {
    let t = Instant::now();
    let handles: Vec<_> = (0..partitions)
        .map(|p| {
            let topic = topic.to_string();
            std::thread::spawn(move || -> Result<u64> {
                let c: BaseConsumer = ClientConfig::new()
                    .set("bootstrap.servers", kafka())
                    .set("group.id", "ember-bench")
                    .set("enable.auto.commit", "false")
                    .create()?;
                let (_, hi) = c.fetch_watermarks(&topic, p, Duration::from_secs(10))?;
                let mut tpl = TopicPartitionList::new();
                tpl.add_partition_offset(&topic, p, Offset::Beginning)?;
                c.assign(&tpl)?;
                let mut n = 0u64;
                let mut last = 0i64;
                while last + 1 < hi {
                    if let Some(m) = c.poll(Duration::from_secs(30)) {
                        last = rdkafka::Message::offset(&m?);
                        n += 1;
                    } else {
                        bail!("partition {p}: no record within 30 s");
                    }
                }
                Ok(n)
            })
        })
        .collect();
    let mut n = 0;
    for h in handles {
        n += h
            .join()
            .map_err(|_| anyhow::anyhow!("consumer thread panicked"))??;
    }
    if n != count {
        bail!("consumed {n} records, expected {count}");
    }
    Ok(n as f64 / t.elapsed().as_secs_f64())
}

/// Prepared inserts of the reference row at concurrency 256.
async fn insert_rate(count: u64) -> Result<f64> {
    let s = Arc::new(cql_session().await?);
    let ks = unique("bench_ins");
    s.query_unpaged(format!("CREATE KEYSPACE {ks} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"), ()).await?;
    s.query_unpaged(format!("CREATE TABLE {ks}.u (id uuid PRIMARY KEY, first_name text, last_name text, email text, address text)"), ()).await?;
    let stmt = s
        .prepare(format!(
            "INSERT INTO {ks}.u (id, first_name, last_name, email, address) VALUES (?, ?, ?, ?, ?)"
        ))
        .await?;
    let t = Instant::now();
    futures::stream::iter(0..count)
        .map(|i| {
            let (s, stmt) = (s.clone(), stmt.clone());
            async move {
                let id = scylla::value::CqlValue::Uuid(uuid_of(i));
                s.execute_unpaged(
                    &stmt,
                    (
                        id,
                        "Ava",
                        "Smith",
                        format!("ava{i}@example.com"),
                        "12 Main Street, Springfield, Oregon, United States",
                    ),
                )
                .await
            }
        })
        .buffer_unordered(256)
        .for_each(|r| {
            if let Err(e) = r {
                eprintln!("insert failed: {e}");
            }
            futures::future::ready(())
        })
        .await;
    Ok(count as f64 / t.elapsed().as_secs_f64())
}

fn uuid_of(i: u64) -> uuid::Uuid {
    uuid::Uuid::from_u64_pair(0x1234_5678_9abc_4def, 0x8000_0000_0000_0000 | i)
}

/// Peak RSS (VmHWM) of a process, in MB.
fn peak_rss_mb(pid: Option<u32>) -> f64 {
    let Some(pid) = pid else { return 0.0 };
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(str::to_string)
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

struct PipelineRun {
    executors: usize,
    seconds: f64,
    rows_per_sec: f64,
    scheduler_mb: f64,
    executor_mb: Vec<f64>,
}

async fn pipeline(topic: &str, count: u64, executors: usize) -> Result<PipelineRun> {
    // SAFETY: set before any thread of ours reads it; the harness reads it when spawning.
    unsafe { std::env::set_var("EMBER_BIN_DIR", bin_dir()) };
    let cluster = Cluster::start(executors).await?;
    let ks = unique("bench_pipe");
    let spec = reference_spec("bench", topic, &ks, "", "availableNow = true");
    let t = Instant::now();
    cluster.submit(&spec, false).await?;
    let d = cluster
        .wait_job("bench", Duration::from_secs(1800), "finished", |d| {
            d.summary.as_ref().is_some_and(|s| s.state == "finished")
        })
        .await?;
    let seconds = t.elapsed().as_secs_f64();
    let s = d.summary.unwrap_or_default();
    if s.rows_out != count {
        bail!("pipeline wrote {} rows, expected {count}", s.rows_out);
    }
    Ok(PipelineRun {
        executors,
        seconds,
        rows_per_sec: count as f64 / seconds,
        scheduler_mb: peak_rss_mb(cluster.scheduler.pid()),
        executor_mb: cluster
            .executors
            .iter()
            .map(|e| peak_rss_mb(e.pid()))
            .collect(),
    })
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let count = match args.scenario {
        Scenario::Ceiling { count } | Scenario::Pipeline { count } | Scenario::All { count } => {
            count
        }
    };
    let topic = unique("bench_users");
    create_topic(&topic, 4)?;
    println!(
        "machine: {} cores, kafka {} (tansu), cql {} (ember-cql)",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        kafka(),
        cql()
    );
    let produce_rate = produce(&topic, count)?;
    println!("| scenario | figure |\n| --- | --- |");
    println!("| produce {count} users (ember-ingest load) | {produce_rate:.0} msg/s |");
    let mut ceiling = f64::INFINITY;
    if matches!(
        args.scenario,
        Scenario::Ceiling { .. } | Scenario::All { .. }
    ) {
        let consume = consume_rate(&topic, 4, count)?;
        let insert = insert_rate(count).await?;
        ceiling = consume.min(insert);
        println!("| ceiling: raw rdkafka consume, 4 partitions | {consume:.0} msg/s |");
        println!("| ceiling: prepared inserts, concurrency 256 | {insert:.0} rows/s |");
    }
    if matches!(
        args.scenario,
        Scenario::Pipeline { .. } | Scenario::All { .. }
    ) {
        for executors in [1, 2] {
            let r = pipeline(&topic, count, executors).await?;
            let frac = if ceiling.is_finite() {
                format!(", {:.0}% of ceiling", 100.0 * r.rows_per_sec / ceiling)
            } else {
                String::new()
            };
            println!(
                "| pipeline, {} executor(s): {count} rows in {:.1} s | {:.0} rows/s{frac}; peak RSS scheduler {:.0} MB, executors {} MB |",
                r.executors,
                r.seconds,
                r.rows_per_sec,
                r.scheduler_mb,
                r.executor_mb
                    .iter()
                    .map(|m| format!("{m:.0}"))
                    .collect::<Vec<_>>()
                    .join(" / ")
            );
        }
    }
    Ok(())
}
