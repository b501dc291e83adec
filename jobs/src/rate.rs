//! Spark's `rate` source: rows generated inside the executors, with
//! `timestamp` and `value` columns, for benchmarks and tests that the broker
//! must not bound.
//!
//! Like Spark's micro-batch rate source, the rows that exist at a time are
//! fixed by the clock: `rowsPerSecond × seconds since the job started`, dealt
//! round-robin over `numPartitions` (value `v` is in partition `v mod n`).
//! `rate-micro-batch` (Spark 3.3+) instead offers exactly `rowsPerBatch` more
//! rows at each trigger, whatever the clock: steady batches for measuring an
//! engine's capacity. A
//! partition's offset counts its rows, so batches, checkpoints and re-runs
//! work exactly as for Kafka, and a re-run regenerates the same rows. Ranges
//! travel as the rows of a child memory plan, as for the Kafka scan, so
//! Ballista gives each task only its own.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};
use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::kafka::scan::{
    OFFSET_COLUMN, ScanReport, WRITE_TS_COLUMN, collect_ranges, tokio_stream_of,
};
use crate::kafka::{OffsetRange, PartitionOffsets, TopicPartition};

/// The rate source's partitions appear as this topic in offsets and reports.
pub const RATE_TOPIC: &str = "rate";

const CHUNK_ROWS: i64 = 8192;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RateConfig {
    pub rows_per_second: u64,
    pub num_partitions: u32,
    /// Value 0's timestamp (ms since the epoch): when the job started for
    /// `rate`, `startTimestamp` for `rate-micro-batch`.
    pub start_ms: i64,
    /// `rate-micro-batch`: rows per batch (0 for `rate`) ...
    pub rows_per_batch: u64,
    /// ... and how far the timestamp advances per batch.
    pub advance_ms: u64,
}

impl RateConfig {
    /// Rows generated in all partitions by `now_ms` (`rate`).
    pub fn total_at(&self, now_ms: i64) -> i64 {
        let elapsed = (now_ms - self.start_ms).max(0) as u128;
        (elapsed * self.rows_per_second as u128 / 1000).min(i64::MAX as u128) as i64
    }

    /// The end offsets the next batch may read to: by the clock for `rate`,
    /// `rowsPerBatch` past what is committed for `rate-micro-batch`.
    pub fn latest_after(&self, committed: &PartitionOffsets, now_ms: i64) -> PartitionOffsets {
        if self.rows_per_batch > 0 {
            let done: i64 = committed.values().sum();
            self.ends(done.saturating_add(self.rows_per_batch as i64))
        } else {
            self.latest(now_ms)
        }
    }

    /// Each partition's end offset (its row count) at `now_ms`.
    pub fn latest(&self, now_ms: i64) -> PartitionOffsets {
        self.ends(self.total_at(now_ms))
    }

    /// Each partition's row count when `total` rows exist in all.
    fn ends(&self, total: i64) -> PartitionOffsets {
        let n = i64::from(self.num_partitions.max(1));
        (0..n)
            .map(|p| {
                let rows = if total > p {
                    (total - p + n - 1) / n
                } else {
                    0
                };
                (
                    TopicPartition {
                        topic: RATE_TOPIC.to_string(),
                        partition: p as i32,
                    },
                    rows,
                )
            })
            .collect()
    }

    /// Every partition at offset 0.
    pub fn earliest(&self) -> PartitionOffsets {
        self.ends(0)
    }

    /// The value of row `offset` of `partition`.
    fn value(&self, partition: i32, offset: i64) -> i64 {
        offset * i64::from(self.num_partitions.max(1)) + i64::from(partition)
    }

    /// The timestamp (ms) of `value`.
    fn timestamp_ms(&self, value: i64) -> i64 {
        if self.rows_per_batch > 0 {
            let batch = value / self.rows_per_batch as i64;
            self.start_ms + batch.saturating_mul(self.advance_ms as i64)
        } else {
            self.start_ms + (value as i128 * 1000 / self.rows_per_second.max(1) as i128) as i64
        }
    }
}

impl RateConfig {
    /// The source of a job started at `job_start_ms`: `rate` counts its rows
    /// from then, `rate-micro-batch` from its `startTimestamp`.
    pub fn for_job(r: crate::spec::RateOptions, job_start_ms: i64) -> Self {
        RateConfig {
            rows_per_second: r.rows_per_second,
            num_partitions: r.num_partitions,
            start_ms: if r.rows_per_batch > 0 {
                r.start_timestamp_ms
            } else {
                job_start_ms
            },
            rows_per_batch: r.rows_per_batch,
            advance_ms: r.advance_millis_per_batch,
        }
    }
}

/// `timestamp`, `value`, then the hidden columns the sink needs.
pub fn rate_source_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(
            "timestamp",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        Field::new("value", DataType::Int64, false),
        Field::new(WRITE_TS_COLUMN, DataType::Int64, false),
        Field::new(OFFSET_COLUMN, DataType::Int64, false),
    ]))
}

pub struct RateScanExec {
    ranges: Arc<dyn ExecutionPlan>,
    config: RateConfig,
    projection: Option<Vec<usize>>,
    properties: Arc<PlanProperties>,
    reports: Arc<Mutex<HashMap<usize, ScanReport>>>,
}

impl fmt::Debug for RateScanExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateScanExec")
            .field("config", &self.config)
            .field("projection", &self.projection)
            .finish()
    }
}

impl RateScanExec {
    pub fn new(
        ranges: Arc<dyn ExecutionPlan>,
        config: RateConfig,
        projection: Option<Vec<usize>>,
    ) -> Result<Self> {
        let full = rate_source_schema();
        let schema = match &projection {
            Some(p) => Arc::new(full.project(p)?),
            None => full,
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
            projection,
            properties,
            reports: Default::default(),
        })
    }
    pub fn config(&self) -> RateConfig {
        self.config
    }
    pub fn projection(&self) -> Option<&Vec<usize>> {
        self.projection.as_ref()
    }
    /// The report of local partition `p`, once its stream has ended.
    pub fn take_report(&self, p: usize) -> Option<ScanReport> {
        self.reports.lock().remove(&p)
    }
}

impl DisplayAs for RateScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "RateScanExec: rowsPerSecond={} rowsPerBatch={} numPartitions={}",
            self.config.rows_per_second, self.config.rows_per_batch, self.config.num_partitions
        )
    }
}

impl ExecutionPlan for RateScanExec {
    fn name(&self) -> &str {
        "RateScanExec"
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
            .map_err(|_| DataFusionError::Internal("RateScanExec takes one child".into()))?;
        Ok(Arc::new(RateScanExec::new(
            child,
            self.config,
            self.projection.clone(),
        )?))
    }

    fn execute(
        &self,
        partition: usize,
        ctx: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let ranges_stream = self.ranges.execute(partition, ctx)?;
        let config = self.config;
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
            for range in &ranges {
                let mut from = range.from;
                while from < range.until {
                    let until = (from + CHUNK_ROWS).min(range.until);
                    let batch =
                        generate(&config, range, from, until).and_then(|b| match &projection {
                            Some(p) => Ok(b.project(p)?),
                            None => Ok(b),
                        });
                    let failed = batch.is_err();
                    if tx.send(batch).await.is_err() || failed {
                        return; // the reader went away, or it has the error
                    }
                    report.rows_in += (until - from) as u64;
                    from = until;
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

/// Rows `[from, until)` of the range's partition.
fn generate(c: &RateConfig, range: &OffsetRange, from: i64, until: i64) -> Result<RecordBatch> {
    let offsets: Vec<i64> = (from..until).collect();
    let values: Vec<i64> = offsets
        .iter()
        .map(|&o| c.value(range.partition, o))
        .collect();
    let ts: Vec<i64> = values.iter().map(|&v| c.timestamp_ms(v)).collect();
    // As for Kafka: the ms timestamp, then the offset as a tiebreak.
    let write_ts: Vec<i64> = ts
        .iter()
        .zip(&offsets)
        .map(|(t, o)| t * 1000 + o.rem_euclid(1000))
        .collect();
    let cols: Vec<ArrayRef> = vec![
        Arc::new(TimestampMillisecondArray::from(ts).with_timezone("UTC")),
        Arc::new(Int64Array::from(values)),
        Arc::new(Int64Array::from(write_ts)),
        Arc::new(Int64Array::from(offsets)),
    ];
    Ok(RecordBatch::try_new(rate_source_schema(), cols)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> RateConfig {
        RateConfig {
            rows_per_second: 1000,
            num_partitions: 3,
            start_ms: 1_000_000,
            ..Default::default()
        }
    }

    #[test]
    fn micro_batches_add_rows_per_batch_to_what_is_committed() {
        let c = RateConfig {
            num_partitions: 3,
            rows_per_batch: 10,
            advance_ms: 1000,
            ..Default::default()
        };
        let first = c.latest_after(&c.earliest(), 0);
        assert_eq!(first.values().copied().collect::<Vec<_>>(), vec![4, 3, 3]);
        let second = c.latest_after(&first, 0);
        assert_eq!(second.values().sum::<i64>(), 20);
        assert_eq!((c.timestamp_ms(9), c.timestamp_ms(10)), (0, 1000));
    }

    #[test]
    fn rows_are_dealt_round_robin_by_the_clock() {
        let c = cfg();
        let at = |ms| c.latest(c.start_ms + ms).into_values().collect::<Vec<_>>();
        assert_eq!(at(0), vec![0, 0, 0]);
        // 10 ms at 1000/s = 10 rows: values 0..10 → partition 0 has 0,3,6,9.
        assert_eq!(at(10), vec![4, 3, 3]);
        assert_eq!(at(1000).iter().sum::<i64>(), 1000);
        assert_eq!(c.earliest().into_values().sum::<i64>(), 0);
    }

    #[test]
    fn generated_rows_cover_every_value_once() {
        let c = cfg();
        let latest = c.latest(c.start_ms + 2_000);
        let mut seen = Vec::new();
        for (tp, end) in latest {
            let r = OffsetRange {
                topic: RATE_TOPIC.into(),
                partition: tp.partition,
                from: 0,
                until: end,
            };
            let b = generate(&c, &r, 0, end).unwrap();
            let v = b.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
            let t = b
                .column(0)
                .as_any()
                .downcast_ref::<TimestampMillisecondArray>()
                .unwrap();
            for i in 0..b.num_rows() {
                assert_eq!(t.value(i), c.start_ms + v.value(i)); // 1000/s: 1 ms apart
                seen.push(v.value(i));
            }
        }
        seen.sort_unstable();
        assert_eq!(seen, (0..2000).collect::<Vec<_>>());
    }
}
