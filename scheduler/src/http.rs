//! The REST API (`/api/v1`, the same API types as the CLI's `--json`) and
//! `/metrics`, on the web UI's port (4040, where Spark users look).

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::{Arc, OnceLock};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ember_api::{ExecutorList, JobList};
use parking_lot::Mutex;
use serde::Deserialize;

use crate::manager::Manager;

#[derive(Clone)]
pub struct AppState {
    pub manager: Arc<Manager>,
    pub ballista_http: String,
    pub executor_timeout_secs: u64,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/jobs", get(list_jobs).post(submit))
        .route("/api/v1/jobs/{name}", get(get_job))
        .route("/api/v1/jobs/{name}/stop", post(stop_job))
        .route("/api/v1/executors", get(list_executors))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .merge(crate::ui::router())
        .with_state(state)
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

async fn list_jobs(State(s): State<AppState>) -> Json<JobList> {
    Json(JobList {
        jobs: s.manager.jobs().iter().map(|j| j.summary()).collect(),
    })
}

#[derive(Deserialize)]
struct SubmitBody {
    spec_toml: String,
    #[serde(default)]
    reset: bool,
}

async fn submit(State(s): State<AppState>, Json(body): Json<SubmitBody>) -> Response {
    match s.manager.submit(&body.spec_toml, body.reset).await {
        Ok((action, job)) => Json(ember_api::SubmitJobReply {
            name: job.name.clone(),
            action: action.as_str().into(),
            job: Some(job),
        })
        .into_response(),
        Err(e) => error(StatusCode::BAD_REQUEST, e),
    }
}

async fn get_job(State(s): State<AppState>, Path(name): Path<String>) -> Response {
    let Some(job) = s.manager.job(&name) else {
        return error(StatusCode::NOT_FOUND, format!("no job named {name}"));
    };
    let dead = s.manager.dead_letters(&job, 20).await;
    Json(job.detail(dead)).into_response()
}

async fn stop_job(State(s): State<AppState>, Path(name): Path<String>) -> Response {
    match s.manager.stop(&name).await {
        Ok(j) => Json(j).into_response(),
        Err(e) => error(StatusCode::NOT_FOUND, e),
    }
}

async fn list_executors(State(s): State<AppState>) -> Response {
    match crate::executors::list(&s.ballista_http, s.executor_timeout_secs).await {
        Ok(executors) => Json(ExecutorList { executors }).into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

/// Prometheus text format.
async fn metrics(State(s): State<AppState>) -> Response {
    let mut out = String::new();
    let jobs = s.manager.jobs();
    let summaries: Vec<_> = jobs.iter().map(|j| j.summary()).collect();
    type Counter = fn(&ember_api::JobSummary) -> u64;
    let counters: [(&str, &str, Counter); 3] = [
        (
            "ember_job_rows_in_total",
            "Records read from Kafka by the job.",
            |s| s.rows_in,
        ),
        (
            "ember_job_rows_out_total",
            "Rows written to the sink by the job.",
            |s| s.rows_out,
        ),
        (
            "ember_job_rows_dead_total",
            "Records sent to the dead-letter table.",
            |s| s.rows_dead,
        ),
    ];
    for (name, help, value) in counters {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for sm in &summaries {
            let _ = writeln!(out, "{name}{{job=\"{}\"}} {}", esc(&sm.name), value(sm));
        }
    }
    let _ = writeln!(
        out,
        "# HELP ember_partition_lag Records not yet committed, per partition.\n# TYPE ember_partition_lag gauge"
    );
    for j in &jobs {
        for p in j.partitions() {
            let _ = writeln!(
                out,
                "ember_partition_lag{{job=\"{}\",topic=\"{}\",partition=\"{}\"}} {}",
                esc(&j.spec.name),
                esc(&p.topic),
                p.partition,
                p.lag
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP ember_batch_duration_seconds Micro-batch durations (committed batches since the scheduler started).\n# TYPE ember_batch_duration_seconds histogram"
    );
    for j in &jobs {
        let h = batch_histogram(j);
        let name = esc(&j.spec.name);
        for (b, n) in BUCKETS.iter().zip(h.buckets) {
            let _ = writeln!(
                out,
                "ember_batch_duration_seconds_bucket{{job=\"{name}\",le=\"{b}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "ember_batch_duration_seconds_bucket{{job=\"{name}\",le=\"+Inf\"}} {}",
            h.count
        );
        let _ = writeln!(
            out,
            "ember_batch_duration_seconds_sum{{job=\"{name}\"}} {}",
            h.sum
        );
        let _ = writeln!(
            out,
            "ember_batch_duration_seconds_count{{job=\"{name}\"}} {}",
            h.count
        );
    }
    let _ = writeln!(
        out,
        "# HELP ember_sink_latency_seconds Record timestamp to acknowledged sink write, over the rows written since the scheduler started the job.\n# TYPE ember_sink_latency_seconds summary"
    );
    for sm in &summaries {
        let name = esc(&sm.name);
        for (q, ms) in [
            ("0.5", sm.latency_p50_ms),
            ("0.95", sm.latency_p95_ms),
            ("0.99", sm.latency_p99_ms),
            ("1", sm.latency_max_ms),
        ] {
            let _ = writeln!(
                out,
                "ember_sink_latency_seconds{{job=\"{name}\",quantile=\"{q}\"}} {}",
                ms as f64 / 1000.0
            );
        }
        let _ = writeln!(
            out,
            "ember_sink_latency_seconds_count{{job=\"{name}\"}} {}",
            sm.latency_samples
        );
    }
    let alive = crate::executors::list(&s.ballista_http, s.executor_timeout_secs)
        .await
        .map(|v| v.iter().filter(|e| e.state == "alive").count())
        .unwrap_or(0);
    let _ = writeln!(
        out,
        "# HELP ember_executors_alive Executors with a recent heartbeat.\n# TYPE ember_executors_alive gauge\nember_executors_alive {alive}"
    );
    (
        [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
        out,
    )
        .into_response()
}

const BUCKETS: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

#[derive(Clone, Default)]
struct Histogram {
    /// The newest batch folded in, so each batch is counted once.
    last_batch: Option<u64>,
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// The job's cumulative batch-duration histogram. The manager keeps only the
/// last batches, so a histogram over them would shrink as they rotate out,
/// and Prometheus requires a histogram's counts never to go down (except on
/// a restart). Batches are folded in as scrapes see them.
fn batch_histogram(job: &crate::manager::Job) -> Histogram {
    static HISTOGRAMS: OnceLock<Mutex<HashMap<String, Histogram>>> = OnceLock::new();
    let recent: Vec<(u64, f64)> = job
        .status
        .lock()
        .recent
        .iter()
        .map(|b| (b.batch_id, b.duration_ms as f64 / 1000.0))
        .collect();
    let mut all = HISTOGRAMS.get_or_init(Default::default).lock();
    let h = all.entry(job.spec.name.clone()).or_default();
    // A reset job numbers its batches from 0 again: start over (a counter reset).
    if let (Some(last), Some(newest)) = (h.last_batch, recent.iter().map(|b| b.0).max())
        && newest < last
    {
        *h = Histogram::default();
    }
    for (id, secs) in recent {
        if h.last_batch.is_some_and(|l| id <= l) {
            continue;
        }
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                h.buckets[i] += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
        h.last_batch = Some(id);
    }
    h.clone()
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
