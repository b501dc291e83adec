//! The executors Ballista knows, from its REST API on the same process.

use std::time::{SystemTime, UNIX_EPOCH};

use ember_api::ExecutorInfo;
use serde::Deserialize;

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

/// Executors as the API shows them. `busy` maps executor id → running tasks.
pub async fn list(ballista_http: &str, dead_after_secs: u64) -> Result<Vec<ExecutorInfo>, String> {
    let url = format!("{ballista_http}/api/executors");
    let resp = reqwest::get(&url).await.map_err(|e| format!("cannot reach the scheduler's REST API at {url}: {e}"))?;
    let list: Vec<BallistaExecutor> = resp.json().await.map_err(|e| format!("unexpected answer from {url}: {e}"))?;
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    let mut out: Vec<ExecutorInfo> = list
        .into_iter()
        .map(|e| {
            let ago = e.last_seen.map(|t| (now_ms.saturating_sub(t) / 1000) as u64).unwrap_or(u64::MAX);
            ExecutorInfo {
                id: e.id,
                host: e.host,
                port: e.port as u32,
                task_slots: e.specification.vcores,
                busy_slots: 0,
                last_heartbeat_secs_ago: ago.min(1_000_000),
                state: if ago <= dead_after_secs { "alive".into() } else { "lost".into() },
            }
        })
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}
