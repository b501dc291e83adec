//! `ember-bench`: start what a scenario needs, run it, print a table.
//!
//!     scripts/bench                     # everything, as BENCHMARKS.md records it
//!     target/bench/ember-bench all --count 1000000
//!     target/bench/ember-bench latency --rate 5000 --seconds 60
//!
//! Figures to compare are measured in the same run (the machine is shared).
//! Scenarios: ceiling, pipeline (with memory), latency, engine, spark,
//! ingest; `all` runs them in that order against one backlog.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use ember_e2e::{
    Cluster, PrivateServers, cql, cql_session, create_topic, engine_spec, kafka, reference_spec,
    repo_root, unique, with_max_offsets,
};
use ember_jobs::kafka::consumer::consumer_config;
use futures::StreamExt;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;

mod cores;

#[derive(Parser)]
#[command(
    name = "ember-bench",
    about = "Ember benchmarks: each prints a table of figures"
)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
    #[command(flatten)]
    opts: Opts,
}

#[derive(Args, Clone)]
struct Opts {
    /// Users in the backlog (ceiling, pipeline, spark, ingest).
    #[arg(long, global = true, default_value_t = 200_000)]
    count: u64,
    /// Latency: the load producer's rate (msg/s) ...
    #[arg(long, global = true, default_value_t = 5_000)]
    rate: u64,
    /// ... for this many seconds, with a 100 ms processingTime trigger.
    #[arg(long, global = true, default_value_t = 60)]
    seconds: u64,
    /// Engine: rows per micro-batch of the rate-micro-batch source (the CQL
    /// variant uses a fifth), steady batches whose rows/s is the capacity.
    #[arg(long, global = true, default_value_t = 1_000_000)]
    engine_batch: u64,
    /// Engine: seconds measured, after `--engine-warmup` seconds.
    #[arg(long, global = true, default_value_t = 30)]
    engine_seconds: u64,
    #[arg(long, global = true, default_value_t = 15)]
    engine_warmup: u64,
    /// The pipeline's maxOffsetsPerTrigger (the reference spec's is 100,000).
    /// tansu answers each fetch slowly whatever its size, so larger batches
    /// read faster.
    #[arg(long, global = true)]
    max_offsets_per_trigger: Option<u64>,
    /// Extra `kafka.*` source options for the pipeline and latency jobs,
    /// KEY=VALUE (repeatable), e.g. queued.max.messages.kbytes=16384.
    #[arg(long = "kafka-option", global = true, value_name = "KEY=VALUE")]
    kafka_options: Vec<String>,
    /// The pipeline's sink: `cassandra` (the reference job) or `noop`, which
    /// drops the rows after the transform and so measures the read path alone.
    #[arg(long, global = true, default_value = "cassandra", value_parser = ["cassandra", "noop"])]
    pipeline_sink: String,
    /// Use the broker and store of EMBER_KAFKA / EMBER_CQL (scripts/stack)
    /// instead of a fresh tansu and ember-cql of this build for the run. A
    /// fresh broker matters: tansu's fetches slow down as its database grows.
    #[arg(long, global = true)]
    shared_servers: bool,
    /// The producers' `compression.type` (the backlog, the latency load and
    /// both sides of the ingest scenario). ember-ingest's default, none, is
    /// what tansu serves fastest.
    #[arg(long, global = true, default_value = "none", value_parser = ["lz4", "gzip", "none"])]
    compression: String,
    /// Print each pipeline or latency batch's duration and its tasks' (stderr).
    #[arg(long, global = true)]
    batch_timings: bool,
    /// The pipeline's runs, in order, by executor count: `1,2,2,1` runs four,
    /// each between two raw consumes of the same backlog.
    #[arg(long, global = true, value_delimiter = ',', default_value = "1,2")]
    executors: Vec<usize>,
    /// Cores while the broker-bound scenarios (the consume ceiling, the
    /// pipeline and ingest) measure: `split` runs the bench's broker on a core
    /// of its own and everything else (the bench and its clients, Ember,
    /// ember-cql, Postgres) on the others, on both sides of each comparison;
    /// `shared` lets every process run anywhere. The other scenarios share.
    #[arg(long, global = true, default_value = "split", value_parser = ["split", "shared"])]
    cores: String,
    /// Python with pyspark 4, confluent-kafka and cassandra-driver.
    #[arg(long, global = true, env = "EMBER_PYSPARK_PYTHON")]
    python: Option<PathBuf>,
}

#[derive(Subcommand, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    /// The broker's raw consume rate and the store's prepared-insert rate.
    Ceiling,
    /// The ceiling, then the reference job draining the backlog with 1 and 2
    /// executors (`--executors`), each between two raw consumes, with peak RSS.
    Pipeline,
    /// Load at a fixed rate; sink latency percentiles at a 100 ms trigger.
    Latency,
    /// Rate source → engine transform → noop and CQL sinks; PySpark's rate source → noop.
    Engine,
    /// The reference job in Ember and in PySpark structured streaming.
    Spark,
    /// ember-ingest through Postgres against raw produce.
    Ingest,
    /// All of the above, against one backlog.
    All,
}

fn bin_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(PathBuf::from))
        .unwrap_or_default()
}

/// Rows of the printed table: (scenario, figure, target verdict).
#[derive(Default)]
struct Table(Vec<(String, String, String)>);

impl Table {
    fn row(
        &mut self,
        scenario: impl Into<String>,
        figure: impl Into<String>,
        target: impl Into<String>,
    ) {
        let r = (scenario.into(), figure.into(), target.into());
        // Print as we go too: a long run shows its progress.
        eprintln!("  {} | {} | {}", r.0, r.1, r.2);
        self.0.push(r);
    }
    fn print(&self) {
        println!("| scenario | figure | target |\n| --- | --- | --- |");
        for (a, b, c) in &self.0 {
            println!("| {a} | {b} | {c} |");
        }
    }
}

fn verdict(ok: bool, what: String) -> String {
    format!("{} {what}", if ok { "met:" } else { "MISSED:" })
}

fn ember_ingest(args: &[&str]) -> Result<()> {
    let out = Command::new(bin_dir().join("ember-ingest"))
        .args(args)
        .output()
        .context("running ember-ingest (build it with --profile bench)")?;
    if !out.status.success() {
        bail!(
            "ember-ingest {} failed: {}",
            args.first().unwrap_or(&""),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Writes `count` users straight to the topic with ember-ingest's load
/// producer (rdkafka, no staging); returns msg/s.
fn produce(topic: &str, count: u64, rate: Option<u64>, compression: &str) -> Result<f64> {
    let t = Instant::now();
    let (count_s, brokers) = (count.to_string(), kafka());
    let rate_s = rate.map(|r| r.to_string());
    let mut args = vec![
        "load",
        "--count",
        &count_s,
        "--topic",
        topic,
        "--brokers",
        &brokers,
        "--seed",
        "1",
        "--compression",
        compression,
    ];
    if let Some(r) = &rate_s {
        args.extend(["--rate", r.as_str()]);
    }
    ember_ingest(&args)?;
    Ok(count as f64 / t.elapsed().as_secs_f64())
}

/// Raw rdkafka consume of the whole topic, one consumer per partition, with
/// the librdkafka settings of the executors' consumers (and the run's
/// `--kafka-option`s): tansu answers a fetch only after sleeping out part of
/// `fetch.wait.max.ms`, so a default consumer and Ember's would not be
/// measured alike.
fn consume_rate(topic: &str, partitions: i32, count: u64, o: &Opts) -> Result<f64> {
    let options = kafka_options(o)?;
    let t = Instant::now();
    let handles: Vec<_> = (0..partitions)
        .map(|p| {
            let topic = topic.to_string();
            let cfg = consumer_config(&kafka(), "bench-ceiling", &options);
            std::thread::spawn(move || -> Result<u64> {
                let c: BaseConsumer = cfg.create()?;
                let (_, hi) = c.fetch_watermarks(&topic, p, Duration::from_secs(10))?;
                let mut tpl = TopicPartitionList::new();
                tpl.add_partition_offset(&topic, p, Offset::Beginning)?;
                c.assign(&tpl)?;
                let mut n = 0u64;
                let mut last = -1i64;
                while last + 1 < hi {
                    if let Some(m) = c.poll(Duration::from_secs(120)) {
                        last = rdkafka::Message::offset(&m?);
                        n += 1;
                    } else {
                        bail!("partition {p}: no record within 120 s (Spark's pollTimeoutMs)");
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
    let failures = futures::stream::iter(0..count)
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
        .filter(|r| futures::future::ready(r.is_err()))
        .count()
        .await;
    let rate = count as f64 / t.elapsed().as_secs_f64();
    drop_keyspace(&ks).await?;
    if failures > 0 {
        bail!("{failures} inserts failed");
    }
    Ok(rate)
}

/// Drops a scenario's keyspace once its figures are taken. ember-cql keeps
/// every row in memory, and a run of `all` at 1M users otherwise leaves ~6M
/// rows (14 GB) behind for the scenarios after it: PySpark then ran on a
/// machine out of memory.
async fn drop_keyspace(ks: &str) -> Result<()> {
    cql_session()
        .await?
        .query_unpaged(format!("DROP KEYSPACE IF EXISTS {ks}"), ())
        .await?;
    Ok(())
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
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// CPU time (user + system) a process has used so far, in seconds.
fn cpu_seconds(pid: Option<u32>) -> f64 {
    let Some(pid) = pid else { return 0.0 };
    // SAFETY: sysconf only reads a constant of the system.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    cores::stat_fields(pid)
        .and_then(|f| {
            // utime and stime, the 12th and 13th fields after the command name.
            Some(f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?)
        })
        .map_or(0.0, |t| t / ticks)
}

fn mb_list(v: &[f64]) -> String {
    v.iter()
        .map(|m| format!("{m:.0}"))
        .collect::<Vec<_>>()
        .join(" / ")
}

/// Starts a cluster whose binaries are this bench build's (EMBER_BIN_DIR).
async fn cluster(executors: usize) -> Result<Cluster> {
    Cluster::start(executors).await
}

struct PipelineRun {
    seconds: f64,
    rows_per_sec: f64,
    scheduler_mb: f64,
    executor_mb: Vec<f64>,
    batches: u64,
    /// CPU seconds from submission to the job's finish: executors, then the
    /// scheduler, then `servers` as passed in.
    cpu: Vec<(String, f64)>,
    /// The wall-clock seconds `cpu` was measured over.
    cpu_wall: f64,
}

/// `--kafka-option`s as librdkafka settings.
fn kafka_options(o: &Opts) -> Result<BTreeMap<String, String>> {
    o.kafka_options
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .with_context(|| format!("--kafka-option {kv:?} is not KEY=VALUE"))
        })
        .collect()
}

/// `--kafka-option`s as lines of the spec's [source] table.
fn extra_source(o: &Opts) -> Result<String> {
    Ok(kafka_options(o)?
        .iter()
        .map(|(k, v)| format!("\n\"kafka.{k}\" = \"{v}\""))
        .collect())
}

/// The reference job draining the topic's backlog with availableNow.
/// `servers` (name, pid) are the broker and store, whose CPU over the run is
/// reported beside the cluster's.
async fn pipeline(
    o: &Opts,
    topic: &str,
    count: u64,
    executors: usize,
    servers: &[(&str, Option<u32>)],
) -> Result<PipelineRun> {
    let cluster = cluster(executors).await?;
    let ks = unique("bench_pipe");
    let mut spec = reference_spec(
        "bench",
        topic,
        &ks,
        &extra_source(o)?,
        "availableNow = true",
    );
    if let Some(m) = o.max_offsets_per_trigger {
        spec = with_max_offsets(&spec, m)?;
    }
    let noop = o.pipeline_sink == "noop";
    if noop {
        let at = spec
            .find("[sink]")
            .context("the reference spec has no [sink]")?;
        spec = format!("{}[sink]\nformat = \"noop\"\n", &spec[..at]);
    }
    let mut procs: Vec<(String, Option<u32>)> = cluster
        .executors
        .iter()
        .enumerate()
        .map(|(i, e)| (format!("executor {i}"), e.pid()))
        .collect();
    procs.push(("scheduler".into(), cluster.scheduler.pid()));
    procs.extend(servers.iter().map(|(n, p)| (n.to_string(), *p)));
    let cpu_before: Vec<f64> = procs.iter().map(|(_, p)| cpu_seconds(*p)).collect();
    let cpu_start = Instant::now();
    let submitted_ms = chrono::Utc::now().timestamp_millis();
    cluster.submit(&spec, false).await?;
    let d = cluster
        .wait_job("bench", Duration::from_secs(3600), "finished", |d| {
            d.summary.as_ref().is_some_and(|s| s.state == "finished")
        })
        .await?;
    let cpu = procs
        .iter()
        .zip(cpu_before)
        .map(|((n, p), before)| (n.clone(), cpu_seconds(*p) - before))
        .collect();
    let cpu_wall = cpu_start.elapsed().as_secs_f64();
    // From submission to the end of the last batch (the sink's last write
    // acknowledged), by the scheduler's clock on this host: the job's state
    // is polled every 250 ms, which would add up to that much.
    let last_end_ms = d
        .batches
        .iter()
        .filter_map(batch_end_ms)
        .max()
        .context("the finished job lists no batches")?;
    let seconds = (last_end_ms - submitted_ms) as f64 / 1000.0;
    if o.batch_timings {
        print_batches(&d);
    }
    let s = d.summary.unwrap_or_default();
    if s.rows_out != count {
        bail!("pipeline wrote {} rows, expected {count}", s.rows_out);
    }
    if !noop {
        let session = cql_session().await?;
        let rows = ember_e2e::count(&session, &format!("{ks}.created_users")).await?;
        if rows as u64 != count {
            bail!("the table holds {rows} rows, expected {count}");
        }
    }
    drop_keyspace(&ks).await?;
    Ok(PipelineRun {
        seconds,
        rows_per_sec: count as f64 / seconds,
        scheduler_mb: peak_rss_mb(cluster.scheduler.pid()),
        executor_mb: cluster
            .executors
            .iter()
            .map(|e| peak_rss_mb(e.pid()))
            .collect(),
        batches: s.batches,
        cpu,
        cpu_wall,
    })
}

/// The latency scenario: the reference job with a 100 ms trigger, while the
/// load producer writes `rate` msg/s for `seconds`.
async fn latency(t: &mut Table, o: &Opts) -> Result<()> {
    let (rate, seconds) = (o.rate, o.seconds);
    let topic = unique("bench_lat");
    create_topic(&topic, 4)?;
    let cluster = cluster(2).await?;
    let ks = unique("bench_lat");
    let spec = reference_spec(
        "latency",
        &topic,
        &ks,
        &extra_source(o)?,
        "processingTime = \"100 milliseconds\"",
    );
    cluster.submit(&spec, false).await?;
    let count = rate * seconds;
    let achieved = tokio::task::spawn_blocking({
        let (topic, compression) = (topic.clone(), o.compression.clone());
        move || produce(&topic, count, Some(rate), &compression)
    })
    .await??;
    let d = cluster
        .wait_job("latency", Duration::from_secs(600), "all rows out", |d| {
            d.summary.as_ref().is_some_and(|s| s.rows_out == count)
        })
        .await?;
    if o.batch_timings {
        print_batches(&d);
    }
    let s = d.summary.unwrap_or_default();
    cluster.stop("latency").await?;
    drop_keyspace(&ks).await?;
    t.row(
        format!("latency: {rate} msg/s for {seconds} s, processingTime 100 ms, 2 executors"),
        format!(
            "p50 {} ms, p95 {} ms, p99 {} ms, max {} ms over {} rows in {} batches (producer achieved {achieved:.0} msg/s)",
            s.latency_p50_ms, s.latency_p95_ms, s.latency_p99_ms, s.latency_max_ms, s.latency_samples, s.batches
        ),
        verdict(
            s.latency_p99_ms <= 500,
            format!("p99 ≤ 500 ms ({:+.0}%)", 100.0 * (s.latency_p99_ms as f64 / 500.0 - 1.0)),
        ),
    );
    Ok(())
}

/// Each batch the job still lists, oldest first, with its tasks (stderr).
fn print_batches(d: &ember_api::JobDetail) {
    for b in d.batches.iter().rev() {
        let tasks: Vec<String> = b
            .tasks
            .iter()
            .map(|t| format!("p{} {} ms on {}", t.partition, t.duration_ms, t.executor_id))
            .collect();
        eprintln!(
            "    batch {} at {}: {} ms after {} ms reading offsets, {} rows; tasks {}",
            b.batch_id,
            b.started_at,
            b.duration_ms,
            b.latest_offset_ms,
            b.rows_in,
            tasks.join(", ")
        );
    }
}

/// When a batch ended, ms since the epoch.
fn batch_end_ms(b: &ember_api::BatchInfo) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(&b.started_at)
        .ok()
        .map(|t| t.timestamp_millis() + b.duration_ms as i64)
}

/// Ember's engine: rate-micro-batch (`rows_per_batch`, 2 partitions) through
/// the engine transform into `sink`, on one executor. Rows/s over the
/// batches that end after the warm-up: the rows of all but the first, over
/// the time from the first's end to the last's (no window-edge error).
async fn engine_ember(sink: &str, rows_per_batch: u64, o: &Opts) -> Result<(f64, f64, usize)> {
    let cluster = cluster(1).await?;
    let ks = unique("bench_eng");
    let source = format!(
        "format = \"rate-micro-batch\"\nrowsPerBatch = {rows_per_batch}\nnumPartitions = 2"
    );
    let spec = engine_spec("engine", &ks, &source, sink, "");
    cluster.submit(&spec, false).await?;
    tokio::time::sleep(Duration::from_secs(o.engine_warmup)).await;
    let from = chrono::Utc::now().timestamp_millis();
    tokio::time::sleep(Duration::from_secs(o.engine_seconds)).await;
    let deadline = Instant::now() + Duration::from_secs(300);
    let ended = loop {
        let d = cluster.job("engine").await?;
        let s = d.summary.clone().unwrap_or_default();
        if s.state != "running" || !s.error.is_empty() {
            bail!("engine job {}: {}", s.state, s.error);
        }
        let mut ended: Vec<(i64, u64)> = d
            .batches
            .iter()
            .filter_map(|b| Some((batch_end_ms(b)?, b.rows_out)))
            .filter(|(end, _)| *end >= from)
            .collect();
        ended.sort_unstable();
        if ended.len() >= 3 || Instant::now() > deadline {
            break ended;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    cluster.stop("engine").await?;
    drop_keyspace(&ks).await?;
    let (Some(first), Some(last)) = (ended.first(), ended.last()) else {
        bail!("no batch ended within 5 minutes");
    };
    if ended.len() < 2 || last.0 <= first.0 {
        bail!("only {} batch(es) ended", ended.len());
    }
    let rows: u64 = ended[1..].iter().map(|b| b.1).sum();
    let rate = rows as f64 * 1000.0 / (last.0 - first.0) as f64;
    let rss = cluster
        .executors
        .first()
        .map_or(0.0, |e| peak_rss_mb(e.pid()));
    Ok((rate, rss, ended.len() - 1))
}

fn python(o: &Opts) -> PathBuf {
    o.python.clone().unwrap_or_else(|| {
        PathBuf::from(std::env::var("HOME").unwrap_or_default())
            .join(".cache/ember/pyspark/bin/python")
    })
}

/// Runs bench/spark/spark_bench.py; returns its JSON report.
fn pyspark(o: &Opts, args: &[String]) -> Result<Value> {
    let script = repo_root().join("bench/spark/spark_bench.py");
    let out = Command::new(python(o))
        .arg(&script)
        .args(args)
        .output()
        .with_context(|| format!("running {} {}", python(o).display(), script.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(30).collect();
        bail!(
            "spark_bench.py failed: {}\n{}",
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).with_context(|| format!("spark_bench.py printed {last:?}"))
}

async fn engine(t: &mut Table, o: &Opts) -> Result<()> {
    let (noop, noop_mb, n) = engine_ember("noop", o.engine_batch, o).await?;
    t.row(
        format!(
            "engine: Ember, rate-micro-batch ({} rows/batch, 2 partitions) → transform → noop, 1 executor",
            o.engine_batch
        ),
        format!("{noop:.0} rows/s over {n} batches; executor peak RSS {noop_mb:.0} MB"),
        "",
    );
    let (cql_rate, cql_mb, n) = engine_ember("cassandra", o.engine_batch / 5, o).await?;
    t.row(
        format!(
            "engine: Ember, the same ({} rows/batch) into the CQL store, 1 executor",
            o.engine_batch / 5
        ),
        format!("{cql_rate:.0} rows/s over {n} batches; executor peak RSS {cql_mb:.0} MB"),
        "",
    );
    let o2 = o.clone();
    let spark = tokio::task::spawn_blocking(move || {
        pyspark(
            &o2,
            &[
                "rate".into(),
                "--rows-per-batch".into(),
                o2.engine_batch.to_string(),
                "--partitions".into(),
                "2".into(),
                "--seconds".into(),
                o2.engine_seconds.to_string(),
                "--warmup".into(),
                o2.engine_warmup.to_string(),
            ],
        )
    })
    .await?;
    match spark {
        Ok(v) => {
            let rate = v["rows_per_sec"].as_f64().unwrap_or(0.0);
            t.row(
                "engine: PySpark 4.1 local[2], rate-micro-batch → same transform → foreachBatch noop",
                format!(
                    "{rate:.0} rows/s; JVM peak RSS {:.0} MB",
                    v["driver_peak_rss_mb"].as_f64().unwrap_or(0.0)
                ),
                format!("Ember/PySpark = {:.1}x", noop / rate.max(1.0)),
            );
        }
        Err(e) => t.row("engine: PySpark", format!("failed: {e:#}"), ""),
    }
    Ok(())
}

/// `ember`: the 2-executor pipeline's rows/s and the broker's raw consume
/// around it, when the run measured them; else the pipeline runs here.
async fn spark(t: &mut Table, o: &Opts, topic: &str, ember: Option<(f64, f64)>) -> Result<()> {
    let (ember_rate, ceiling) = match ember {
        Some((rate, ceiling)) => (rate, Some(ceiling)),
        None => (
            pipeline(o, topic, o.count, 2, &[]).await?.rows_per_sec,
            None,
        ),
    };
    let ks = unique("bench_spark");
    let (o2, topic2, ks2) = (o.clone(), topic.to_string(), ks.clone());
    let (host, port) = cql()
        .rsplit_once(':')
        .map_or(("127.0.0.1".to_string(), "9042".to_string()), |(h, p)| {
            (h.to_string(), p.to_string())
        });
    let v = tokio::task::spawn_blocking(move || {
        pyspark(
            &o2,
            &[
                "kafka".into(),
                "--bootstrap".into(),
                kafka(),
                "--topic".into(),
                topic2,
                "--count".into(),
                o2.count.to_string(),
                "--cql-host".into(),
                host,
                "--cql-port".into(),
                port,
                "--keyspace".into(),
                ks2,
                "--drop-keyspace".into(),
            ],
        )
    })
    .await??;
    let rate = v["rows_per_sec"].as_f64().unwrap_or(0.0);
    let ratio = ember_rate / rate.max(1.0);
    // Ember reads no faster than the broker delivers: the raw consume's
    // multiple of PySpark bounds the ratio.
    let bound = ceiling.map_or(String::new(), |c| {
        format!(
            "; the broker's raw consume around it ({c:.0} msg/s) is {:.2}x",
            c / rate.max(1.0)
        )
    });
    t.row(
        format!("spark: PySpark 4.1 local[2], Python Kafka DataSource → from_json → foreachBatch cassandra-driver, {} users", o.count),
        format!(
            "{rate:.0} rows/s in {:.1} s, {} batches; JVM peak RSS {:.0} MB",
            v["seconds"].as_f64().unwrap_or(0.0),
            v["batches"],
            v["driver_peak_rss_mb"].as_f64().unwrap_or(0.0)
        ),
        verdict(
            ratio >= 5.0,
            format!(
                "Ember (2 executors) {ember_rate:.0} rows/s = {ratio:.2}x PySpark (target ≥ 5x){bound}"
            ),
        ),
    );
    Ok(())
}

async fn ingest(t: &mut Table, count: u64, compression: &str, split: &CoreSplit) -> Result<()> {
    // Postgres is on the ember-ingest side of the split: it is what the
    // run adds to raw produce. Found only when there is a split to make.
    let postmaster = match split.broker {
        Some(_) => postmaster().await,
        None => None,
    };
    let _cores = split.apply(t, "ingest", postmaster);
    // Raw produce before and after ember-ingest, each into a new topic on
    // the same broker: tansu's writes may slow as its database grows, so
    // ember-ingest is compared with the mean of the two that bracket it.
    let raw = |name: &str| -> Result<f64> {
        let topic = unique(name);
        create_topic(&topic, 4)?;
        produce(&topic, count, None, compression)
    };
    let raw_before = raw("bench_raw")?;
    let topic = unique("bench_ingest");
    create_topic(&topic, 4)?;
    let table = unique("bench_staging");
    let start = Instant::now();
    let count_s = count.to_string();
    let brokers = kafka();
    ember_ingest(&[
        "run",
        "--source",
        "generate",
        "--count",
        &count_s,
        "--seed",
        "1",
        "--topic",
        &topic,
        "--brokers",
        &brokers,
        "--staging-table",
        &table,
        "--compression",
        compression,
    ])?;
    let staged = count as f64 / start.elapsed().as_secs_f64();
    // The staged rows are ~1 KB each: a million of them per run add up.
    let client = ember_ingest::outbox::connect(&ember_ingest::outbox::pg_url_from_env()).await?;
    ember_ingest::outbox::drop_tables(&client, &ember_ingest::outbox::Tables::new(&table)).await?;
    let raw_after = raw("bench_raw")?;
    let raw = (raw_before + raw_after) / 2.0;
    t.row(
        format!("ingest: {count} users, raw produce (ember-ingest load: generator → rdkafka), before and after the run below"),
        format!("{raw_before:.0} and {raw_after:.0} msg/s (mean {raw:.0})"),
        "",
    );
    t.row(
        format!("ingest: {count} users, ember-ingest run (generator → Postgres staging → Kafka → recorded produced)"),
        format!("{staged:.0} msg/s"),
        verdict(
            staged >= 0.9 * raw,
            format!("{:.1}% of raw produce (target ≥ 90%)", 100.0 * staged / raw),
        ),
    );
    Ok(())
}

/// The processes a broker-bound measurement splits the cores between (see
/// [`cores`]): the bench's broker, and what runs beside it.
struct CoreSplit {
    /// The broker's pid; None with `--cores shared`, or when the broker is
    /// not the bench's own (`--shared-servers`).
    broker: Option<u32>,
    cql: Option<u32>,
}

impl CoreSplit {
    /// The broker on its own core and, on the others, this process (its
    /// clients, and the clusters and ember-ingest runs it starts, which
    /// inherit its cores), ember-cql and, given its postmaster, Postgres
    /// with its backends (new ones inherit the postmaster's cores). Until
    /// the returned guard drops. A split that fails is reported in the
    /// table, and that scenario runs with every core shared.
    fn apply(
        &self,
        t: &mut Table,
        scenario: &str,
        postmaster: Option<u32>,
    ) -> Option<cores::Split> {
        let broker = self.broker?;
        let (bench, cql) = (std::process::id(), self.cql);
        let others = Box::new(move || {
            let mut pids = vec![bench];
            pids.extend(cql);
            if let Some(pm) = postmaster {
                pids.push(pm);
                pids.extend(
                    cores::children(pm)
                        .into_iter()
                        .filter(|&p| cores::command(p).as_deref() == Some("postgres")),
                );
            }
            pids
        });
        match cores::Split::new(broker, others) {
            Ok(s) => Some(s),
            Err(e) => {
                t.row(
                    format!("cores: {scenario}"),
                    format!("not split ({e}): every core shared"),
                    "",
                );
                None
            }
        }
    }

    /// The table's line on where the processes run.
    fn describe(&self) -> String {
        let split = cores::allowed().ok().and_then(|a| cores::split(&a));
        match (self.broker, split) {
            (Some(_), Some((broker, rest))) => format!(
                "ceiling, pipeline and ingest: the broker (tansu) on core {broker}; the bench and its clients, Ember, ember-cql and Postgres on core(s) {}",
                rest.iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            _ => "every process on every core".to_string(),
        }
    }
}

/// The local postmaster behind EMBER_PG: the parent of this session's
/// backend, if both are local `postgres` processes (else None: Postgres is
/// elsewhere, or not ours to move).
async fn postmaster() -> Option<u32> {
    let client = ember_ingest::outbox::connect(&ember_ingest::outbox::pg_url_from_env())
        .await
        .ok()?;
    let backend: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .ok()?
        .get(0);
    let backend = u32::try_from(backend).ok()?;
    let pm = cores::parent(backend)?;
    let local = |p: u32| cores::command(p).as_deref() == Some("postgres");
    (local(backend) && local(pm)).then_some(pm)
}

fn failed(t: &mut Table, scenario: &str, r: Result<()>) {
    if let Err(e) = r {
        t.row(scenario, format!("FAILED: {e:#}").replace('\n', " "), "");
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    let (sc, o) = (cli.scenario, cli.opts);
    if o.executors.is_empty() || o.executors.contains(&0) {
        bail!("--executors takes counts of 1 or more, e.g. 1,2");
    }
    let all = sc == Scenario::All;
    // SAFETY: set before anything reads them; the harness reads them when it
    // spawns servers and clusters and connects clients.
    unsafe { std::env::set_var("EMBER_BIN_DIR", bin_dir()) };
    let private = if o.shared_servers {
        None
    } else {
        // Cassandra's default commit-log mode (periodic), as the ceiling assumes.
        let s =
            PrivateServers::start_with(vec!["--commitlog-sync".into(), "periodic".into()]).await?;
        unsafe {
            std::env::set_var("EMBER_KAFKA", s.kafka());
            std::env::set_var("EMBER_CQL", s.cql());
        }
        Some(s)
    };
    eprintln!(
        "machine: {} cores; kafka {} (tansu, fresh unless --shared-servers), cql {} (ember-cql, periodic)",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        kafka(),
        cql()
    );
    // The broker's and the store's CPU is reported for each pipeline run
    // (ours only: a shared server's pid is not known here).
    let tansu = private.as_ref().and_then(|s| s.tansu.as_ref()?.pid());
    let cql_pid = private.as_ref().and_then(|s| s.cql.as_ref()?.pid());
    let servers: Vec<(&str, Option<u32>)> = if private.is_some() {
        vec![("ember-cql", cql_pid), ("tansu", tansu)]
    } else {
        Vec::new()
    };
    let mut t = Table::default();
    let split = CoreSplit {
        broker: tansu.filter(|_| o.cores == "split"),
        cql: cql_pid,
    };
    t.row("cores", split.describe(), "");
    // Latency first, on the fresh broker: tansu's fetches slow down as its
    // database grows, and the backlog below is a million records.
    if all || sc == Scenario::Latency {
        let r = latency(&mut t, &o).await;
        failed(&mut t, "latency", r);
    }
    let needs_backlog = matches!(
        sc,
        Scenario::Ceiling | Scenario::Pipeline | Scenario::Spark | Scenario::All
    );
    let topic = unique("bench_users");
    if needs_backlog {
        create_topic(&topic, 4)?;
        let rate = produce(&topic, o.count, None, &o.compression)?;
        t.row(
            format!(
                "backlog: {} users into 4 partitions (ember-ingest load, {} batches)",
                o.count, o.compression
            ),
            format!("{rate:.0} msg/s"),
            "",
        );
    }
    let mut insert_ceiling = None;
    let mut consume = None;
    // The pipeline's figures are fractions of the ceiling measured in the same run.
    if all || sc == Scenario::Ceiling || sc == Scenario::Pipeline {
        let cores = split.apply(&mut t, "ceiling", None);
        let c = consume_rate(&topic, 4, o.count, &o)?;
        // The store's ceiling on every core: the broker idles meanwhile.
        drop(cores);
        let insert = insert_rate(o.count).await?;
        t.row(
            "ceiling: raw rdkafka consume, 4 partitions, the executors' consumer settings",
            format!("{c:.0} msg/s"),
            "",
        );
        t.row(
            "ceiling: prepared inserts, concurrency 256",
            format!("{insert:.0} rows/s"),
            "",
        );
        (consume, insert_ceiling) = (Some(c), Some(insert));
    }
    let mut two_executor_run = None;
    if all || sc == Scenario::Pipeline {
        for &executors in &o.executors {
            let cores = split.apply(&mut t, "pipeline", None);
            let r = pipeline(&o, &topic, o.count, executors, &servers).await?;
            // The broker's rate moves as the VM's speed does: each pipeline
            // is compared with the raw consumes just before and after it.
            let before = consume.context("no consume ceiling before the pipeline")?;
            let tansu_cpu = cpu_seconds(tansu);
            let after = consume_rate(&topic, 4, o.count, &o)?;
            let tansu_cpu = cpu_seconds(tansu) - tansu_cpu;
            // How much of a core the broker had, in the pipeline and in the
            // raw consume after it: a share that the VM's speed, which moves
            // both rates, does not move.
            let busy = |cpu: f64, wall: f64| 100.0 * cpu / wall.max(1e-9);
            let pipeline_busy = r
                .cpu
                .iter()
                .find(|(n, _)| n == "tansu")
                .map(|(_, c)| busy(*c, r.cpu_wall));
            let consume_busy = busy(tansu_cpu, o.count as f64 / after);
            drop(cores);
            consume = Some(after);
            let raw = (before + after) / 2.0;
            let ceiling = raw.min(insert_ceiling.unwrap_or(f64::MAX));
            let cap = o.max_offsets_per_trigger.unwrap_or(100_000);
            t.row(
                format!(
                    "pipeline: {} users → {}, {executors} executor(s), maxOffsetsPerTrigger {cap}",
                    o.count, o.pipeline_sink
                ),
                format!(
                    "{:.0} rows/s ({:.1} s, {} batches); raw consume {before:.0} before, {after:.0} after; tansu busy {} of the pipeline, {consume_busy:.0}% of the consume after ({tansu_cpu:.1} s CPU)",
                    r.rows_per_sec,
                    r.seconds,
                    r.batches,
                    pipeline_busy.map_or("?".into(), |b| format!("{b:.0}%")),
                ),
                verdict(
                    r.rows_per_sec >= 0.9 * ceiling,
                    format!(
                        "{:.1}% of the ceiling (target ≥ 90%)",
                        100.0 * r.rows_per_sec / ceiling
                    ),
                ),
            );
            let max_exec = r.executor_mb.iter().copied().fold(0.0, f64::max);
            t.row(
                format!("memory: peak RSS during the pipeline, {executors} executor(s)"),
                format!(
                    "scheduler {:.0} MB, executors {} MB",
                    r.scheduler_mb,
                    mb_list(&r.executor_mb)
                ),
                verdict(
                    max_exec <= 150.0,
                    format!("executor ≤ 150 MB ({max_exec:.0} MB)"),
                ),
            );
            let cpu: Vec<String> = r.cpu.iter().map(|(n, c)| format!("{n} {c:.1}")).collect();
            t.row(
                format!("cpu: seconds per process during the pipeline, {executors} executor(s)"),
                cpu.join(", "),
                "",
            );
            if executors == 2 {
                two_executor_run = Some((r.rows_per_sec, raw));
            }
        }
    }
    // Later scenarios go on when one fails; the table says which.
    if all || sc == Scenario::Engine {
        let r = engine(&mut t, &o).await;
        failed(&mut t, "engine", r);
    }
    if all || sc == Scenario::Spark {
        let r = spark(&mut t, &o, &topic, two_executor_run).await;
        failed(&mut t, "spark", r);
    }
    if all || sc == Scenario::Ingest {
        let r = ingest(&mut t, o.count.min(1_000_000), &o.compression, &split).await;
        failed(&mut t, "ingest", r);
    }
    t.print();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_seconds_counts_this_process_work() {
        let pid = Some(std::process::id());
        let before = cpu_seconds(pid);
        let t = Instant::now();
        let mut x = 0u64;
        while t.elapsed() < Duration::from_millis(300) {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        let used = cpu_seconds(pid) - before;
        assert!(
            (0.2..5.0).contains(&used),
            "300 ms of spinning read as {used} s of CPU"
        );
        assert_eq!(cpu_seconds(None), 0.0);
    }

    #[test]
    fn kafka_options_are_key_value_pairs() {
        let opts = |v: &[&str]| {
            let mut o = Cli::parse_from(["ember-bench", "ceiling"]).opts;
            o.kafka_options = v.iter().map(|s| s.to_string()).collect();
            o
        };
        let m = kafka_options(&opts(&["fetch.wait.max.ms=500", "a=b=c"])).expect("valid");
        assert_eq!(m["fetch.wait.max.ms"], "500");
        assert_eq!(m["a"], "b=c");
        assert_eq!(
            extra_source(&opts(&["fetch.wait.max.ms=500"])).expect("valid"),
            "\n\"kafka.fetch.wait.max.ms\" = \"500\""
        );
        let e = kafka_options(&opts(&["fetch.wait.max.ms"])).expect_err("no '='");
        assert!(e.to_string().contains("fetch.wait.max.ms"), "{e}");
    }

    #[test]
    fn executors_default_to_one_then_two() {
        let o = Cli::parse_from(["ember-bench", "pipeline"]).opts;
        assert_eq!(o.executors, vec![1, 2]);
        let o = Cli::parse_from(["ember-bench", "pipeline", "--executors", "2,1,1,2"]).opts;
        assert_eq!(o.executors, vec![2, 1, 1, 2]);
    }

    #[test]
    fn cores_are_split_unless_asked_to_share() {
        let o = Cli::parse_from(["ember-bench", "ingest"]).opts;
        assert_eq!(o.cores, "split");
        let o = Cli::parse_from(["ember-bench", "ingest", "--cores", "shared"]).opts;
        assert_eq!(o.cores, "shared");
        assert!(Cli::try_parse_from(["ember-bench", "ingest", "--cores", "half"]).is_err());
        let shared = CoreSplit {
            broker: None,
            cql: None,
        };
        assert_eq!(shared.describe(), "every process on every core");
        let mut t = Table::default();
        assert!(shared.apply(&mut t, "ingest", None).is_none());
        assert!(t.0.is_empty(), "nothing to split, nothing to report");
    }
}
