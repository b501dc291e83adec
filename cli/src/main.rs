//! `ember`: the command line for an Ember cluster, talking to the scheduler's
//! gRPC service. Tables for people, `--json` (the shared API types) for scripts.

use std::fmt::Write as _;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ember_api::{BatchInfo, ExecutorInfo, JobDetail, JobSummary};
use ember_proto::ember_service_client::EmberServiceClient;
use ember_proto::{JobRef, ListRequest, SubmitJobRequest};
use tonic::transport::Channel;

#[derive(Debug, Parser)]
#[command(
    name = "ember",
    version,
    about = "Submit and watch Ember streaming jobs"
)]
struct Cli {
    /// The scheduler's Ember gRPC endpoint.
    #[arg(
        long,
        global = true,
        env = "EMBER_SCHEDULER",
        default_value = "http://127.0.0.1:50060"
    )]
    scheduler: String,
    /// Print the API's JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Submit a job spec (TOML). A spec whose name exists resumes that job from its checkpoint.
    Submit {
        /// Path to the spec; its content is sent, so the scheduler may be elsewhere.
        spec: std::path::PathBuf,
        /// Forget the checkpoint and start again from startingOffsets.
        #[arg(long)]
        reset: bool,
    },
    /// List jobs.
    Jobs,
    /// Show one job: state, partitions and lag, recent batches, dead letters.
    Job { name: String },
    /// Stop a job after its current batch.
    Stop { name: String },
    /// List executors.
    Executors,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ember: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn connect(url: &str) -> Result<EmberServiceClient<Channel>, String> {
    let endpoint = Channel::from_shared(url.to_string())
        .map_err(|e| format!("--scheduler {url:?} is not a URL: {e}"))?;
    let channel = endpoint
        .connect_timeout(std::time::Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| format!("cannot reach the scheduler at {url}: {e} (is ember-scheduler running? set --scheduler or EMBER_SCHEDULER)"))?;
    Ok(EmberServiceClient::new(channel))
}

fn status(e: tonic::Status) -> String {
    e.message().to_string()
}

fn print_json<T: serde::Serialize>(v: &T) -> Result<(), String> {
    println!(
        "{}",
        serde_json::to_string_pretty(v).map_err(|e| e.to_string())?
    );
    Ok(())
}

async fn run(cli: Cli) -> Result<(), String> {
    let mut c = connect(&cli.scheduler).await?;
    match cli.command {
        Command::Submit { spec, reset } => {
            let text = std::fs::read_to_string(&spec)
                .map_err(|e| format!("cannot read {}: {e}", spec.display()))?;
            let r = c
                .submit_job(SubmitJobRequest {
                    spec_toml: text,
                    reset,
                })
                .await
                .map_err(status)?
                .into_inner();
            if cli.json {
                return print_json(&r);
            }
            println!("job {} {}", r.name, r.action);
        }
        Command::Jobs => {
            let r = c
                .list_jobs(ListRequest {})
                .await
                .map_err(status)?
                .into_inner();
            if cli.json {
                return print_json(&r);
            }
            print!("{}", jobs_table(&r.jobs));
        }
        Command::Job { name } => {
            let r = c
                .get_job(JobRef { name })
                .await
                .map_err(status)?
                .into_inner();
            if cli.json {
                return print_json(&r);
            }
            print!("{}", job_text(&r));
        }
        Command::Stop { name } => {
            let r = c
                .stop_job(JobRef { name })
                .await
                .map_err(status)?
                .into_inner();
            if cli.json {
                return print_json(&r);
            }
            println!("job {} {}", r.name, r.state);
        }
        Command::Executors => {
            let r = c
                .list_executors(ListRequest {})
                .await
                .map_err(status)?
                .into_inner();
            if cli.json {
                return print_json(&r);
            }
            print!("{}", executors_table(&r.executors));
        }
    }
    Ok(())
}

/// A plain text table with columns padded to their widest cell.
fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut w: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let s: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = w[i]))
            .collect();
        let _ = writeln!(out, "{}", s.join("  ").trim_end());
    };
    line(header.to_vec(), &mut out);
    for r in &rows {
        line(r.iter().map(String::as_str).collect(), &mut out);
    }
    out
}

fn jobs_table(jobs: &[JobSummary]) -> String {
    if jobs.is_empty() {
        return "no jobs\n".into();
    }
    table(
        &[
            "NAME", "STATE", "TOPIC", "SINK", "ROWS IN", "ROWS OUT", "DEAD", "LAG", "BATCHES",
        ],
        jobs.iter()
            .map(|j| {
                vec![
                    j.name.clone(),
                    j.state.clone(),
                    j.topic.clone(),
                    j.sink.clone(),
                    j.rows_in.to_string(),
                    j.rows_out.to_string(),
                    j.rows_dead.to_string(),
                    j.total_lag.to_string(),
                    j.batches.to_string(),
                ]
            })
            .collect(),
    )
}

fn job_text(d: &JobDetail) -> String {
    let s = d.summary.clone().unwrap_or_default();
    let mut out = format!(
        "job {}  state {}  trigger {}\n{} → {}\nrows in {}  out {}  dead {}  lag {}  batches {}  ({:.0} rows/s out)\n",
        s.name,
        s.state,
        s.trigger,
        s.topic,
        s.sink,
        s.rows_in,
        s.rows_out,
        s.rows_dead,
        s.total_lag,
        s.batches,
        s.rows_out_per_sec
    );
    if s.latency_samples > 0 {
        let _ = writeln!(
            out,
            "sink latency p50 {} ms  p95 {} ms  p99 {} ms  max {} ms  ({} rows)",
            s.latency_p50_ms,
            s.latency_p95_ms,
            s.latency_p99_ms,
            s.latency_max_ms,
            s.latency_samples
        );
    }
    if !s.error.is_empty() {
        let _ = writeln!(out, "last error: {}", s.error);
    }
    out.push_str("\nPARTITIONS\n");
    out.push_str(&table(
        &["TOPIC", "PARTITION", "LATEST", "COMMITTED", "LAG"],
        d.partitions
            .iter()
            .map(|p| {
                vec![
                    p.topic.clone(),
                    p.partition.to_string(),
                    p.latest_offset.to_string(),
                    p.committed_offset.to_string(),
                    p.lag.to_string(),
                ]
            })
            .collect(),
    ));
    out.push_str("\nRECENT BATCHES\n");
    out.push_str(&table(
        &["BATCH", "RANGES", "IN", "OUT", "DEAD", "MS", "EXECUTORS"],
        d.batches.iter().take(10).map(batch_row).collect(),
    ));
    if !d.dead_letters.is_empty() {
        out.push_str("\nDEAD LETTERS (latest)\n");
        out.push_str(&table(
            &["TOPIC", "PARTITION", "OFFSET", "REASON"],
            d.dead_letters
                .iter()
                .map(|x| {
                    vec![
                        x.topic.clone(),
                        x.partition.to_string(),
                        x.offset.to_string(),
                        x.reason.clone(),
                    ]
                })
                .collect(),
        ));
    }
    out
}

fn batch_row(b: &BatchInfo) -> Vec<String> {
    let ranges: Vec<String> = b
        .ranges
        .iter()
        .map(|r| format!("{}[{},{})", r.partition, r.from_offset, r.until_offset))
        .collect();
    vec![
        b.batch_id.to_string(),
        ranges.join(" "),
        b.rows_in.to_string(),
        b.rows_out.to_string(),
        b.rows_dead.to_string(),
        b.duration_ms.to_string(),
        b.executors.join(","),
    ]
}

fn executors_table(ex: &[ExecutorInfo]) -> String {
    if ex.is_empty() {
        return "no executors\n".into();
    }
    table(
        &["ID", "ADDRESS", "SLOTS", "HEARTBEAT", "STATE"],
        ex.iter()
            .map(|e| {
                vec![
                    e.id.clone(),
                    format!("{}:{}", e.host, e.port),
                    e.task_slots.to_string(),
                    format!("{}s ago", e.last_heartbeat_secs_ago),
                    e.state.clone(),
                ]
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_pad_columns() {
        let t = table(&["A", "BB"], vec![vec!["xxx".into(), "y".into()]]);
        assert_eq!(t, "A    BB\nxxx  y\n");
    }
}
