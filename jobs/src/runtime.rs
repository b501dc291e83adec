//! Process-wide facts the plan nodes report, such as which executor ran them.

use std::sync::OnceLock;

static EXECUTOR_ID: OnceLock<String> = OnceLock::new();

/// Called once by `ember-executor` at start-up.
pub fn set_executor_id(id: impl Into<String>) {
    let _ = EXECUTOR_ID.set(id.into());
}

/// This process's executor id, or "local" outside an executor.
pub fn executor_id() -> String {
    EXECUTOR_ID
        .get()
        .cloned()
        .unwrap_or_else(|| "local".to_string())
}
