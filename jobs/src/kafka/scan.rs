//! `KafkaScanExec`: reads the offset ranges of a micro-batch on the executors.
//!
//! Ballista trims a task's plan to its slice of partitions only for leaf kinds
//! it knows, and would run every partition of an unknown leaf in every task
//! (see shared/design/ballista-notes.md). So the ranges are not fields of this
//! node: they are the rows of its child, a `DataSourceExec` over memory with
//! one partition (one row) per range, which Ballista does trim. A range's
//! identity comes from that row, never from the partition index (which is
//! local to the task's slice).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryBuilder, Int32Builder, Int64Builder, RecordBatch,
    StringBuilder, TimestampMillisecondBuilder,
};
use arrow::datatypes::{DataType, Field, Int32Type, Int64Type, Schema, SchemaRef, TimeUnit};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};
use futures::StreamExt;
use parking_lot::Mutex;
use rdkafka::message::Message;
use tokio::sync::mpsc;

use super::consumer::PartitionConsumer;
use super::ranges::OffsetRange;
use crate::decode::ValueDecoder;

/// Hidden column carried from the scan to the sink: the Cassandra write
/// timestamp (µs) derived from the record, so the latest record of a key wins
/// whatever order the writes land in.
pub const WRITE_TS_COLUMN: &str = "_ember_write_ts";
/// Hidden copy of `offset`, so the sink can name a record it cannot write
/// even when the transform dropped `offset`.
pub const OFFSET_COLUMN: &str = "_ember_offset";
/// The hidden columns, carried through the transform to the sink.
pub const HIDDEN_COLUMNS: [&str; 2] = [WRITE_TS_COLUMN, OFFSET_COLUMN];
/// The struct column holding the decoded value.
pub const DATA_COLUMN: &str = "data";

const CHUNK_ROWS: usize = 1024;

/// The schema of the table `source`: Spark's Kafka columns, then the decoded
/// value (if a schema is declared), then the hidden write timestamp.
pub fn kafka_source_schema(decoder: Option<&ValueDecoder>) -> SchemaRef {
    let mut fields = vec![
        Field::new("key", DataType::Binary, true),
        Field::new("value", DataType::Binary, true),
        Field::new("topic", DataType::Utf8, false),
        Field::new("partition", DataType::Int32, false),
        Field::new("offset", DataType::Int64, false),
        Field::new(
            "timestamp",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            true,
        ),
        Field::new("timestampType", DataType::Int32, false),
    ];
    if let Some(d) = decoder {
        fields.push(Field::new(DATA_COLUMN, d.data_type(), false));
    }
    fields.push(Field::new(WRITE_TS_COLUMN, DataType::Int64, false));
    fields.push(Field::new(OFFSET_COLUMN, DataType::Int64, false));
    Arc::new(Schema::new(fields))
}

/// The schema of the ranges child.
pub fn ranges_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("topic", DataType::Utf8, false),
        Field::new("partition", DataType::Int32, false),
        Field::new("from", DataType::Int64, false),
        Field::new("until", DataType::Int64, false),
    ]))
}

/// The ranges child: one memory partition (one row) per range.
pub fn ranges_exec(ranges: &[OffsetRange]) -> Result<Arc<dyn ExecutionPlan>> {
    let schema = ranges_schema();
    let partitions: Vec<Vec<RecordBatch>> = ranges
        .iter()
        .map(|r| {
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(arrow::array::StringArray::from(vec![r.topic.as_str()])) as ArrayRef,
                    Arc::new(arrow::array::Int32Array::from(vec![r.partition])),
                    Arc::new(arrow::array::Int64Array::from(vec![r.from])),
                    Arc::new(arrow::array::Int64Array::from(vec![r.until])),
                ],
            )
            .map(|b| vec![b])
        })
        .collect::<std::result::Result<_, _>>()?;
    let partitions = if partitions.is_empty() {
        vec![vec![]]
    } else {
        partitions
    };
    Ok(MemorySourceConfig::try_new_exec(&partitions, schema, None)?)
}

/// What the scan needs besides the ranges; carried by the codec.
#[derive(Debug, Clone)]
pub struct KafkaScanConfig {
    pub job: String,
    pub bootstrap_servers: String,
    pub consumer_options: std::collections::BTreeMap<String, String>,
    pub decoder: Option<ValueDecoder>,
    /// No record for this long while a range is unfinished fails the task.
    pub fetch_timeout: Duration,
}

/// A record the decoder refused.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub value: Option<Vec<u8>>,
    pub reason: String,
}

/// What one partition of the scan read: for the sink's per-task report.
#[derive(Debug, Clone, Default)]
pub struct ScanReport {
    pub ranges: Vec<OffsetRange>,
    pub rows_in: u64,
    pub dead: Vec<DeadLetter>,
}

pub struct KafkaScanExec {
    ranges: Arc<dyn ExecutionPlan>,
    config: Arc<KafkaScanConfig>,
    full_schema: SchemaRef,
    projection: Option<Vec<usize>>,
    properties: Arc<PlanProperties>,
    /// Filled by `execute(p)` for the sink of the same plan instance.
    reports: Arc<Mutex<HashMap<usize, ScanReport>>>,
}

impl fmt::Debug for KafkaScanExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaScanExec")
            .field("config", &self.config)
            .field("projection", &self.projection)
            .finish()
    }
}

impl KafkaScanExec {
    pub fn new(
        ranges: Arc<dyn ExecutionPlan>,
        config: Arc<KafkaScanConfig>,
        projection: Option<Vec<usize>>,
    ) -> Result<Self> {
        let full_schema = kafka_source_schema(config.decoder.as_ref());
        let schema = match &projection {
            Some(p) => Arc::new(full_schema.project(p)?),
            None => full_schema.clone(),
        };
        let n = ranges.properties().partitioning.partition_count();
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema),
            Partitioning::UnknownPartitioning(n),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Ok(Self {
            ranges,
            config,
            full_schema,
            projection,
            properties,
            reports: Default::default(),
        })
    }

    pub fn config(&self) -> &Arc<KafkaScanConfig> {
        &self.config
    }
    pub fn projection(&self) -> Option<&Vec<usize>> {
        self.projection.as_ref()
    }
    /// The report of local partition `p`, once its stream has ended.
    pub fn take_report(&self, p: usize) -> Option<ScanReport> {
        self.reports.lock().remove(&p)
    }
}

impl DisplayAs for KafkaScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "KafkaScanExec: job={} brokers={}",
            self.config.job, self.config.bootstrap_servers
        )
    }
}

impl ExecutionPlan for KafkaScanExec {
    fn name(&self) -> &str {
        "KafkaScanExec"
    }
    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }
    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.ranges]
    }
    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }
    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let [child] = <[_; 1]>::try_from(children)
            .map_err(|_| DataFusionError::Internal("KafkaScanExec takes one child".into()))?;
        Ok(Arc::new(KafkaScanExec::new(
            child,
            self.config.clone(),
            self.projection.clone(),
        )?))
    }

    fn execute(
        &self,
        partition: usize,
        ctx: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let ranges_stream = self.ranges.execute(partition, ctx)?;
        let config = self.config.clone();
        let full_schema = self.full_schema.clone();
        let projection = self.projection.clone();
        let reports = self.reports.clone();
        let (tx, rx) = mpsc::channel::<Result<RecordBatch>>(2);
        tokio::spawn(async move {
            let ranges = match collect_ranges(ranges_stream).await {
                Ok(r) => r,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            let mut report = ScanReport {
                ranges: ranges.clone(),
                ..Default::default()
            };
            for range in ranges {
                let (cfg, schema, proj, tx2) = (
                    config.clone(),
                    full_schema.clone(),
                    projection.clone(),
                    tx.clone(),
                );
                let res = tokio::task::spawn_blocking(move || {
                    read_range(&cfg, &range, &schema, proj.as_deref(), &tx2)
                })
                .await
                .map_err(|e| DataFusionError::External(Box::new(e)))
                .and_then(|r| r);
                match res {
                    Ok((n, dead)) => {
                        report.rows_in += n;
                        report.dead.extend(dead);
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                }
            }
            reports.lock().insert(partition, report);
        });
        let schema = self.properties.eq_properties.schema().clone();
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            schema,
            tokio_stream_of(rx),
        )))
    }
}

pub(crate) fn tokio_stream_of(
    mut rx: mpsc::Receiver<Result<RecordBatch>>,
) -> impl futures::Stream<Item = Result<RecordBatch>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// The ranges a task's slice of the ranges child holds.
pub(crate) async fn collect_ranges(
    mut stream: SendableRecordBatchStream,
) -> Result<Vec<OffsetRange>> {
    let mut ranges = Vec::new();
    while let Some(batch) = stream.next().await {
        ranges.extend(ranges_from_batch(&batch?)?);
    }
    Ok(ranges)
}

fn ranges_from_batch(b: &RecordBatch) -> Result<Vec<OffsetRange>> {
    let err =
        || DataFusionError::Internal("KafkaScanExec: ranges child has an unexpected schema".into());
    let topic = b.column(0).as_string_opt::<i32>().ok_or_else(err)?;
    let part = b
        .column(1)
        .as_primitive_opt::<Int32Type>()
        .ok_or_else(err)?;
    let from = b
        .column(2)
        .as_primitive_opt::<Int64Type>()
        .ok_or_else(err)?;
    let until = b
        .column(3)
        .as_primitive_opt::<Int64Type>()
        .ok_or_else(err)?;
    Ok((0..b.num_rows())
        .map(|i| OffsetRange {
            topic: topic.value(i).to_string(),
            partition: part.value(i),
            from: from.value(i),
            until: until.value(i),
        })
        .collect())
}

struct Rec {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    offset: i64,
    ts: Option<i64>,
    ts_type: i32,
}

/// Reads one range, sending batches as they fill. Returns records read and
/// dead letters. Blocking.
fn read_range(
    cfg: &KafkaScanConfig,
    range: &OffsetRange,
    schema: &SchemaRef,
    projection: Option<&[usize]>,
    tx: &mpsc::Sender<Result<RecordBatch>>,
) -> Result<(u64, Vec<DeadLetter>)> {
    if range.is_empty() {
        return Ok((0, Vec::new()));
    }
    let ext = |e: String| DataFusionError::Execution(e);
    let mut pooled = PartitionConsumer::get(
        &cfg.bootstrap_servers,
        &cfg.job,
        &cfg.consumer_options,
        &range.topic,
        range.partition,
        range.from,
    )
    .map_err(|e| {
        ext(format!(
            "cannot read {}/{} from {}: {e}",
            range.topic, range.partition, cfg.bootstrap_servers
        ))
    })?;
    let mut next = range.from;
    let mut rows_in = 0u64;
    let mut dead = Vec::new();
    let mut chunk: Vec<Rec> = Vec::with_capacity(CHUNK_ROWS);
    let mut last_progress = Instant::now();
    let mut past_range = false;
    while next < range.until {
        let msg = match pooled.consumer().poll(Duration::from_millis(200)) {
            None => {
                if last_progress.elapsed() > cfg.fetch_timeout {
                    pooled.broken = true;
                    return Err(ext(format!(
                        "no records from {}/{} at offset {next} within {} s (range ends at {})",
                        range.topic,
                        range.partition,
                        cfg.fetch_timeout.as_secs(),
                        range.until
                    )));
                }
                continue;
            }
            Some(Err(e)) => {
                // Transient broker errors are retried by librdkafka; keep
                // polling until the timeout says otherwise.
                tracing::debug!(
                    "kafka poll error on {}/{}: {e}",
                    range.topic,
                    range.partition
                );
                if last_progress.elapsed() > cfg.fetch_timeout {
                    pooled.broken = true;
                    return Err(ext(format!(
                        "reading {}/{} at offset {next}: {e}",
                        range.topic, range.partition
                    )));
                }
                continue;
            }
            Some(Ok(m)) => m,
        };
        last_progress = Instant::now();
        let off = msg.offset();
        if off < next {
            continue; // a stale prefetched record from before the seek
        }
        if off > next && next == range.from {
            // The range's first offsets are gone (retention, compaction).
            tracing::warn!(
                "{}/{}: offsets {next}..{off} are not available",
                range.topic,
                range.partition
            );
        }
        if off >= range.until {
            // Taken from the queue past the range (a gap before `until`):
            // the next read of this partition must seek.
            past_range = true;
            break;
        }
        next = off + 1;
        rows_in += 1;
        let (ts, ts_type) = match msg.timestamp() {
            rdkafka::Timestamp::NotAvailable => (None, -1),
            rdkafka::Timestamp::CreateTime(t) => (Some(t), 0),
            rdkafka::Timestamp::LogAppendTime(t) => (Some(t), 1),
        };
        chunk.push(Rec {
            key: msg.key().map(<[u8]>::to_vec),
            value: msg.payload().map(<[u8]>::to_vec),
            offset: off,
            ts,
            ts_type,
        });
        if chunk.len() >= CHUNK_ROWS {
            let batch = build_batch(
                cfg,
                range,
                std::mem::take(&mut chunk),
                schema,
                projection,
                &mut dead,
            )?;
            if tx.blocking_send(Ok(batch)).is_err() {
                pooled.position = Some(next);
                return Ok((rows_in, dead)); // the consumer of the stream went away
            }
        }
    }
    pooled.position = (!past_range).then_some(next);
    if !chunk.is_empty() {
        let batch = build_batch(cfg, range, chunk, schema, projection, &mut dead)?;
        let _ = tx.blocking_send(Ok(batch));
    }
    Ok((rows_in, dead))
}

fn build_batch(
    cfg: &KafkaScanConfig,
    range: &OffsetRange,
    mut recs: Vec<Rec>,
    schema: &SchemaRef,
    projection: Option<&[usize]>,
    dead: &mut Vec<DeadLetter>,
) -> Result<RecordBatch> {
    let mut dead_letter = |r: &Rec, reason: String| {
        dead.push(DeadLetter {
            topic: range.topic.clone(),
            partition: range.partition,
            offset: r.offset,
            value: r.value.clone(),
            reason,
        })
    };
    let data: Option<ArrayRef> = match &cfg.decoder {
        None => None,
        Some(dec) => {
            let mut objs = Vec::with_capacity(recs.len());
            let mut kept = Vec::with_capacity(recs.len());
            for r in recs {
                match dec.check(r.value.as_deref()) {
                    Ok(o) => {
                        objs.push(o);
                        kept.push(r);
                    }
                    Err(reason) => dead_letter(&r, reason),
                }
            }
            let (arr, bad) = dec.decode_each(objs);
            if !bad.is_empty() {
                let bad_idx: std::collections::HashSet<usize> = bad.iter().map(|b| b.0).collect();
                for (i, reason) in bad {
                    dead_letter(&kept[i], reason);
                }
                kept = kept
                    .into_iter()
                    .enumerate()
                    .filter(|(i, _)| !bad_idx.contains(i))
                    .map(|(_, r)| r)
                    .collect();
            }
            recs = kept;
            Some(match arr {
                Some(a) => a,
                None => Arc::new(arrow::array::StructArray::new_empty_fields(0, None).slice(0, 0)),
            })
        }
    };
    let n = recs.len();
    let mut key = BinaryBuilder::with_capacity(n, 0);
    let mut value = BinaryBuilder::with_capacity(n, 0);
    let mut topic = StringBuilder::with_capacity(n, n * range.topic.len());
    let mut part = Int32Builder::with_capacity(n);
    let mut off = Int64Builder::with_capacity(n);
    let mut ts = TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut ts_type = Int32Builder::with_capacity(n);
    let mut write_ts = Int64Builder::with_capacity(n);
    for r in &recs {
        key.append_option(r.key.as_deref());
        value.append_option(r.value.as_deref());
        topic.append_value(&range.topic);
        part.append_value(range.partition);
        off.append_value(r.offset);
        ts.append_option(r.ts);
        ts_type.append_value(r.ts_type);
        // µs: the record's ms timestamp, then the offset, so the later record
        // of a key wins in Cassandra's last-write-wins (ties within one ms are
        // ordered by offset modulo 1000).
        write_ts.append_value(r.ts.unwrap_or(0) * 1000 + r.offset.rem_euclid(1000));
    }
    let offsets: ArrayRef = Arc::new(off.finish());
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(key.finish()),
        Arc::new(value.finish()),
        Arc::new(topic.finish()),
        Arc::new(part.finish()),
        offsets.clone(),
        Arc::new(ts.finish()),
        Arc::new(ts_type.finish()),
    ];
    if let Some(d) = data {
        let d = if d.len() == n {
            d
        } else if n == 0 {
            arrow::array::new_empty_array(schema.field(7).data_type())
        } else {
            return Err(DataFusionError::Internal(
                "decoded rows do not line up with records".into(),
            ));
        };
        cols.push(d);
    }
    cols.push(Arc::new(write_ts.finish()));
    cols.push(offsets);
    let batch = RecordBatch::try_new(schema.clone(), cols)?;
    Ok(match projection {
        Some(p) => batch.project(p)?,
        None => batch,
    })
}
