//! End-to-end harness: starts `ember-scheduler` and `ember-executor`
//! processes on free ports against the servers `scripts/stack up` started
//! (Postgres, tansu, ember-cql), produces users to Kafka and reads the sink
//! back through the CQL protocol. Nothing is mocked.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use ember_api::{ExecutorList, JobDetail, JobSummary};
use rand::Rng;
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use serde_json::{Value, json};

pub fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}
pub fn kafka() -> String {
    env("EMBER_KAFKA", "127.0.0.1:9092")
}
pub fn cql() -> String {
    env("EMBER_CQL", "127.0.0.1:9042")
}
fn bin_dir() -> PathBuf {
    if let Ok(d) = std::env::var("EMBER_BIN_DIR") {
        return PathBuf::from(d);
    }
    // tests run from target/debug/deps
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(|p| p.parent())
        .map(PathBuf::from)
        .expect("target dir")
}
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_path_buf()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A free port whose next port is free too (an executor binds both).
pub fn free_port_pair() -> u16 {
    loop {
        let p = free_port();
        if p < u16::MAX && TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
}

/// A name no other test's topic or keyspace starts with or is a prefix of.
pub fn unique(prefix: &str) -> String {
    let n: u64 = rand::rng().random();
    format!("{prefix}_{n:016x}")
}

/// Creates a topic on the shared broker (tansu does not auto-create).
pub fn create_topic(name: &str, partitions: u32) -> Result<()> {
    create_topic_at(&kafka(), name, partitions)
}

/// Creates a topic through tansu's CLI on the broker at `brokers`.
pub fn create_topic_at(brokers: &str, name: &str, partitions: u32) -> Result<()> {
    let tansu = env(
        "EMBER_TANSU",
        &format!("{}/.cache/ember/tools/bin/tansu", env("HOME", "/root")),
    );
    let out = Command::new(&tansu)
        .args([
            "topic",
            "create",
            name,
            "--partitions",
            &partitions.to_string(),
            "--broker",
            &format!("tcp://{brokers}"),
        ])
        .output()
        .with_context(|| format!("running {tansu}"))?;
    if !out.status.success() {
        bail!(
            "creating topic {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// A child process killed when dropped.
pub struct Proc {
    pub name: String,
    child: Option<Child>,
    pub log: PathBuf,
}

impl Proc {
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }
    /// kill -9.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }
    pub fn log_tail(&self) -> String {
        let s = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn(name: &str, bin: &str, args: &[String], home: &PathBuf) -> Result<Proc> {
    std::fs::create_dir_all(home.join("logs"))?;
    let log = home.join("logs").join(format!("{name}.log"));
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)?;
    let child = Command::new(bin_dir().join(bin))
        .args(args)
        .env("EMBER_HOME", home)
        .stdout(Stdio::from(f.try_clone()?))
        .stderr(Stdio::from(f))
        .spawn()
        .with_context(|| format!("starting {bin} from {}", bin_dir().display()))?;
    Ok(Proc {
        name: name.into(),
        child: Some(child),
        log,
    })
}

/// A scheduler and executors of our own, on free ports.
pub struct Cluster {
    pub home: PathBuf,
    pub ballista_port: u16,
    pub grpc_port: u16,
    pub ui_port: u16,
    pub scheduler: Proc,
    pub executors: Vec<Proc>,
    http: reqwest::Client,
}

impl Cluster {
    pub async fn start(executors: usize) -> Result<Self> {
        let home = std::env::temp_dir().join(unique("ember-e2e"));
        std::fs::create_dir_all(&home)?;
        let (ballista_port, grpc_port, ui_port) = (free_port(), free_port(), free_port());
        let scheduler = Self::spawn_scheduler(&home, ballista_port, grpc_port, ui_port)?;
        let mut c = Cluster {
            home,
            ballista_port,
            grpc_port,
            ui_port,
            scheduler,
            executors: Vec::new(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
        };
        c.wait_ready().await?;
        for _ in 0..executors {
            c.add_executor()?;
        }
        c.wait_executors(executors).await?;
        Ok(c)
    }

    fn spawn_scheduler(home: &PathBuf, port: u16, grpc: u16, ui: u16) -> Result<Proc> {
        spawn(
            "scheduler",
            "ember-scheduler",
            &[
                "--port".into(),
                port.to_string(),
                "--grpc-port".into(),
                grpc.to_string(),
                "--ui-port".into(),
                ui.to_string(),
                "--state-dir".into(),
                home.join("scheduler").display().to_string(),
            ],
            home,
        )
    }

    /// kill -9 the scheduler and start it again on the same ports and state.
    pub async fn restart_scheduler(&mut self) -> Result<()> {
        self.scheduler.kill();
        self.scheduler =
            Self::spawn_scheduler(&self.home, self.ballista_port, self.grpc_port, self.ui_port)?;
        self.wait_ready().await
    }

    pub fn add_executor(&mut self) -> Result<()> {
        let i = self.executors.len();
        let port = free_port_pair();
        let p = spawn(
            &format!("executor-{i}"),
            "ember-executor",
            &[
                "--scheduler-port".into(),
                self.ballista_port.to_string(),
                "--port".into(),
                port.to_string(),
                "--id".into(),
                format!("exec-{i}-{port}"),
                "--work-dir".into(),
                self.home
                    .join(format!("executor-{i}"))
                    .display()
                    .to_string(),
            ],
            &self.home,
        )?;
        self.executors.push(p);
        Ok(())
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.ui_port)
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if self
                .http
                .get(self.url("/healthz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Ok(());
            }
            if !self.scheduler.is_running() {
                bail!("scheduler exited:\n{}", self.scheduler.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("scheduler not ready:\n{}", self.scheduler.log_tail())
    }

    pub async fn wait_executors(&self, n: usize) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(l) = self.executors_list().await
                && l.executors.iter().filter(|e| e.state == "alive").count() >= n
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let logs: Vec<String> = self
            .executors
            .iter()
            .map(|e| format!("--- {}:\n{}", e.name, e.log_tail()))
            .collect();
        bail!("fewer than {n} executors registered\n{}", logs.join("\n"))
    }

    pub async fn executors_list(&self) -> Result<ExecutorList> {
        Ok(self
            .http
            .get(self.url("/api/v1/executors"))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    /// Submits a spec through the REST API; Err carries the scheduler's message.
    pub async fn submit(&self, spec: &str, reset: bool) -> Result<JobSummary> {
        let r = self
            .http
            .post(self.url("/api/v1/jobs"))
            .json(&json!({"spec_toml": spec, "reset": reset}))
            .send()
            .await?;
        let status = r.status();
        let v: Value = r.json().await?;
        if !status.is_success() {
            return Err(anyhow!(
                "{}",
                v["error"].as_str().unwrap_or("submission failed")
            ));
        }
        Ok(serde_json::from_value(v["job"].clone())?)
    }

    pub async fn job(&self, name: &str) -> Result<JobDetail> {
        Ok(self
            .http
            .get(self.url(&format!("/api/v1/jobs/{name}")))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    pub async fn stop(&self, name: &str) -> Result<JobSummary> {
        Ok(self
            .http
            .post(self.url(&format!("/api/v1/jobs/{name}/stop")))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    /// Waits until `f` holds for the job, failing with the job's state and
    /// the scheduler's log if it does not within `timeout`.
    pub async fn wait_job(
        &self,
        name: &str,
        timeout: Duration,
        what: &str,
        f: impl Fn(&JobDetail) -> bool,
    ) -> Result<JobDetail> {
        let deadline = Instant::now() + timeout;
        let mut last = None;
        while Instant::now() < deadline {
            if let Ok(d) = self.job(name).await {
                if f(&d) {
                    return Ok(d);
                }
                last = Some(d);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let s = last
            .as_ref()
            .and_then(|d| d.summary.clone())
            .unwrap_or_default();
        bail!(
            "job {name}: {what} not reached in {timeout:?}; state {} rows in {} out {} dead {} lag {} error {:?}\nscheduler log:\n{}",
            s.state,
            s.rows_in,
            s.rows_out,
            s.rows_dead,
            s.total_lag,
            s.error,
            self.scheduler.log_tail()
        )
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for e in &mut self.executors {
            e.kill();
        }
        self.scheduler.kill();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.home);
        } else {
            eprintln!("cluster state and logs kept in {}", self.home.display());
        }
    }
}

/// The reference spec, pointed at a test's own topic, keyspace and job name.
pub fn reference_spec(
    name: &str,
    topic: &str,
    keyspace: &str,
    extra_source: &str,
    trigger: &str,
) -> String {
    let text = std::fs::read_to_string(repo_root().join("jobs/users_created.toml"))
        .expect("jobs/users_created.toml");
    text.replace("name = \"users_created\"", &format!("name = \"{name}\""))
        .replace(
            "subscribe = \"users_created\"",
            &format!("subscribe = \"{topic}\"{extra_source}"),
        )
        .replace("127.0.0.1:9092", &kafka())
        .replace("127.0.0.1:9042", &cql())
        .replace("spark_streams", keyspace)
        .replace("[trigger]", &format!("[trigger]\n{trigger}"))
}

/// `spec` (from [`reference_spec`]) with maxOffsetsPerTrigger = `n` instead
/// of the reference's 100,000.
pub fn with_max_offsets(spec: &str, n: u64) -> Result<String> {
    const REFERENCE: &str = "maxOffsetsPerTrigger = 100000 ";
    if !spec.contains(REFERENCE) {
        bail!("the spec does not set `{}`", REFERENCE.trim_end());
    }
    Ok(spec.replace(REFERENCE, &format!("maxOffsetsPerTrigger = {n} ")))
}

/// The engine transform, shared by the rate tests and the engine benchmark
/// (bench/spark/spark_bench.py runs the same SQL in PySpark): it builds a JSON
/// user from the rate source's `value` and parses it back with from_json.
pub const ENGINE_SQL: &str = r#"SELECT j.id AS id, "timestamp" AS ts, j.name AS name, j.age AS age
FROM (SELECT "timestamp", from_json(concat('{"id":', CAST(value AS STRING), ',"name":"user-', CAST(value AS STRING), '","age":', CAST(value % 100 AS STRING), '}'), 'id BIGINT, name STRING, age INT') AS j FROM source) t"#;

/// A spec with [`ENGINE_SQL`] over a rate source (`source`: the [source]
/// table's lines, e.g. `format = "rate"` and `rowsPerSecond = 1000`): into the
/// CQL table `<keyspace>.rate_users` (sink "cassandra") or dropped ("noop").
pub fn engine_spec(name: &str, keyspace: &str, source: &str, sink: &str, trigger: &str) -> String {
    let sink = match sink {
        "noop" => "format = \"noop\"".to_string(),
        _ => format!(
            "format = \"cassandra\"\ncontact_points = [\"{}\"]\nkeyspace = \"{keyspace}\"\ntable = \"rate_users\"\nddl = \"CREATE TABLE IF NOT EXISTS {keyspace}.rate_users (id bigint PRIMARY KEY, ts timestamp, name text, age int)\"",
            cql()
        ),
    };
    format!(
        "name = \"{name}\"\n[source]\n{source}\n[trigger]\n{trigger}\n[transform]\nsql = '''\n{ENGINE_SQL}\n'''\n[sink]\n{sink}\n"
    )
}

/// The next user of ember-ingest's seeded generator, as it produces them.
pub fn user(generator: &mut ember_ingest::generator::Generator) -> Value {
    serde_json::to_value(generator.next_user()).expect("a user serialises")
}

pub fn producer() -> Result<FutureProducer> {
    producer_for(&kafka())
}

pub fn producer_for(brokers: &str) -> Result<FutureProducer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .set("compression.type", "lz4")
        .set("message.timeout.ms", "60000")
        .create()?)
}

/// Produces raw (key, value) messages and waits for every delivery.
pub async fn produce_raw(topic: &str, msgs: Vec<(Option<Vec<u8>>, Vec<u8>)>) -> Result<()> {
    produce_raw_to(&kafka(), topic, msgs).await
}

pub async fn produce_raw_to(
    brokers: &str,
    topic: &str,
    msgs: Vec<(Option<Vec<u8>>, Vec<u8>)>,
) -> Result<()> {
    let p = Arc::new(producer_for(brokers)?);
    let mut futs = futures::stream::FuturesUnordered::new();
    for (k, v) in msgs {
        let p = p.clone();
        let topic = topic.to_string();
        futs.push(async move {
            let mut rec = FutureRecord::<Vec<u8>, Vec<u8>>::to(&topic).payload(&v);
            if let Some(k) = &k {
                rec = rec.key(k);
            }
            p.send(rec, Duration::from_secs(60))
                .await
                .map(|_| ())
                .map_err(|(e, _)| anyhow!("delivery failed: {e}"))
        });
        if futs.len() >= 2000 {
            use futures::StreamExt;
            if let Some(r) = futs.next().await {
                r?;
            }
        }
    }
    use futures::StreamExt;
    while let Some(r) = futs.next().await {
        r?;
    }
    Ok(())
}

/// Produces `n` users (keyed by id), returning them by id.
pub async fn produce_users(topic: &str, n: u64, seed: u64) -> Result<HashMap<String, Value>> {
    produce_users_to(&kafka(), topic, n, seed).await
}

pub async fn produce_users_to(
    brokers: &str,
    topic: &str,
    n: u64,
    seed: u64,
) -> Result<HashMap<String, Value>> {
    let mut generator = ember_ingest::generator::Generator::new(seed);
    let users: Vec<Value> = (0..n).map(|_| user(&mut generator)).collect();
    let msgs = users
        .iter()
        .map(|u| {
            (
                Some(u["id"].as_str().unwrap_or_default().as_bytes().to_vec()),
                u.to_string().into_bytes(),
            )
        })
        .collect();
    produce_raw_to(brokers, topic, msgs).await?;
    Ok(users
        .into_iter()
        .map(|u| (u["id"].as_str().unwrap_or_default().to_string(), u))
        .collect())
}

pub async fn cql_session() -> Result<Session> {
    cql_session_at(&cql()).await
}

pub async fn cql_session_at(addr: &str) -> Result<Session> {
    Ok(SessionBuilder::new().known_node(addr).build().await?)
}

pub async fn count(s: &Session, table: &str) -> Result<i64> {
    let r = s
        .query_unpaged(format!("SELECT COUNT(*) FROM {table}"), ())
        .await?
        .into_rows_result()?;
    Ok(r.first_row::<(i64,)>()?.0)
}

/// Every row of the users table, by id, as JSON strings (`None` = null).
pub async fn read_users(
    s: &Session,
    table: &str,
) -> Result<HashMap<String, HashMap<String, Option<String>>>> {
    use futures::TryStreamExt;
    // Every field of the record but its key, in the record's order.
    let cols = &ember_ingest::record::USER_FIELDS[1..];
    let q = format!("SELECT id, {} FROM {table}", cols.join(", "));
    let mut stmt = scylla::statement::Statement::new(q);
    stmt.set_page_size(1000);
    let mut rows = s.query_iter(stmt, ()).await?.rows_stream::<(
        uuid::Uuid,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    )>()?;
    let mut out = HashMap::new();
    while let Some(r) = rows.try_next().await? {
        let vals = [r.1, r.2, r.3, r.4, r.5, r.6, r.7, r.8, r.9, r.10, r.11];
        out.insert(
            r.0.to_string(),
            cols.iter().map(|c| c.to_string()).zip(vals).collect(),
        );
    }
    Ok(out)
}

/// The text a produced user's field should have in the table (Spark's
/// from_json: numbers become their text).
pub fn expected_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Reads the committed batches of a job from its checkpoint, oldest first.
pub fn commits(cluster: &Cluster, job: &str) -> Result<Vec<ember_api::BatchInfo>> {
    let dir = cluster
        .home
        .join("scheduler/jobs")
        .join(job)
        .join("commits");
    let mut ids: Vec<u64> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    ids.sort_unstable();
    ids.iter()
        .map(|id| {
            Ok(serde_json::from_slice(&std::fs::read(
                dir.join(id.to_string()),
            )?)?)
        })
        .collect()
}

/// How many offsets/ and commits/ entries a job's checkpoint has.
pub fn checkpoint_counts(cluster: &Cluster, job: &str) -> (usize, usize) {
    let n = |sub: &str| {
        std::fs::read_dir(cluster.home.join("scheduler/jobs").join(job).join(sub))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter(|e| !e.file_name().to_string_lossy().ends_with(".tmp"))
                    .count()
            })
            .unwrap_or(0)
    };
    (n("offsets"), n("commits"))
}

/// Asserts that a job's committed ranges cover each partition contiguously
/// from `start` with no overlap, and returns the end offset per partition.
pub fn assert_contiguous(batches: &[ember_api::BatchInfo]) -> HashMap<(String, i32), i64> {
    let mut end: HashMap<(String, i32), i64> = HashMap::new();
    for b in batches {
        for r in &b.ranges {
            let e = end
                .entry((r.topic.clone(), r.partition))
                .or_insert(r.from_offset);
            assert_eq!(
                *e, r.from_offset,
                "batch {}: {}/{} starts at {} but the last range ended at {e}",
                b.batch_id, r.topic, r.partition, r.from_offset
            );
            assert!(r.until_offset > r.from_offset);
            *e = r.until_offset;
        }
    }
    end
}

/// A private tansu broker and ember-cql store on free ports, for tests that
/// stop them (so other tests' servers are untouched).
pub struct PrivateServers {
    pub kafka_port: u16,
    pub cql_port: u16,
    pub dir: PathBuf,
    pub tansu: Option<Proc>,
    pub cql: Option<Proc>,
    /// Extra ember-cql flags, e.g. `--commitlog-sync periodic`.
    pub cql_args: Vec<String>,
}

impl PrivateServers {
    pub async fn start() -> Result<Self> {
        Self::start_with(Vec::new()).await
    }
    /// With extra ember-cql flags.
    pub async fn start_with(cql_args: Vec<String>) -> Result<Self> {
        let dir = std::env::temp_dir().join(unique("ember-private"));
        std::fs::create_dir_all(dir.join("tansu"))?;
        let mut s = PrivateServers {
            kafka_port: free_port(),
            cql_port: free_port(),
            dir,
            tansu: None,
            cql: None,
            cql_args,
        };
        s.start_tansu().await?;
        s.start_cql().await?;
        Ok(s)
    }
    pub fn kafka(&self) -> String {
        format!("127.0.0.1:{}", self.kafka_port)
    }
    pub fn cql(&self) -> String {
        format!("127.0.0.1:{}", self.cql_port)
    }
    pub async fn start_tansu(&mut self) -> Result<()> {
        let tansu = env(
            "EMBER_TANSU",
            &format!("{}/.cache/ember/tools/bin/tansu", env("HOME", "/root")),
        );
        let url = format!("tcp://127.0.0.1:{}", self.kafka_port);
        let log = self.dir.join("tansu.log");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)?;
        let child = Command::new(tansu)
            .current_dir(self.dir.join("tansu"))
            .args([
                "broker",
                "--storage-engine",
                "sqlite://tansu.db",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .stdout(Stdio::from(f.try_clone()?))
            .stderr(Stdio::from(f))
            .spawn()?;
        self.tansu = Some(Proc {
            name: "tansu".into(),
            child: Some(child),
            log,
        });
        wait_port(self.kafka_port).await
    }
    pub async fn start_cql(&mut self) -> Result<()> {
        let log = self.dir.join("cql.log");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)?;
        let child = Command::new(bin_dir().join("ember-cql"))
            .args([
                "--listen",
                &self.cql(),
                "--data-dir",
                &self.dir.join("cql").display().to_string(),
            ])
            .args(&self.cql_args)
            .stdout(Stdio::from(f.try_clone()?))
            .stderr(Stdio::from(f))
            .spawn()?;
        self.cql = Some(Proc {
            name: "cql".into(),
            child: Some(child),
            log,
        });
        wait_port(self.cql_port).await
    }
    pub fn create_topic(&self, name: &str, partitions: u32) -> Result<()> {
        create_topic_at(&self.kafka(), name, partitions)
    }
}

impl Drop for PrivateServers {
    fn drop(&mut self) {
        self.tansu.take();
        self.cql.take();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

async fn wait_port(port: u16) -> Result<()> {
    for _ in 0..300 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("nothing listens on 127.0.0.1:{port}")
}
