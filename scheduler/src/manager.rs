//! The streaming-job manager: one loop per job, each iteration a micro-batch.
//!
//! At every trigger: read the latest offsets, fix the ranges (capped by
//! `maxOffsetsPerTrigger`), write `offsets/<batch>`, run one Ballista job over
//! the ranges (scan → decode → SQL → sink) on the executors, and only after
//! the sink succeeded write `commits/<batch>`. A failed batch is retried with
//! the same ranges, with backoff, until it succeeds or the job is stopped; a
//! restart re-runs an uncommitted batch with its recorded ranges. When a
//! batch leaves a backlog behind, the next trigger's latest offsets are read
//! while it runs.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use ballista_core::execution_plans::execute_physical_plan;
use ballista_core::extension::SessionConfigExt;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Int32Type, Int64Type, UInt64Type};
use datafusion::prelude::SessionConfig;
use datafusion_proto::protobuf::PhysicalPlanNode;
use ember_api::{
    BatchInfo, DeadLetterSample, JobDetail, JobSummary, MetricPoint, PartitionProgress, TaskReport,
};
use ember_api::{batch_state, job_state};
use ember_jobs::cassandra::{SinkConnection, connect, table_columns};
use ember_jobs::kafka::consumer::{consumer_config, watermarks};
use ember_jobs::kafka::{OffsetRange, PartitionOffsets, TopicPartition, backlog, plan_ranges};
use ember_jobs::latency::Latency;
use ember_jobs::rate::RateConfig;
use ember_jobs::spec::{SinkFormat, StartingOffsets, Trigger};
use ember_jobs::{EmberPhysicalCodec, JobPlanner, JobSpec, SinkTable};
use futures::TryStreamExt;
use parking_lot::Mutex;
use rdkafka::consumer::BaseConsumer;
use tokio::sync::Notify;

use crate::checkpoint::{Checkpoint, JobMeta, OffsetsEntry};

const HISTORY_POINTS: usize = 300;
const BATCHES_KEPT: usize = 50;
/// Batch logs kept in the checkpoint (Spark's minBatchesToRetain).
const BATCHES_RETAINED: usize = 100;
const KAFKA_TIMEOUT: Duration = Duration::from_secs(10);

/// Live state of one job, read by the APIs.
#[derive(Debug, Default)]
pub struct JobStatus {
    pub state: String,
    pub error: String,
    pub rows_in: u64,
    pub rows_out: u64,
    pub rows_dead: u64,
    pub batches: u64,
    pub latest: PartitionOffsets,
    pub committed: PartitionOffsets,
    pub recent: VecDeque<BatchInfo>,
    pub history: VecDeque<MetricPoint>,
    /// (instant, rows_in, rows_out) per committed batch, for rates.
    pub rate_window: VecDeque<(Instant, u64, u64)>,
    /// Sink latency of every row written since this scheduler ran the job.
    pub latency: Latency,
}

pub struct Job {
    pub spec: JobSpec,
    pub checkpoint: Checkpoint,
    pub status: Mutex<JobStatus>,
    stop: Notify,
    stopping: std::sync::atomic::AtomicBool,
}

impl Job {
    fn set_state(&self, state: &str, error: impl Into<String>) {
        let mut s = self.status.lock();
        s.state = state.to_string();
        s.error = error.into();
    }
    fn stopping(&self) -> bool {
        self.stopping.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn summary(&self) -> JobSummary {
        let s = self.status.lock();
        let lag: i64 = partitions_of(&s).iter().map(|p| p.lag).sum();
        let (rin, rout) = rates(&s.rate_window);
        JobSummary {
            name: self.spec.name.clone(),
            state: s.state.clone(),
            topic: self.spec.source.topics.join(","),
            sink: match self.spec.sink.format {
                SinkFormat::Cassandra => {
                    format!("{}.{}", self.spec.sink.keyspace, self.spec.sink.table)
                }
                SinkFormat::Noop => "noop".into(),
            },
            rows_in: s.rows_in,
            rows_out: s.rows_out,
            rows_dead: s.rows_dead,
            total_lag: lag,
            batches: s.batches,
            rows_in_per_sec: rin,
            rows_out_per_sec: rout,
            error: s.error.clone(),
            trigger: self.spec.trigger.describe(),
            latency_samples: s.latency.count(),
            latency_p50_ms: s.latency.quantile(0.5),
            latency_p95_ms: s.latency.quantile(0.95),
            latency_p99_ms: s.latency.quantile(0.99),
            latency_max_ms: s.latency.max(),
        }
    }

    /// Latest, committed offset and lag per partition.
    pub fn partitions(&self) -> Vec<PartitionProgress> {
        partitions_of(&self.status.lock())
    }

    pub fn detail(&self, dead_letters: Vec<DeadLetterSample>) -> JobDetail {
        let summary = self.summary();
        let s = self.status.lock();
        let partitions = partitions_of(&s);
        JobDetail {
            summary: Some(summary),
            partitions,
            batches: s.recent.iter().rev().cloned().collect(),
            dead_letters,
            history: s.history.iter().cloned().collect(),
            spec: self.spec.text.clone(),
        }
    }
}

fn partitions_of(s: &JobStatus) -> Vec<PartitionProgress> {
    s.latest
        .iter()
        .map(|(tp, &hi)| {
            let c = s.committed.get(tp).copied().unwrap_or(hi);
            PartitionProgress {
                topic: tp.topic.clone(),
                partition: tp.partition,
                latest_offset: hi,
                committed_offset: c,
                lag: (hi - c).max(0),
            }
        })
        .collect()
}

/// Rows/s over the last minute of committed batches.
fn rates(w: &VecDeque<(Instant, u64, u64)>) -> (f64, f64) {
    let now = Instant::now();
    let recent: Vec<_> = w
        .iter()
        .filter(|(t, _, _)| now.duration_since(*t) <= Duration::from_secs(60))
        .collect();
    if recent.is_empty() {
        return (0.0, 0.0);
    }
    let span = now.duration_since(recent[0].0).as_secs_f64().max(1.0);
    let rin: u64 = recent.iter().map(|r| r.1).sum();
    let rout: u64 = recent.iter().map(|r| r.2).sum();
    (rin as f64 / span, rout as f64 / span)
}

pub struct Manager {
    state_dir: PathBuf,
    /// `http://host:port` of Ballista's scheduler (this process).
    ballista_url: String,
    jobs: Mutex<BTreeMap<String, Arc<Job>>>,
    /// One submission at a time: validation talks to the sink and broker.
    submit_lock: tokio::sync::Mutex<()>,
}

pub enum SubmitAction {
    Created,
    Resumed,
    Reset,
}

impl SubmitAction {
    pub fn as_str(&self) -> &'static str {
        match self {
            SubmitAction::Created => "created",
            SubmitAction::Resumed => "resumed",
            SubmitAction::Reset => "reset",
        }
    }
}

impl Manager {
    pub fn new(state_dir: PathBuf, ballista_url: String) -> Arc<Self> {
        Arc::new(Self {
            state_dir,
            ballista_url,
            jobs: Mutex::new(BTreeMap::new()),
            submit_lock: Default::default(),
        })
    }

    pub fn jobs(&self) -> Vec<Arc<Job>> {
        self.jobs.lock().values().cloned().collect()
    }
    pub fn job(&self, name: &str) -> Option<Arc<Job>> {
        self.jobs.lock().get(name).cloned()
    }

    /// Loads every checkpointed job; resumes those that were running.
    pub async fn recover(self: &Arc<Self>) {
        for name in Checkpoint::list(&self.state_dir) {
            let res: Result<()> = async {
                let cp = Checkpoint::open(&self.state_dir, &name)?;
                let Some(meta) = cp.read_meta()? else {
                    return Ok(());
                };
                let spec = JobSpec::parse(&cp.read_spec()?).map_err(|e| anyhow!("{e}"))?;
                let job = self.install(spec, cp, &meta)?;
                if meta.state == job_state::RUNNING {
                    tracing::info!("resuming job {name} from its checkpoint");
                    self.start(job, meta, None);
                }
                Ok(())
            }
            .await;
            if let Err(e) = res {
                tracing::error!("cannot recover job {name}: {e:#}");
            }
        }
    }

    fn install(&self, spec: JobSpec, checkpoint: Checkpoint, meta: &JobMeta) -> Result<Arc<Job>> {
        let mut status = JobStatus {
            state: meta.state.clone(),
            ..Default::default()
        };
        status.committed = checkpoint.committed_offsets(meta)?;
        let ids = checkpoint.committed_ids();
        status.batches = ids.len() as u64;
        let first_recent = ids.len().saturating_sub(BATCHES_KEPT);
        for (i, id) in ids.iter().enumerate() {
            if let Ok(b) = checkpoint.read_commit(*id) {
                status.rows_in += b.rows_in;
                status.rows_out += b.rows_out;
                status.rows_dead += b.rows_dead;
                if i >= first_recent {
                    status.recent.push_back(b);
                }
            }
        }
        let job = Arc::new(Job {
            spec,
            checkpoint,
            status: Mutex::new(status),
            stop: Notify::new(),
            stopping: Default::default(),
        });
        self.jobs.lock().insert(job.spec.name.clone(), job.clone());
        Ok(job)
    }

    /// Starts a job's loop; `planner` is the one submission just validated
    /// (None on recovery: the loop validates before its first batch).
    fn start(self: &Arc<Self>, job: Arc<Job>, meta: JobMeta, planner: Option<JobPlanner>) {
        let me = self.clone();
        tokio::spawn(async move { me.run(job, meta, planner).await });
    }

    /// Validates a spec (naming the fault) and starts or resumes its job.
    pub async fn submit(
        self: &Arc<Self>,
        text: &str,
        reset: bool,
    ) -> Result<(SubmitAction, JobSummary), String> {
        let _guard = self.submit_lock.lock().await;
        let spec = JobSpec::parse(text).map_err(|e| e.to_string())?;
        let planner = validate(&spec).await?;
        let name = spec.name.clone();
        if let Some(old) = self.job(&name)
            && matches!(
                old.status.lock().state.as_str(),
                job_state::RUNNING | job_state::RETRYING
            )
        {
            if !reset {
                return Err(format!(
                    "job {name} is already running; stop it first (ember stop {name}) to change its spec"
                ));
            }
            self.stop_and_wait(&old).await;
        }
        let cp = Checkpoint::open(&self.state_dir, &name).map_err(|e| e.to_string())?;
        let existed = Checkpoint::exists(&self.state_dir, &name);
        let (action, start_offsets) = if existed && !reset {
            let meta = cp
                .read_meta()
                .map_err(|e| e.to_string())?
                .ok_or("checkpoint without job.json")?;
            (SubmitAction::Resumed, meta.start_offsets)
        } else {
            if existed {
                cp.reset().map_err(|e| e.to_string())?;
            }
            let start = resolve_start(&spec).await?;
            (
                if existed {
                    SubmitAction::Reset
                } else {
                    SubmitAction::Created
                },
                start.into_iter().collect(),
            )
        };
        let meta = JobMeta {
            name: name.clone(),
            state: job_state::RUNNING.into(),
            created_at: chrono::Utc::now().to_rfc3339(),
            start_offsets,
        };
        cp.write_spec(text).map_err(|e| e.to_string())?;
        cp.write_meta(&meta).map_err(|e| e.to_string())?;
        let job = self.install(spec, cp, &meta).map_err(|e| e.to_string())?;
        let summary = job.summary();
        self.start(job, meta, Some(planner));
        Ok((action, summary))
    }

    async fn stop_and_wait(&self, job: &Arc<Job>) {
        job.stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        job.stop.notify_waiters();
        for _ in 0..600 {
            if !matches!(
                job.status.lock().state.as_str(),
                job_state::RUNNING | job_state::RETRYING
            ) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops a job after its current batch (which is committed or, if it
    /// fails, left to be re-run on the next submission).
    pub async fn stop(&self, name: &str) -> Result<JobSummary, String> {
        let job = self
            .job(name)
            .ok_or_else(|| format!("no job named {name}"))?;
        self.stop_and_wait(&job).await;
        if let Ok(Some(mut meta)) = job.checkpoint.read_meta() {
            meta.state = job.status.lock().state.clone();
            let _ = job.checkpoint.write_meta(&meta);
        }
        Ok(job.summary())
    }

    /// The job's loop.
    async fn run(self: Arc<Self>, job: Arc<Job>, mut meta: JobMeta, planner: Option<JobPlanner>) {
        job.set_state(job_state::RUNNING, "");
        let name = job.spec.name.clone();
        let mut failures = 0u32;
        let client = match job.spec.source.rate {
            Some(r) => Some(SourceClient::Rate(RateConfig::for_job(
                r,
                rate_start_ms(&meta),
            ))),
            None => consumer_config(
                &job.spec.source.bootstrap_servers,
                &name,
                &job.spec.source.kafka_options,
            )
            .create()
            .ok()
            .map(|c| SourceClient::Kafka(Arc::new(c))),
        };
        let mut source = SourceState {
            client,
            target: None,
            ahead: None,
        };
        let mut planner = planner.map(|p| p.with_rate_start(rate_start_ms(&meta)));
        let final_state = loop {
            if job.stopping() {
                break job_state::STOPPED;
            }
            let started = Instant::now();
            let step = self
                .step(&job, &mut meta, &mut planner, &mut source, failures + 1)
                .await;
            match step {
                Ok(Step::Ran) => {
                    failures = 0;
                    job.set_state(job_state::RUNNING, "");
                    if job.spec.trigger == Trigger::Once {
                        break job_state::FINISHED;
                    }
                }
                Ok(Step::Idle) => {
                    failures = 0;
                    if matches!(job.spec.trigger, Trigger::AvailableNow | Trigger::Once) {
                        break job_state::FINISHED;
                    }
                    let wait = match job.spec.trigger {
                        Trigger::ProcessingTime(Some(d)) => d,
                        _ => Duration::from_millis(100),
                    };
                    self.pause(&job, wait.saturating_sub(started.elapsed()))
                        .await;
                    continue;
                }
                Err(e) => {
                    failures += 1;
                    let backoff = Duration::from_millis(500 * 2u64.pow(failures.min(5)))
                        .min(Duration::from_secs(10));
                    tracing::warn!(
                        "job {name}: {e:#}; retrying in {} ms (attempt {failures})",
                        backoff.as_millis()
                    );
                    job.set_state(job_state::RETRYING, format!("{e:#}"));
                    planner = None; // re-validate the sink on the next try
                    self.pause(&job, backoff).await;
                    continue;
                }
            }
            if let Trigger::ProcessingTime(Some(d)) = job.spec.trigger {
                self.pause(&job, d.saturating_sub(started.elapsed())).await;
            }
        };
        job.set_state(final_state, "");
        meta.state = final_state.to_string();
        if let Err(e) = job.checkpoint.write_meta(&meta) {
            tracing::error!("job {name}: cannot record state: {e:#}");
        }
        tracing::info!("job {name} {final_state}");
    }

    async fn pause(&self, job: &Job, d: Duration) {
        if d.is_zero() {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = job.stop.notified() => {}
        }
    }

    async fn step(
        &self,
        job: &Arc<Job>,
        meta: &mut JobMeta,
        planner: &mut Option<JobPlanner>,
        source: &mut SourceState,
        attempt: u32,
    ) -> Result<Step> {
        let spec = &job.spec;
        let committed = job.status.lock().committed.clone();
        let asked = Instant::now();
        let (low, high) = match &source.client {
            None => return Err(anyhow!("cannot create a Kafka client")),
            Some(SourceClient::Kafka(consumer)) => {
                // Read during the last batch, which left a backlog behind. A
                // failed read fails this attempt, as a read here would: a
                // broker outage shows as a retry, not as a long trigger.
                let read = match source.ahead.take() {
                    Some(h) => h.await.ok(),
                    None => None,
                };
                match read {
                    Some(r) => r,
                    None => tokio::task::block_in_place(|| {
                        watermarks(consumer, &spec.source.topics, KAFKA_TIMEOUT)
                    }),
                }
                .map_err(|e| anyhow!(e))?
            }
            Some(SourceClient::Rate(r)) => {
                let now = chrono::Utc::now().timestamp_millis();
                (r.earliest(), r.latest_after(&committed, now))
            }
        };
        let latest_offset_ms = asked.elapsed().as_millis() as u64;
        job.status.lock().latest = high.clone();

        let pending = job.checkpoint.pending()?;
        let mut backlog_left = false;
        let entry = match pending {
            Some(p) => {
                tracing::info!(
                    "job {}: re-running uncommitted batch {} with its recorded ranges",
                    spec.name,
                    p.batch_id
                );
                p
            }
            None => {
                let mut start = committed;
                for (tp, lo) in &low {
                    // A partition that appeared after the job started: from its beginning.
                    if !start.contains_key(tp) {
                        start.insert(tp.clone(), *lo);
                        meta.start_offsets.push((tp.clone(), *lo));
                        job.checkpoint.write_meta(meta)?;
                    }
                    if let Some(s) = start.get_mut(tp)
                        && *s < *lo
                    {
                        if spec.source.fail_on_data_loss {
                            return Err(anyhow!(
                                "offsets {}..{} of {}/{} are gone (retention or deletion) and failOnDataLoss is true",
                                s,
                                lo,
                                tp.topic,
                                tp.partition
                            ));
                        }
                        tracing::warn!(
                            "{}/{}: skipping lost offsets {}..{}",
                            tp.topic,
                            tp.partition,
                            s,
                            lo
                        );
                        *s = *lo;
                    }
                }
                let upto = match spec.trigger {
                    Trigger::AvailableNow | Trigger::Once => {
                        source.target.get_or_insert_with(|| high.clone()).clone()
                    }
                    _ => high.clone(),
                };
                let cap = if spec.trigger == Trigger::Once {
                    None
                } else {
                    spec.source.max_offsets_per_trigger
                };
                let ranges = plan_ranges(&start, &upto, cap);
                if ranges.is_empty() {
                    return Ok(Step::Idle);
                }
                let taken: u64 = ranges.iter().map(OffsetRange::len).sum();
                backlog_left = taken < backlog(&start, &upto);
                let e = OffsetsEntry {
                    batch_id: job.checkpoint.next_batch_id(),
                    ranges,
                    planned_at: chrono::Utc::now().to_rfc3339(),
                };
                job.checkpoint
                    .write_offsets(&e)
                    .context("writing the offsets log")?;
                e
            }
        };
        if planner.is_none() {
            let p = validate(spec).await.map_err(|e| anyhow!(e))?;
            *planner = Some(p.with_rate_start(rate_start_ms(meta)));
        }
        let planner = planner.as_ref().ok_or_else(|| anyhow!("no planner"))?;
        // With a backlog behind this batch, the next one's ranges are fixed
        // by the cap (or the availableNow target), not by what arrives
        // meanwhile: read the latest offsets while this batch runs. Against
        // tansu, which serves storage requests one at a time behind the
        // consumers' fetches, the read took 1-2 s between batches.
        if backlog_left && let Some(SourceClient::Kafka(consumer)) = &source.client {
            let (consumer, topics) = (consumer.clone(), spec.source.topics.clone());
            source.ahead = Some(tokio::task::spawn_blocking(move || {
                watermarks(&consumer, &topics, KAFKA_TIMEOUT)
            }));
        }
        let ran = self.run_batch(job, planner, &entry).await;
        if ran.is_err() {
            source.ahead = None; // read again after the retry's backoff
        }
        let (mut info, batch_latency) = ran?;
        info.attempts = attempt;
        info.latest_offset_ms = latest_offset_ms;
        job.checkpoint
            .write_commit(&info)
            .context("writing the commit log")?;
        if info.batch_id.is_multiple_of(50) {
            job.checkpoint
                .purge(meta, BATCHES_RETAINED)
                .context("purging old batch logs")?;
        }
        let mut s = job.status.lock();
        for r in &entry.ranges {
            let tp = TopicPartition {
                topic: r.topic.clone(),
                partition: r.partition,
            };
            let c = s.committed.entry(tp).or_insert(r.until);
            *c = (*c).max(r.until);
        }
        s.rows_in += info.rows_in;
        s.rows_out += info.rows_out;
        s.rows_dead += info.rows_dead;
        s.latency.merge(&batch_latency);
        s.batches += 1;
        let now = Instant::now();
        s.rate_window.push_back((now, info.rows_in, info.rows_out));
        while s
            .rate_window
            .front()
            .is_some_and(|f| now.duration_since(f.0) > Duration::from_secs(60))
        {
            s.rate_window.pop_front();
        }
        let (rin, rout) = rates(&s.rate_window);
        let lag: i64 = partitions_of(&s).iter().map(|p| p.lag).sum();
        s.history.push_back(MetricPoint {
            at_ms: chrono::Utc::now().timestamp_millis(),
            rows_in_per_sec: rin,
            rows_out_per_sec: rout,
            lag,
        });
        if s.history.len() > HISTORY_POINTS {
            s.history.pop_front();
        }
        s.recent.push_back(info);
        if s.recent.len() > BATCHES_KEPT {
            s.recent.pop_front();
        }
        Ok(Step::Ran)
    }

    async fn run_batch(
        &self,
        job: &Arc<Job>,
        planner: &JobPlanner,
        entry: &OffsetsEntry,
    ) -> Result<(BatchInfo, Latency)> {
        let started = Instant::now();
        let started_at = chrono::Utc::now().to_rfc3339();
        let plan = planner.batch_plan(entry.batch_id, &entry.ranges).await?;
        let codec = EmberPhysicalCodec::default();
        let config = SessionConfig::new_with_ballista()
            .with_target_partitions(entry.ranges.len().max(1))
            .set_str("ballista.scheduler.max_partitions_per_task", "1")
            .set_str(
                "ballista.job.name",
                &format!("{} batch {}", job.spec.name, entry.batch_id),
            );
        let stream = execute_physical_plan::<PhysicalPlanNode>(
            self.ballista_url.clone(),
            &config.ballista_config(),
            plan,
            &codec,
            format!("ember-{}", job.spec.name),
            config,
        )
        .await?;
        let batches: Vec<RecordBatch> = stream.try_collect().await?;
        let (tasks, latency) = parse_reports(&batches)?;
        // Every range must be accounted for, exactly once.
        let mut seen: HashMap<(String, i32), u32> = HashMap::new();
        for t in &tasks {
            *seen.entry((t.topic.clone(), t.partition)).or_default() += 1;
        }
        for r in &entry.ranges {
            match seen.get(&(r.topic.clone(), r.partition)) {
                Some(1) => {}
                n => {
                    return Err(anyhow!(
                        "batch {}: range {}/{} was reported {} times (expected once)",
                        entry.batch_id,
                        r.topic,
                        r.partition,
                        n.copied().unwrap_or(0)
                    ));
                }
            }
        }
        let mut executors: Vec<String> = tasks.iter().map(|t| t.executor_id.clone()).collect();
        executors.sort();
        executors.dedup();
        let info = BatchInfo {
            batch_id: entry.batch_id,
            ranges: entry.ranges.iter().map(to_api_range).collect(),
            state: batch_state::COMMITTED.into(),
            rows_in: tasks.iter().map(|t| t.rows_in).sum(),
            rows_out: tasks.iter().map(|t| t.rows_out).sum(),
            rows_dead: tasks.iter().map(|t| t.rows_dead).sum(),
            duration_ms: started.elapsed().as_millis() as u64,
            executors,
            tasks,
            error: String::new(),
            started_at,
            attempts: 1,
            latency_p50_ms: latency.quantile(0.5),
            latency_p99_ms: latency.quantile(0.99),
            latency_max_ms: latency.max(),
            latest_offset_ms: 0, // step() sets it: the wait was before this batch
        };
        Ok((info, latency))
    }

    /// Recent dead letters of a job, read from the sink's dead-letter table.
    pub async fn dead_letters(&self, job: &Job, limit: usize) -> Vec<DeadLetterSample> {
        let s = &job.spec.sink;
        if s.format == SinkFormat::Noop {
            return Vec::new(); // counted, not kept
        }
        let conn = SinkConnection {
            contact_points: s.contact_points.clone(),
            username: s.username.clone(),
            password: s.password.clone(),
        };
        let Ok(c) = connect(&conn).await else {
            return Vec::new();
        };
        let q = format!(
            "SELECT topic, partition, offset, reason, value, failed_at, job FROM {}.{} LIMIT {}",
            s.keyspace,
            s.dead_letter_table,
            limit * 4
        );
        let Ok(res) = c.session.query_unpaged(q, ()).await else {
            return Vec::new();
        };
        let Ok(rows) = res.into_rows_result() else {
            return Vec::new();
        };
        type R = (
            String,
            i32,
            i64,
            Option<String>,
            Option<Vec<u8>>,
            Option<scylla::value::CqlTimestamp>,
            Option<String>,
        );
        let Ok(iter) = rows.rows::<R>() else {
            return Vec::new();
        };
        let mut out: Vec<DeadLetterSample> = iter
            .filter_map(|r| r.ok())
            .filter(|r| r.6.as_deref() == Some(job.spec.name.as_str()))
            .map(|r| DeadLetterSample {
                topic: r.0,
                partition: r.1,
                offset: r.2,
                reason: r.3.unwrap_or_default(),
                value: String::from_utf8_lossy(&r.4.unwrap_or_default()).into_owned(),
                failed_at: r
                    .5
                    .and_then(|t| chrono::DateTime::from_timestamp_millis(t.0))
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_default(),
            })
            .collect();
        out.sort_by(|a, b| b.failed_at.cmp(&a.failed_at).then(b.offset.cmp(&a.offset)));
        out.truncate(limit);
        out
    }
}

enum Step {
    Ran,
    Idle,
}

/// Where a job's loop reads the latest offsets.
enum SourceClient {
    Kafka(Arc<BaseConsumer>),
    Rate(RateConfig),
}

/// A job loop's source: its client, the availableNow/once target (the end
/// offsets fixed at start) and the offsets being read ahead.
struct SourceState {
    client: Option<SourceClient>,
    target: Option<PartitionOffsets>,
    ahead: Option<OffsetsReadAhead>,
}

/// The earliest and latest offsets, read while a batch runs.
type OffsetsReadAhead =
    tokio::task::JoinHandle<Result<(PartitionOffsets, PartitionOffsets), String>>;

/// A rate source's rows are fixed by the clock since the job was created
/// (kept in its checkpoint, so a resumed job continues its sequence).
fn rate_start_ms(meta: &JobMeta) -> i64 {
    chrono::DateTime::parse_from_rfc3339(&meta.created_at)
        .map(|t| t.timestamp_millis())
        .unwrap_or_else(|_| chrono::Utc::now().timestamp_millis())
}

fn to_api_range(r: &OffsetRange) -> ember_api::OffsetRange {
    ember_api::OffsetRange {
        topic: r.topic.clone(),
        partition: r.partition,
        from_offset: r.from,
        until_offset: r.until,
    }
}

/// The sinks' task reports, and their latency histograms merged.
fn parse_reports(batches: &[RecordBatch]) -> Result<(Vec<TaskReport>, Latency)> {
    let mut out = Vec::new();
    let mut latency = Latency::new();
    for b in batches {
        let s = |i: usize| {
            b.column(i)
                .as_string_opt::<i32>()
                .ok_or_else(|| anyhow!("bad sink report"))
        };
        let i32c = |i: usize| {
            b.column(i)
                .as_primitive_opt::<Int32Type>()
                .ok_or_else(|| anyhow!("bad sink report"))
        };
        let i64c = |i: usize| {
            b.column(i)
                .as_primitive_opt::<Int64Type>()
                .ok_or_else(|| anyhow!("bad sink report"))
        };
        let u64c = |i: usize| {
            b.column(i)
                .as_primitive_opt::<UInt64Type>()
                .ok_or_else(|| anyhow!("bad sink report"))
        };
        let (ex, topic, part, from, until) = (s(0)?, s(1)?, i32c(2)?, i64c(3)?, i64c(4)?);
        let (rin, rout, rdead, dur) = (u64c(5)?, u64c(6)?, u64c(7)?, u64c(8)?);
        let lat = b
            .column(9)
            .as_binary_opt::<i32>()
            .ok_or_else(|| anyhow!("bad sink report"))?;
        for i in 0..b.num_rows() {
            latency.merge(&Latency::decode(lat.value(i)).map_err(|e| anyhow!(e))?);
            if part.is_null(i) || part.value(i) < 0 {
                continue; // a task with no range (empty batch partition)
            }
            out.push(TaskReport {
                executor_id: ex.value(i).to_string(),
                topic: topic.value(i).to_string(),
                partition: part.value(i),
                from_offset: from.value(i),
                until_offset: until.value(i),
                rows_in: rin.value(i),
                rows_out: rout.value(i),
                rows_dead: rdead.value(i),
                duration_ms: dur.value(i),
            });
        }
    }
    out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    Ok((out, latency))
}

/// Resolves `startingOffsets` against the broker.
async fn resolve_start(spec: &JobSpec) -> Result<PartitionOffsets, String> {
    if let Some(r) = spec.source.rate {
        return Ok(RateConfig::for_job(r, 0).earliest());
    }
    let (low, high) = kafka_watermarks(spec).await?;
    Ok(low
        .iter()
        .map(|(tp, &lo)| {
            let hi = high.get(tp).copied().unwrap_or(lo);
            let o = match &spec.source.starting_offsets {
                StartingOffsets::Earliest => lo,
                StartingOffsets::Latest => hi,
                StartingOffsets::Specific(m) => {
                    match m.get(&tp.topic).and_then(|p| p.get(&tp.partition)) {
                        Some(-2) => lo,
                        Some(-1) | None => hi,
                        Some(&o) => o.clamp(lo, hi),
                    }
                }
            };
            (tp.clone(), o)
        })
        .collect())
}

async fn kafka_watermarks(spec: &JobSpec) -> Result<(PartitionOffsets, PartitionOffsets), String> {
    let cfg = consumer_config(
        &spec.source.bootstrap_servers,
        &spec.name,
        &spec.source.kafka_options,
    );
    let topics = spec.source.topics.clone();
    tokio::task::spawn_blocking(move || {
        let c: BaseConsumer = cfg
            .create()
            .map_err(|e| format!("invalid Kafka options: {e}"))?;
        watermarks(&c, &topics, KAFKA_TIMEOUT)
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("source: {e}"))
}

/// Everything a submission checks with the servers: the topic exists, the
/// sink keyspace and tables exist (created from the spec's DDL), and the SQL
/// plans against the source and produces only sink columns.
pub async fn validate(spec: &JobSpec) -> Result<JobPlanner, String> {
    if spec.source.rate.is_none() {
        kafka_watermarks(spec).await?;
    }
    let sink = match spec.sink.format {
        SinkFormat::Cassandra => Some(prepare_sink(spec).await?),
        SinkFormat::Noop => None,
    };
    JobPlanner::new(spec.clone(), sink).await
}

async fn prepare_sink(spec: &JobSpec) -> Result<SinkTable, String> {
    let s = &spec.sink;
    let conn = SinkConnection {
        contact_points: s.contact_points.clone(),
        username: s.username.clone(),
        password: s.password.clone(),
    };
    let c = connect(&conn).await.map_err(|e| format!("sink: {e}"))?;
    let run = |cql: String| {
        let c = c.clone();
        async move {
            c.session
                .query_unpaged(cql.clone(), ())
                .await
                .map(|_| ())
                .map_err(|e| format!("sink: `{}` failed: {e}", cql.trim()))
        }
    };
    run(format!(
        "CREATE KEYSPACE IF NOT EXISTS {} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': '{}'}}",
        s.keyspace, s.replication_factor
    ))
    .await?;
    if let Some(ddl) = &s.ddl {
        run(ddl.clone()).await?;
    }
    run(format!(
        "CREATE TABLE IF NOT EXISTS {}.{} (topic text, partition int, offset bigint, job text, batch_id bigint, value blob, reason text, failed_at timestamp, PRIMARY KEY ((topic, partition), offset))",
        s.keyspace, s.dead_letter_table
    ))
    .await?;
    let columns = table_columns(&c, &s.keyspace, &s.table)
        .await
        .map_err(|e| format!("sink: {e}"))?;
    if columns.is_empty() {
        return Err(format!(
            "sink: table {}.{} does not exist (give its CREATE TABLE as sink.ddl)",
            s.keyspace, s.table
        ));
    }
    Ok(SinkTable { columns })
}
