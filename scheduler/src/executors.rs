//! The executors and SQL jobs Ballista knows, from its REST API on the same
//! process.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ember_api::ExecutorInfo;
use serde::Deserialize;

/// One client with a timeout: a stalled Ballista REST call must not hang the
/// UI or `/metrics` (and reusing it keeps connections pooled).
fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default()
    })
}

async fn get_json<T: serde::de::DeserializeOwned>(url: &str) -> Result<T, String> {
    let resp = client()
        .get(url)
        .send()
        .await
        .map_err(|e| format!("cannot reach the scheduler's REST API at {url}: {e}"))?;
    resp.json()
        .await
        .map_err(|e| format!("unexpected answer from {url}: {e}"))
}

#[derive(Debug, Deserialize)]
struct BallistaExecutor {
    id: String,
    host: String,
    port: u16,
    last_seen: Option<u128>,
    specification: Spec,
}

#[derive(Debug, Deserialize)]
struct Spec {
    #[serde(default)]
    vcores: u32,
}

/// Executors as the API shows them. Ballista's REST API does not say which
/// executor runs which task, so `busy_slots` stays 0 here; see
/// [`running_tasks`] for the cluster-wide count.
pub async fn list(ballista_http: &str, dead_after_secs: u64) -> Result<Vec<ExecutorInfo>, String> {
    let list: Vec<BallistaExecutor> = get_json(&format!("{ballista_http}/api/executors")).await?;
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let mut out: Vec<ExecutorInfo> = list
        .into_iter()
        .map(|e| {
            let ago = e
                .last_seen
                .map(|t| (now_ms.saturating_sub(t) / 1000) as u64)
                .unwrap_or(u64::MAX);
            ExecutorInfo {
                id: e.id,
                host: e.host,
                port: e.port as u32,
                task_slots: e.specification.vcores,
                busy_slots: 0,
                last_heartbeat_secs_ago: ago.min(1_000_000),
                state: if ago <= dead_after_secs {
                    "alive".into()
                } else {
                    "lost".into()
                },
            }
        })
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// One of Ballista's own jobs (SQL jobs, and each Ember micro-batch), as
/// its `GET /api/jobs` serves it.
#[derive(Debug, Clone, Deserialize)]
pub struct BallistaJob {
    pub job_id: String,
    #[serde(default)]
    pub job_name: String,
    /// Verbose status, with the failure detail.
    #[serde(default)]
    pub job_status: String,
    /// Queued | Running | Completed | Failed | Invalid
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub num_stages: usize,
    #[serde(default)]
    pub completed_stages: usize,
    /// ms since the epoch
    #[serde(default)]
    pub start_time: u64,
    /// ms since the epoch; 0 while running
    #[serde(default)]
    pub end_time: u64,
}

/// Ballista's jobs, newest first.
pub async fn ballista_jobs(ballista_http: &str) -> Result<Vec<BallistaJob>, String> {
    let mut jobs: Vec<BallistaJob> = get_json(&format!("{ballista_http}/api/jobs")).await?;
    jobs.sort_by(|a, b| {
        b.start_time
            .cmp(&a.start_time)
            .then_with(|| b.job_id.cmp(&a.job_id))
    });
    Ok(jobs)
}

#[derive(Debug, Deserialize)]
struct Stages {
    stages: Vec<Stage>,
}

#[derive(Debug, Deserialize)]
struct Stage {
    #[serde(default)]
    tasks: Vec<Option<Task>>,
}

#[derive(Debug, Deserialize)]
struct Task {
    status: serde_json::Value,
}

/// Tasks running now across the cluster (each takes one task slot), counted
/// from the stages of Ballista's running jobs.
pub async fn running_tasks(ballista_http: &str, jobs: &[BallistaJob]) -> usize {
    let mut n = 0;
    for j in jobs.iter().filter(|j| j.status == "Running") {
        let url = format!("{ballista_http}/api/job/{}/stages", j.job_id);
        if let Ok(s) = get_json::<Stages>(&url).await {
            n += s
                .stages
                .iter()
                .flat_map(|st| st.tasks.iter().flatten())
                .filter(|t| t.status == "Running")
                .count();
        }
    }
    n
}
