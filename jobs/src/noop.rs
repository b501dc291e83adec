//! `NoopSinkExec`: Spark's `noop` sink. The transform runs in full, its rows
//! are dropped, and the task reports like any sink (latency is measured at
//! the drop). Benchmarks use it to measure the engine without a store.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};
use futures::StreamExt;

use crate::kafka::scan::WRITE_TS_COLUMN;
use crate::latency::Latency;
use crate::report::{TaskOutcome, now_ms, report_schema, scan_report};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoopSinkConfig {
    pub job: String,
    pub batch_id: u64,
}

pub struct NoopSinkExec {
    input: Arc<dyn ExecutionPlan>,
    config: NoopSinkConfig,
    properties: Arc<PlanProperties>,
}

impl fmt::Debug for NoopSinkExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NoopSinkExec")
            .field("config", &self.config)
            .finish()
    }
}

impl NoopSinkExec {
    pub fn new(input: Arc<dyn ExecutionPlan>, config: NoopSinkConfig) -> Self {
        let n = input.properties().partitioning.partition_count();
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(report_schema()),
            Partitioning::UnknownPartitioning(n),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        Self {
            input,
            config,
            properties,
        }
    }
    pub fn config(&self) -> &NoopSinkConfig {
        &self.config
    }
}

impl DisplayAs for NoopSinkExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "NoopSinkExec: batch={}", self.config.batch_id)
    }
}

impl ExecutionPlan for NoopSinkExec {
    fn name(&self) -> &str {
        "NoopSinkExec"
    }
    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }
    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }
    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }
    fn maintains_input_order(&self) -> Vec<bool> {
        vec![false]
    }
    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }
    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let [child] = <[_; 1]>::try_from(children)
            .map_err(|_| DataFusionError::Internal("NoopSinkExec takes one child".into()))?;
        Ok(Arc::new(NoopSinkExec::new(child, self.config.clone())))
    }

    fn execute(
        &self,
        partition: usize,
        ctx: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let mut input = self.input.execute(partition, ctx)?;
        let scan_plan = self.input.clone();
        let fut = async move {
            let started = Instant::now();
            let mut latency = Latency::new();
            let mut rows_out = 0u64;
            while let Some(batch) = input.next().await {
                let batch = batch?;
                rows_out += batch.num_rows() as u64;
                let now = now_ms();
                if let Some(ts) = batch
                    .column_by_name(WRITE_TS_COLUMN)
                    .and_then(|c| c.as_primitive_opt::<Int64Type>())
                {
                    for t in ts.values() {
                        latency.record(now - t.div_euclid(1000));
                    }
                }
            }
            let scan = scan_report(&scan_plan, partition).unwrap_or_default();
            let rows_dead = scan.dead.len() as u64;
            TaskOutcome {
                scan,
                rows_out,
                rows_dead,
                duration_ms: started.elapsed().as_millis() as u64,
                latency,
            }
            .to_batch()
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            report_schema(),
            futures::stream::once(fut),
        )))
    }
}
