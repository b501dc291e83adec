//! Job specs: a TOML file with Spark's option names where Spark has one.
//! Parsing here checks everything that needs no server (keys, types, trigger,
//! offsets, schema); the scheduler then checks the SQL and the sink table.

use std::collections::BTreeMap;
use std::time::Duration;

use arrow::datatypes::Fields;
use serde::Deserialize;

use crate::schema::parse_ddl_schema;

/// A spec error, with the line it is on where one can be found.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SpecError {
    pub message: String,
}

impl SpecError {
    fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

type Result<T> = std::result::Result<T, SpecError>;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    name: String,
    source: toml::Table,
    #[serde(default)]
    trigger: RawTrigger,
    transform: RawTransform,
    sink: RawSink,
    #[serde(default)]
    dead_letters: RawDeadLetters,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrigger {
    #[serde(rename = "processingTime")]
    processing_time: Option<String>,
    #[serde(rename = "availableNow", default)]
    available_now: bool,
    #[serde(default)]
    once: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTransform {
    sql: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSink {
    #[serde(default = "default_sink_format")]
    format: String,
    #[serde(default = "default_contact_points")]
    contact_points: Vec<String>,
    #[serde(default)]
    keyspace: String,
    #[serde(default)]
    table: String,
    #[serde(default = "default_rf")]
    replication_factor: u32,
    #[serde(default)]
    ddl: Option<String>,
    #[serde(default = "default_concurrency")]
    concurrency: u32,
    #[serde(default = "default_retries")]
    max_retries: u32,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeadLetters {
    #[serde(default = "default_dead_letter_table")]
    table: String,
}

impl Default for RawDeadLetters {
    fn default() -> Self {
        Self {
            table: default_dead_letter_table(),
        }
    }
}

fn default_sink_format() -> String {
    "cassandra".into()
}
fn default_contact_points() -> Vec<String> {
    vec!["127.0.0.1:9042".into()]
}
fn default_rf() -> u32 {
    1
}
fn default_concurrency() -> u32 {
    256
}
/// Per-write retries cover blips only; an outage fails the batch, which the
/// job then retries with the same ranges (visible as `retrying`).
fn default_retries() -> u32 {
    3
}
fn default_dead_letter_table() -> String {
    "dead_letters".into()
}

/// Where a job starts when it has no checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartingOffsets {
    Earliest,
    Latest,
    /// topic → partition → offset (-2 earliest, -1 latest), as Spark's JSON.
    Specific(BTreeMap<String, BTreeMap<i32, i64>>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    /// Next batch as soon as the last ended (`None`) or on a fixed interval.
    ProcessingTime(Option<Duration>),
    /// Everything available at start, in `maxOffsetsPerTrigger` batches, then finish.
    AvailableNow,
    /// Everything available at start in one batch, then finish.
    Once,
}

impl Trigger {
    pub fn describe(&self) -> String {
        match self {
            Trigger::ProcessingTime(None) => "continuous micro-batches".into(),
            Trigger::ProcessingTime(Some(d)) => format!("processingTime {} ms", d.as_millis()),
            Trigger::AvailableNow => "availableNow".into(),
            Trigger::Once => "once".into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SourceSpec {
    pub bootstrap_servers: String,
    pub topics: Vec<String>,
    pub starting_offsets: StartingOffsets,
    pub max_offsets_per_trigger: Option<u64>,
    pub fail_on_data_loss: bool,
    /// Other `kafka.*` options, passed to librdkafka without the prefix.
    pub kafka_options: BTreeMap<String, String>,
    /// The declared JSON value schema (Spark DDL), if any.
    pub value_schema: Option<Fields>,
    pub value_schema_ddl: Option<String>,
    /// The value field that is the sink's primary key.
    pub key_field: Option<String>,
    /// `kafkaConsumer.pollTimeoutMs`: a task that gets no record for this
    /// long fails (and its batch is retried). Spark's default, 120 s.
    pub poll_timeout: Duration,
    /// `format = "rate"`: Spark's rate source instead of Kafka. Its
    /// partitions appear as topic `rate`; the Kafka fields are unused.
    pub rate: Option<RateOptions>,
}

/// Spark's `rate` and `rate-micro-batch` source options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RateOptions {
    /// `rate`: rows per second of wall clock since the job started.
    pub rows_per_second: u64,
    pub num_partitions: u32,
    /// `rate-micro-batch`: exactly this many rows per batch, whatever the
    /// clock (0 for `rate`); row timestamps advance by
    /// `advance_millis_per_batch` per batch from `start_timestamp_ms`.
    pub rows_per_batch: u64,
    pub start_timestamp_ms: i64,
    pub advance_millis_per_batch: u64,
}

/// Where a job's rows go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkFormat {
    /// A Cassandra table through the CQL protocol.
    Cassandra,
    /// Spark's `noop`: the transform runs in full and the rows are dropped
    /// (dead letters are counted, not written). For benchmarks.
    Noop,
}

#[derive(Debug, Clone)]
pub struct SinkSpec {
    pub format: SinkFormat,
    pub contact_points: Vec<String>,
    pub keyspace: String,
    pub table: String,
    pub replication_factor: u32,
    pub ddl: Option<String>,
    pub concurrency: u32,
    pub max_retries: u32,
    pub username: Option<String>,
    pub password: Option<String>,
    pub dead_letter_table: String,
}

#[derive(Debug, Clone)]
pub struct JobSpec {
    pub name: String,
    pub source: SourceSpec,
    pub trigger: Trigger,
    pub sql: String,
    pub sink: SinkSpec,
    /// The TOML it was parsed from, kept with the job's checkpoint.
    pub text: String,
}

const SOURCE_KEYS: &[&str] = &[
    "format",
    "kafka.bootstrap.servers",
    "subscribe",
    "startingOffsets",
    "maxOffsetsPerTrigger",
    "failOnDataLoss",
    "kafkaConsumer.pollTimeoutMs",
    "value",
];
const VALUE_KEYS: &[&str] = &["format", "schema", "key"];
const UNSUPPORTED_SOURCE_KEYS: &[&str] = &[
    "subscribePattern",
    "assign",
    "minOffsetsPerTrigger",
    "maxTriggerDelay",
    "minPartitions",
    "includeHeaders",
    "endingOffsets",
];

impl JobSpec {
    /// Parses and checks a spec. Errors name the key (and line) at fault.
    pub fn parse(text: &str) -> Result<Self> {
        let raw: RawSpec =
            toml::from_str(text).map_err(|e| SpecError::new(format!("invalid job spec: {e}")))?;
        let name = raw.name.trim().to_string();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(SpecError::new(format!(
                "invalid job spec: `name` must be letters, digits, `_` or `-` (got {:?}){}",
                raw.name,
                line_of(text, "name")
            )));
        }
        let source = parse_source(text, &raw.source)?;
        let trigger = parse_trigger(text, &raw.trigger)?;
        if raw.transform.sql.trim().is_empty() {
            return Err(SpecError::new(format!(
                "invalid job spec: `transform.sql` is empty{}",
                line_of(text, "sql")
            )));
        }
        let sink_format = match raw.sink.format.as_str() {
            "cassandra" => SinkFormat::Cassandra,
            "noop" => SinkFormat::Noop,
            other => {
                return Err(SpecError::new(format!(
                    "invalid job spec: `sink.format` {other:?} is not supported (\"cassandra\" or \"noop\"){}",
                    line_of(text, "format")
                )));
            }
        };
        if raw.sink.contact_points.is_empty() {
            return Err(SpecError::new(
                "invalid job spec: `sink.contact_points` is empty",
            ));
        }
        for (key, v) in [
            ("sink.keyspace", &raw.sink.keyspace),
            ("sink.table", &raw.sink.table),
            ("dead_letters.table", &raw.dead_letters.table),
        ] {
            if v.is_empty() {
                if sink_format == SinkFormat::Noop {
                    continue; // nothing is written
                }
                return Err(SpecError::new(format!(
                    "invalid job spec: `{key}` is required"
                )));
            }
            if !is_cql_identifier(v) {
                return Err(SpecError::new(format!(
                    "invalid job spec: `{key}` {v:?} is not a CQL identifier (letters, digits, _){}",
                    line_of(text, key.rsplit('.').next().unwrap_or(key))
                )));
            }
        }
        if raw.sink.concurrency == 0 {
            return Err(SpecError::new(
                "invalid job spec: `sink.concurrency` must be at least 1",
            ));
        }
        Ok(JobSpec {
            name,
            source,
            trigger,
            sql: raw.transform.sql,
            sink: SinkSpec {
                format: sink_format,
                contact_points: raw.sink.contact_points,
                keyspace: raw.sink.keyspace,
                table: raw.sink.table,
                replication_factor: raw.sink.replication_factor.max(1),
                ddl: raw.sink.ddl,
                concurrency: raw.sink.concurrency,
                max_retries: raw.sink.max_retries,
                username: raw.sink.username,
                password: raw.sink.password,
                dead_letter_table: raw.dead_letters.table,
            },
            text: text.to_string(),
        })
    }
}

fn is_cql_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

/// ` (line N)` for the first line that sets `key`, or nothing.
fn line_of(text: &str, key: &str) -> String {
    let quoted = format!("\"{key}\"");
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        let rest = t.strip_prefix(&quoted).or_else(|| t.strip_prefix(key));
        if let Some(rest) = rest
            && rest.trim_start().starts_with('=')
        {
            return format!(" (line {})", i + 1);
        }
    }
    String::new()
}

fn str_opt<'a>(
    text: &str,
    table: &'a toml::Table,
    key: &str,
    path: &str,
) -> Result<Option<&'a str>> {
    match table.get(key) {
        None => Ok(None),
        Some(toml::Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(SpecError::new(format!(
            "invalid job spec: `{path}` must be a string, found {}{}",
            other.type_str(),
            line_of(text, key)
        ))),
    }
}

/// Spark's `kafkaConsumer.pollTimeoutMs` default (`spark.network.timeout`).
/// A slow broker (tansu's first fetch on a large partition takes seconds)
/// must not fail batches.
const DEFAULT_POLL_TIMEOUT: Duration = Duration::from_secs(120);

const RATE_KEYS: &[&str] = &["format", "rowsPerSecond", "numPartitions", "rampUpTime"];
const RATE_MICRO_BATCH_KEYS: &[&str] = &[
    "format",
    "rowsPerBatch",
    "numPartitions",
    "startTimestamp",
    "advanceMillisPerBatch",
];

/// Spark's `rate` source: `rowsPerSecond` (default 1), `numPartitions`
/// (default 1); `rampUpTime` only as 0. And `rate-micro-batch`:
/// `rowsPerBatch` (required), `numPartitions`, `startTimestamp` (ms, default
/// 0), `advanceMillisPerBatch` (default 1000).
fn parse_rate_source(text: &str, t: &toml::Table, micro_batch: bool) -> Result<SourceSpec> {
    let (known, format) = if micro_batch {
        (RATE_MICRO_BATCH_KEYS, "rate-micro-batch")
    } else {
        (RATE_KEYS, "rate")
    };
    for key in t.keys() {
        if !known.contains(&key.as_str()) {
            return Err(SpecError::new(format!(
                "invalid job spec: unknown key `source.{key}` for the {format} source{} (known: {})",
                line_of(text, key),
                known.join(", ")
            )));
        }
    }
    let positive = |key: &str, default: i64, max: i64| -> Result<i64> {
        match t.get(key) {
            None => Ok(default),
            Some(toml::Value::Integer(n)) if (1..=max).contains(n) => Ok(*n),
            Some(_) => Err(SpecError::new(format!(
                "invalid job spec: `source.{key}` must be an integer from 1 to {max}{}",
                line_of(text, key)
            ))),
        }
    };
    let num_partitions = positive("numPartitions", 1, 1024)? as u32;
    let rate = if micro_batch {
        if !t.contains_key("rowsPerBatch") {
            return Err(SpecError::new(
                "invalid job spec: `source.rowsPerBatch` is required for the rate-micro-batch source",
            ));
        }
        let start_timestamp_ms = match t.get("startTimestamp") {
            None => 0,
            Some(toml::Value::Integer(n)) if *n >= 0 => *n,
            Some(_) => {
                return Err(SpecError::new(format!(
                    "invalid job spec: `source.startTimestamp` must be milliseconds since the epoch{}",
                    line_of(text, "startTimestamp")
                )));
            }
        };
        RateOptions {
            rows_per_second: 0,
            num_partitions,
            rows_per_batch: positive("rowsPerBatch", 1, 1_000_000_000)? as u64,
            start_timestamp_ms,
            advance_millis_per_batch: positive("advanceMillisPerBatch", 1000, i64::from(u32::MAX))?
                as u64,
        }
    } else {
        RateOptions {
            rows_per_second: positive("rowsPerSecond", 1, 100_000_000)? as u64,
            num_partitions,
            ..Default::default()
        }
    };
    if let Some(v) = t.get("rampUpTime") {
        let zero = match v {
            toml::Value::Integer(0) => true,
            toml::Value::String(s) => parse_duration(s).is_ok_and(|d| d.is_zero()),
            _ => false,
        };
        if !zero {
            return Err(SpecError::new(format!(
                "invalid job spec: `source.rampUpTime` other than 0 is a Spark option Ember does not support yet{}",
                line_of(text, "rampUpTime")
            )));
        }
    }
    Ok(SourceSpec {
        bootstrap_servers: String::new(),
        topics: vec![crate::rate::RATE_TOPIC.to_string()],
        starting_offsets: StartingOffsets::Earliest,
        max_offsets_per_trigger: None,
        fail_on_data_loss: true,
        kafka_options: BTreeMap::new(),
        value_schema: None,
        value_schema_ddl: None,
        key_field: None,
        poll_timeout: DEFAULT_POLL_TIMEOUT,
        rate: Some(rate),
    })
}

fn parse_source(text: &str, t: &toml::Table) -> Result<SourceSpec> {
    match str_opt(text, t, "format", "source.format")? {
        Some("rate") => return parse_rate_source(text, t, false),
        Some("rate-micro-batch") => return parse_rate_source(text, t, true),
        _ => {}
    }
    for key in t.keys() {
        if UNSUPPORTED_SOURCE_KEYS.contains(&key.as_str()) {
            return Err(SpecError::new(format!(
                "invalid job spec: `source.{key}` is a Spark option Ember does not support yet{}",
                line_of(text, key)
            )));
        }
        if !SOURCE_KEYS.contains(&key.as_str()) && !key.starts_with("kafka.") {
            return Err(SpecError::new(format!(
                "invalid job spec: unknown key `source.{key}`{} (known: {}, and kafka.* consumer options)",
                line_of(text, key),
                SOURCE_KEYS.join(", ")
            )));
        }
    }
    if let Some(f) = str_opt(text, t, "format", "source.format")?
        && f != "kafka"
    {
        return Err(SpecError::new(format!(
            "invalid job spec: `source.format` {f:?} is not supported (\"kafka\", \"rate\" or \"rate-micro-batch\"){}",
            line_of(text, "format")
        )));
    }
    let bootstrap_servers = str_opt(
        text,
        t,
        "kafka.bootstrap.servers",
        "source.\"kafka.bootstrap.servers\"",
    )?
    .ok_or_else(|| {
        SpecError::new("invalid job spec: `source.\"kafka.bootstrap.servers\"` is required")
    })?
    .to_string();
    let topics: Vec<String> = str_opt(text, t, "subscribe", "source.subscribe")?
        .ok_or_else(|| {
            SpecError::new(
                "invalid job spec: `source.subscribe` is required (comma-separated topics)",
            )
        })?
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if topics.is_empty() {
        return Err(SpecError::new(format!(
            "invalid job spec: `source.subscribe` names no topic{}",
            line_of(text, "subscribe")
        )));
    }
    let starting_offsets = match str_opt(text, t, "startingOffsets", "source.startingOffsets")? {
        None | Some("latest") => StartingOffsets::Latest,
        Some("earliest") => StartingOffsets::Earliest,
        Some(json) => StartingOffsets::Specific(serde_json::from_str(json).map_err(|e| {
            SpecError::new(format!(
                "invalid job spec: `source.startingOffsets` must be \"earliest\", \"latest\" or JSON like {{\"topic\":{{\"0\":23,\"1\":-2}}}}: {e}{}",
                line_of(text, "startingOffsets")
            ))
        })?),
    };
    if let StartingOffsets::Specific(m) = &starting_offsets {
        for topic in m.keys() {
            if !topics.contains(topic) {
                return Err(SpecError::new(format!(
                    "invalid job spec: `source.startingOffsets` names topic {topic:?}, which `subscribe` does not"
                )));
            }
        }
    }
    let max_offsets_per_trigger = match t.get("maxOffsetsPerTrigger") {
        None => None,
        Some(toml::Value::Integer(n)) if *n > 0 => Some(*n as u64),
        Some(_) => {
            return Err(SpecError::new(format!(
                "invalid job spec: `source.maxOffsetsPerTrigger` must be a positive integer{}",
                line_of(text, "maxOffsetsPerTrigger")
            )));
        }
    };
    let fail_on_data_loss = match t.get("failOnDataLoss") {
        None => true,
        Some(toml::Value::Boolean(b)) => *b,
        Some(toml::Value::String(s)) if s == "true" || s == "false" => s == "true",
        Some(_) => {
            return Err(SpecError::new(format!(
                "invalid job spec: `source.failOnDataLoss` must be true or false{}",
                line_of(text, "failOnDataLoss")
            )));
        }
    };
    let poll_timeout = match t.get("kafkaConsumer.pollTimeoutMs") {
        None => DEFAULT_POLL_TIMEOUT,
        Some(toml::Value::Integer(n)) if *n > 0 => Duration::from_millis(*n as u64),
        Some(_) => {
            return Err(SpecError::new(format!(
                "invalid job spec: `source.\"kafkaConsumer.pollTimeoutMs\"` must be a positive number of milliseconds{}",
                line_of(text, "kafkaConsumer.pollTimeoutMs")
            )));
        }
    };
    let mut kafka_options = BTreeMap::new();
    for (k, v) in t {
        if let Some(opt) = k.strip_prefix("kafka.")
            && opt != "bootstrap.servers"
        {
            let v = match v {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                other => {
                    return Err(SpecError::new(format!(
                        "invalid job spec: `source.\"{k}\"` must be a string, number or boolean, found {}",
                        other.type_str()
                    )));
                }
            };
            if matches!(opt, "group.id" | "enable.auto.commit" | "auto.offset.reset") {
                return Err(SpecError::new(format!(
                    "invalid job spec: `source.\"{k}\"` is managed by Ember (offsets live in the checkpoint, as in Spark)"
                )));
            }
            kafka_options.insert(opt.to_string(), v);
        }
    }
    let (value_schema, value_schema_ddl, key_field) = match t.get("value") {
        None => (None, None, None),
        Some(toml::Value::Table(v)) => {
            for key in v.keys() {
                if !VALUE_KEYS.contains(&key.as_str()) {
                    return Err(SpecError::new(format!(
                        "invalid job spec: unknown key `source.value.{key}`{} (known: {})",
                        line_of(text, key),
                        VALUE_KEYS.join(", ")
                    )));
                }
            }
            if let Some(f) = str_opt(text, v, "format", "source.value.format")?
                && f != "json"
            {
                return Err(SpecError::new(format!(
                    "invalid job spec: `source.value.format` {f:?} is not supported (only \"json\")"
                )));
            }
            let ddl = str_opt(text, v, "schema", "source.value.schema")?.ok_or_else(|| {
                SpecError::new("invalid job spec: `source.value.schema` is required")
            })?;
            let fields = parse_ddl_schema(ddl).map_err(|e| {
                SpecError::new(format!(
                    "invalid job spec: `source.value.{e}`{}",
                    line_of(text, "schema")
                ))
            })?;
            let key = str_opt(text, v, "key", "source.value.key")?.map(str::to_string);
            if let Some(k) = &key
                && !fields.iter().any(|f| f.name() == k)
            {
                return Err(SpecError::new(format!(
                    "invalid job spec: `source.value.key` {k:?} is not a field of `source.value.schema`{}",
                    line_of(text, "key")
                )));
            }
            (Some(fields), Some(ddl.to_string()), key)
        }
        Some(other) => {
            return Err(SpecError::new(format!(
                "invalid job spec: `source.value` must be a table, found {}",
                other.type_str()
            )));
        }
    };
    Ok(SourceSpec {
        bootstrap_servers,
        topics,
        starting_offsets,
        max_offsets_per_trigger,
        fail_on_data_loss,
        kafka_options,
        value_schema,
        value_schema_ddl,
        key_field,
        poll_timeout,
        rate: None,
    })
}

fn parse_trigger(text: &str, t: &RawTrigger) -> Result<Trigger> {
    let set = [t.processing_time.is_some(), t.available_now, t.once]
        .iter()
        .filter(|b| **b)
        .count();
    if set > 1 {
        return Err(SpecError::new(
            "invalid job spec: `trigger` sets more than one of processingTime, availableNow, once",
        ));
    }
    Ok(if t.available_now {
        Trigger::AvailableNow
    } else if t.once {
        Trigger::Once
    } else if let Some(p) = &t.processing_time {
        let d = parse_duration(p).map_err(|e| {
            SpecError::new(format!(
                "invalid job spec: `trigger.processingTime`: {e}{}",
                line_of(text, "processingTime")
            ))
        })?;
        Trigger::ProcessingTime((!d.is_zero()).then_some(d))
    } else {
        Trigger::ProcessingTime(None)
    })
}

/// Spark-style intervals: "10 seconds", "100 milliseconds", "100ms", "1 minute", "0".
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like \"10 seconds\" or \"100 ms\""))?;
    let ms = match unit.trim().to_ascii_lowercase().as_str() {
        "" if n == 0.0 => 0.0,
        "ms" | "millisecond" | "milliseconds" => n,
        "s" | "sec" | "second" | "seconds" => n * 1000.0,
        "m" | "min" | "minute" | "minutes" => n * 60_000.0,
        "h" | "hour" | "hours" => n * 3_600_000.0,
        u => {
            return Err(format!(
                "unknown unit {u:?} in {s:?} (ms, seconds, minutes, hours)"
            ));
        }
    };
    Ok(Duration::from_micros((ms * 1000.0) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = include_str!("../users_created.toml");

    #[test]
    fn reference_spec_parses() {
        let s = JobSpec::parse(GOOD).unwrap();
        assert_eq!(s.name, "users_created");
        assert_eq!(s.source.topics, vec!["users_created"]);
        assert_eq!(s.source.starting_offsets, StartingOffsets::Earliest);
        assert_eq!(s.source.key_field.as_deref(), Some("id"));
        assert_eq!(s.source.value_schema.as_ref().unwrap().len(), 12);
        assert_eq!(s.sink.keyspace, "spark_streams");
        assert_eq!(s.sink.table, "created_users");
    }

    #[test]
    fn compose_spec_parses_and_points_at_compose_services() {
        let s = JobSpec::parse(include_str!("../users_created.compose.toml")).unwrap();
        assert_eq!(s.source.bootstrap_servers, "kafka:9092");
        assert_eq!(s.sink.contact_points, vec!["cassandra:9042"]);
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let bad = GOOD.replace("maxOffsetsPerTrigger", "maxOffsetsPerTriger");
        let e = JobSpec::parse(&bad).unwrap_err().to_string();
        assert!(
            e.contains("maxOffsetsPerTriger") && e.contains("line"),
            "{e}"
        );
        let bad = GOOD.replace("[transform]", "[transform]\nsqll = 1");
        let e = JobSpec::parse(&bad).unwrap_err().to_string();
        assert!(e.contains("sqll") && e.contains("line"), "{e}");
    }

    #[test]
    fn bad_values_are_named() {
        let e = JobSpec::parse(&GOOD.replace("\"earliest\"", "\"yesterday\""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("startingOffsets"), "{e}");
        let e = JobSpec::parse(&GOOD.replace("key = \"id\"", "key = \"uid\""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("uid"), "{e}");
        let e = JobSpec::parse(&GOOD.replace("id STRING", "id UUIDISH"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("UUIDISH"), "{e}");
    }

    #[test]
    fn rate_source_and_noop_sink() {
        let spec = r#"
name = "engine"
[source]
format = "rate"
rowsPerSecond = 50000
numPartitions = 2
[transform]
sql = "SELECT value AS id FROM source"
[sink]
format = "noop"
"#;
        let s = JobSpec::parse(spec).unwrap();
        assert_eq!(
            s.source.rate,
            Some(RateOptions {
                rows_per_second: 50_000,
                num_partitions: 2,
                ..Default::default()
            })
        );
        let mb = spec
            .replace("\"rate\"", "\"rate-micro-batch\"")
            .replace("rowsPerSecond", "rowsPerBatch");
        let r = JobSpec::parse(&mb).unwrap().source.rate.unwrap();
        assert_eq!(
            (
                r.rows_per_batch,
                r.advance_millis_per_batch,
                r.rows_per_second
            ),
            (50_000, 1000, 0)
        );
        let e = JobSpec::parse(&mb.replace("rowsPerBatch = 50000", ""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("rowsPerBatch"), "{e}");
        let e = JobSpec::parse(&spec.replace("rowsPerSecond", "rowsPerBatch"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("rowsPerBatch") && e.contains("rate source"),
            "{e}"
        );
        assert_eq!(s.source.topics, vec!["rate"]);
        assert_eq!(s.sink.format, SinkFormat::Noop);
        let e = JobSpec::parse(&spec.replace("50000", "0"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("rowsPerSecond") && e.contains("line 5"), "{e}");
        let e = JobSpec::parse(&spec.replace("numPartitions = 2", "subscribe = \"t\""))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`source.subscribe`") && e.contains("rate"),
            "{e}"
        );
        let e = JobSpec::parse(&spec.replace("numPartitions = 2", "rampUpTime = \"5s\""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("rampUpTime"), "{e}");
        assert!(JobSpec::parse(&spec.replace("numPartitions = 2", "rampUpTime = \"0s\"")).is_ok());
        let e = JobSpec::parse(&spec.replace("\"noop\"", "\"console\""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("console") && e.contains("noop"), "{e}");
        let e = JobSpec::parse(&spec.replace("\"noop\"", "\"cassandra\""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`sink.keyspace` is required"), "{e}");
    }

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("10 seconds").unwrap(),
            Duration::from_secs(10)
        );
        assert_eq!(parse_duration("100ms").unwrap(), Duration::from_millis(100));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn specific_offsets_json() {
        let s = GOOD.replace("\"earliest\"", r#"'{"users_created":{"0":23,"1":-2}}'"#);
        let spec = JobSpec::parse(&s).unwrap();
        let StartingOffsets::Specific(m) = spec.source.starting_offsets else {
            panic!()
        };
        assert_eq!(m["users_created"][&0], 23);
        assert_eq!(m["users_created"][&1], -2);
    }
}
