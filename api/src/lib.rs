//! The API types every Ember surface shares: the REST API at `/api/v1`, the
//! CLI's gRPC service, `ember --json`, the web UI and the tests. They are
//! generated from `proto/ember.proto` (one definition); this crate re-exports
//! them under stable names and adds the vocabulary of states.

pub use ember_proto::{
    BatchInfo, DeadLetterSample, ExecutorInfo, ExecutorList, JobDetail, JobList, JobSummary,
    MetricPoint, OffsetRange, PartitionProgress, SubmitJobReply, TaskReport,
};

/// Job states, as the API spells them.
pub mod job_state {
    pub const RUNNING: &str = "running";
    /// A batch failed and is being retried with the same ranges.
    pub const RETRYING: &str = "retrying";
    pub const STOPPED: &str = "stopped";
    /// An `availableNow` / `once` job that processed everything it was asked to.
    pub const FINISHED: &str = "finished";
    pub const FAILED: &str = "failed";
}

/// Batch states.
pub mod batch_state {
    pub const PLANNED: &str = "planned";
    pub const RUNNING: &str = "running";
    pub const COMMITTED: &str = "committed";
    pub const FAILED: &str = "failed";
}

/// The REST API's paths under the web UI's port.
pub mod paths {
    pub const JOBS: &str = "/api/v1/jobs";
    pub const EXECUTORS: &str = "/api/v1/executors";
    pub fn job(name: &str) -> String {
        format!("{JOBS}/{name}")
    }
}
