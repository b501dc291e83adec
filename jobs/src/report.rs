//! The one row per task that every sink returns to the scheduler: which range
//! the task read, what became of its rows, and its latency histogram.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryArray, Int32Array, Int64Array, RecordBatch, StringArray, UInt64Array,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::error::Result;
use datafusion::physical_plan::ExecutionPlan;

use crate::kafka::KafkaScanExec;
use crate::kafka::scan::ScanReport;
use crate::latency::Latency;
use crate::rate::RateScanExec;
use crate::runtime;

pub fn report_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("executor_id", DataType::Utf8, false),
        Field::new("topic", DataType::Utf8, false),
        Field::new("partition", DataType::Int32, false),
        Field::new("from_offset", DataType::Int64, false),
        Field::new("until_offset", DataType::Int64, false),
        Field::new("rows_in", DataType::UInt64, false),
        Field::new("rows_out", DataType::UInt64, false),
        Field::new("rows_dead", DataType::UInt64, false),
        Field::new("duration_ms", DataType::UInt64, false),
        // Latency::encode of the rows this task wrote.
        Field::new("latency_ms", DataType::Binary, false),
    ]))
}

/// What one sink task did.
#[derive(Debug, Default)]
pub struct TaskOutcome {
    pub scan: ScanReport,
    pub rows_out: u64,
    pub rows_dead: u64,
    pub duration_ms: u64,
    pub latency: Latency,
}

impl TaskOutcome {
    /// (topic, partition, from, until) of the task's range; partition -1 for
    /// a task that had none.
    pub fn range(&self) -> (String, i32, i64, i64) {
        match (self.scan.ranges.first(), self.scan.ranges.last()) {
            (Some(f), Some(l)) => (f.topic.clone(), f.partition, f.from, l.until),
            _ => (String::new(), -1, 0, 0),
        }
    }

    pub fn to_batch(&self) -> Result<RecordBatch> {
        let (topic, part, from, until) = self.range();
        let cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![runtime::executor_id()])),
            Arc::new(StringArray::from(vec![topic])),
            Arc::new(Int32Array::from(vec![part])),
            Arc::new(Int64Array::from(vec![from])),
            Arc::new(Int64Array::from(vec![until])),
            Arc::new(UInt64Array::from(vec![self.scan.rows_in])),
            Arc::new(UInt64Array::from(vec![self.rows_out])),
            Arc::new(UInt64Array::from(vec![self.rows_dead])),
            Arc::new(UInt64Array::from(vec![self.duration_ms])),
            Arc::new(BinaryArray::from(vec![self.latency.encode().as_slice()])),
        ];
        Ok(RecordBatch::try_new(report_schema(), cols)?)
    }
}

/// The report of the source scan below `plan` for local partition `p`, once
/// its stream has ended.
pub fn scan_report(plan: &Arc<dyn ExecutionPlan>, p: usize) -> Option<ScanReport> {
    if let Some(s) = plan.as_ref().downcast_ref::<KafkaScanExec>() {
        return s.take_report(p);
    }
    if let Some(s) = plan.as_ref().downcast_ref::<RateScanExec>() {
        return s.take_report(p);
    }
    plan.children().into_iter().find_map(|c| scan_report(c, p))
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
