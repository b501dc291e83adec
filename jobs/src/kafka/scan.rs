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
    Array, ArrayRef, AsArray, BinaryBuilder, Int32Array, Int64Array, RecordBatch, StringBuilder,
    TimestampMillisecondBuilder,
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
use crate::decode::{Malformed, ValueDecoder};

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
    /// Where the key and value are in [`Chunk::bytes`].
    key: Option<std::ops::Range<usize>>,
    value: Option<std::ops::Range<usize>>,
    offset: i64,
    ts: Option<i64>,
    ts_type: i32,
}

/// Records read since the last batch, their keys and values side by side in
/// one buffer that is kept from batch to batch: a `Vec` per message cost a
/// malloc and a free per record, and scattered the heap.
#[derive(Default)]
struct Chunk {
    recs: Vec<Rec>,
    bytes: Vec<u8>,
}

impl Chunk {
    fn push(
        &mut self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        offset: i64,
        ts: Option<i64>,
        ts_type: i32,
    ) {
        let mut put = |b: &[u8]| {
            let start = self.bytes.len();
            self.bytes.extend_from_slice(b);
            start..self.bytes.len()
        };
        let key = key.map(&mut put);
        let value = value.map(&mut put);
        self.recs.push(Rec {
            key,
            value,
            offset,
            ts,
            ts_type,
        });
    }

    fn key(&self, r: &Rec) -> Option<&[u8]> {
        r.key.clone().map(|k| &self.bytes[k])
    }

    fn value(&self, r: &Rec) -> Option<&[u8]> {
        r.value.clone().map(|v| &self.bytes[v])
    }

    fn clear(&mut self) {
        self.recs.clear();
        self.bytes.clear();
    }
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
    let mut chunk = Chunk::default();
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
        chunk.push(msg.key(), msg.payload(), off, ts, ts_type);
        if chunk.recs.len() >= CHUNK_ROWS {
            let batch = build_batch(cfg, range, &mut chunk, schema, projection, &mut dead)?;
            if tx.blocking_send(Ok(batch)).is_err() {
                pooled.position = Some(next);
                return Ok((rows_in, dead)); // the consumer of the stream went away
            }
        }
    }
    pooled.position = (!past_range).then_some(next);
    if !chunk.recs.is_empty() {
        let batch = build_batch(cfg, range, &mut chunk, schema, projection, &mut dead)?;
        let _ = tx.blocking_send(Ok(batch));
    }
    Ok((rows_in, dead))
}

/// The chunk's records as a batch of `schema` (only the projected columns
/// are built: the key and value columns copy every message again), and its
/// malformed records as dead letters. Clears the chunk.
fn build_batch(
    cfg: &KafkaScanConfig,
    range: &OffsetRange,
    chunk: &mut Chunk,
    schema: &SchemaRef,
    projection: Option<&[usize]>,
    dead: &mut Vec<DeadLetter>,
) -> Result<RecordBatch> {
    let mut dead_letter = |r: &Rec, reason: String| {
        dead.push(DeadLetter {
            topic: range.topic.clone(),
            partition: range.partition,
            offset: r.offset,
            value: chunk.value(r).map(<[u8]>::to_vec),
            reason,
        })
    };
    let wanted = |i: usize| projection.is_none_or(|p| p.contains(&i));
    let mut kept: Vec<&Rec> = chunk.recs.iter().collect();
    let data: Option<ArrayRef> = match &cfg.decoder {
        None => None,
        Some(dec) => {
            let values = kept.iter().map(|r| chunk.value(r));
            let (arr, bad) = dec.decode_values(values, Malformed::Report);
            if !bad.is_empty() {
                let mut is_bad = vec![false; kept.len()];
                for (i, reason) in bad {
                    is_bad[i] = true;
                    dead_letter(kept[i], reason);
                }
                kept = kept
                    .into_iter()
                    .zip(is_bad)
                    .filter(|(_, bad)| !bad)
                    .map(|(r, _)| r)
                    .collect();
            }
            Some(Arc::new(arr))
        }
    };
    let n = kept.len();
    let mut cols: Vec<Option<ArrayRef>> = vec![None; schema.fields().len()];
    if wanted(0) {
        let mut key = BinaryBuilder::with_capacity(n, 0);
        kept.iter().for_each(|r| key.append_option(chunk.key(r)));
        cols[0] = Some(Arc::new(key.finish()));
    }
    if wanted(1) {
        let bytes = kept
            .iter()
            .filter_map(|r| r.value.as_ref())
            .map(|v| v.len())
            .sum();
        let mut value = BinaryBuilder::with_capacity(n, bytes);
        kept.iter()
            .for_each(|r| value.append_option(chunk.value(r)));
        cols[1] = Some(Arc::new(value.finish()));
    }
    if wanted(2) {
        let mut topic = StringBuilder::with_capacity(n, n * range.topic.len());
        kept.iter().for_each(|_| topic.append_value(&range.topic));
        cols[2] = Some(Arc::new(topic.finish()));
    }
    if wanted(3) {
        cols[3] = Some(Arc::new(Int32Array::from(vec![range.partition; n])));
    }
    let offsets: ArrayRef = Arc::new(Int64Array::from_iter_values(kept.iter().map(|r| r.offset)));
    cols[4] = Some(offsets.clone());
    if wanted(5) {
        let mut ts = TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC");
        kept.iter().for_each(|r| ts.append_option(r.ts));
        cols[5] = Some(Arc::new(ts.finish()));
    }
    if wanted(6) {
        cols[6] = Some(Arc::new(Int32Array::from_iter_values(
            kept.iter().map(|r| r.ts_type),
        )));
    }
    let mut next = 7;
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
        cols[next] = Some(d);
        next += 1;
    }
    // µs: the record's ms timestamp, then the offset, so the later record of
    // a key wins in Cassandra's last-write-wins (ties within one ms are
    // ordered by offset modulo 1000).
    cols[next] = Some(Arc::new(Int64Array::from_iter_values(
        kept.iter()
            .map(|r| r.ts.unwrap_or(0) * 1000 + r.offset.rem_euclid(1000)),
    )));
    cols[next + 1] = Some(offsets);
    chunk.clear();
    let pick = |i: usize| {
        cols[i]
            .clone()
            .ok_or_else(|| DataFusionError::Internal(format!("column {i} was not built")))
    };
    // The row count is given: a projection may be empty (`count(*)`).
    let rows = arrow::array::RecordBatchOptions::new().with_row_count(Some(n));
    Ok(match projection {
        Some(p) => RecordBatch::try_new_with_options(
            Arc::new(schema.project(p)?),
            p.iter().map(|&i| pick(i)).collect::<Result<_>>()?,
            &rows,
        )?,
        None => RecordBatch::try_new_with_options(
            schema.clone(),
            (0..cols.len()).map(pick).collect::<Result<_>>()?,
            &rows,
        )?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::KeyType;
    use crate::schema::parse_ddl_schema;

    const ID: &str = "2b4c8f3e-6a1d-4a8e-9f0b-1c2d3e4f5a6b";

    fn config() -> KafkaScanConfig {
        KafkaScanConfig {
            job: "t".into(),
            bootstrap_servers: "127.0.0.1:9".into(),
            consumer_options: Default::default(),
            decoder: Some(ValueDecoder::new(
                parse_ddl_schema("id STRING, age INT").unwrap(),
                Some(("id".into(), KeyType::Uuid)),
            )),
            fetch_timeout: Duration::from_secs(1),
        }
    }

    /// Three records, the middle one malformed, at offsets 10..13.
    fn chunk() -> Chunk {
        let good = |age: i32| format!(r#"{{"id":"{ID}","age":{age}}}"#);
        let mut c = Chunk::default();
        c.push(Some(b"k0"), Some(good(30).as_bytes()), 10, Some(1_000), 0);
        c.push(None, Some(b"{not json"), 11, Some(2_000), 0);
        c.push(Some(b"k2"), Some(good(31).as_bytes()), 12, Some(3_000), 0);
        c
    }

    fn range() -> OffsetRange {
        OffsetRange {
            topic: "users".into(),
            partition: 3,
            from: 10,
            until: 13,
        }
    }

    #[test]
    fn batches_carry_the_projected_columns_and_dead_letters_the_original_bytes() {
        let cfg = config();
        let schema = kafka_source_schema(cfg.decoder.as_ref());
        let mut dead = Vec::new();

        // All columns: the malformed record is dropped from every one of them.
        let mut c = chunk();
        let b = build_batch(&cfg, &range(), &mut c, &schema, None, &mut dead).unwrap();
        assert_eq!(b.schema(), schema);
        assert_eq!(b.num_rows(), 2);
        let keys = b.column(0).as_binary::<i32>();
        assert_eq!((keys.value(0), keys.value(1)), (&b"k0"[..], &b"k2"[..]));
        let values = b.column(1).as_binary::<i32>();
        assert!(values.value(1).starts_with(br#"{"id""#));
        assert_eq!(b.column(2).as_string::<i32>().value(1), "users");
        assert_eq!(b.column(3).as_primitive::<Int32Type>().values(), &[3, 3]);
        assert_eq!(b.column(4).as_primitive::<Int64Type>().values(), &[10, 12]);
        let data = b.column(7).as_struct();
        assert_eq!(
            data.column(1).as_primitive::<Int32Type>().values(),
            &[30, 31]
        );
        assert_eq!(
            b.column(8).as_primitive::<Int64Type>().values(),
            &[1_000_010, 3_000_012]
        );
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].offset, 11);
        assert_eq!(dead[0].value.as_deref(), Some(&b"{not json"[..]));
        assert!(dead[0].reason.contains("not JSON"), "{}", dead[0].reason);
        assert!(
            c.recs.is_empty() && c.bytes.is_empty(),
            "the chunk is cleared"
        );

        // A projection, out of schema order, without key or value.
        let mut c = chunk();
        let b = build_batch(&cfg, &range(), &mut c, &schema, Some(&[9, 7]), &mut dead).unwrap();
        assert_eq!(b.num_columns(), 2);
        assert_eq!(b.schema().field(0).name(), OFFSET_COLUMN);
        assert_eq!(b.column(0).as_primitive::<Int64Type>().values(), &[10, 12]);
        assert_eq!(b.schema().field(1).name(), DATA_COLUMN);

        // No columns at all (`count(*)`): the rows are still counted.
        let mut c = chunk();
        let b = build_batch(&cfg, &range(), &mut c, &schema, Some(&[]), &mut dead).unwrap();
        assert_eq!((b.num_columns(), b.num_rows()), (0, 2));
        assert_eq!(dead.len(), 3);

        // Every record malformed: an empty batch of the same schema.
        let mut c = Chunk::default();
        c.push(None, Some(b"[1]"), 20, None, -1);
        c.push(None, None, 21, None, -1);
        let b = build_batch(&cfg, &range(), &mut c, &schema, None, &mut dead).unwrap();
        assert_eq!((b.schema(), b.num_rows()), (schema, 0));
        assert_eq!(dead.len(), 5);
        assert!(dead[4].reason.contains("null"), "{}", dead[4].reason);
    }
}
