//! `CassandraSinkExec`: writes each input partition where it runs (not
//! through DataFusion's single-partition `DataSinkExec`), with a prepared
//! INSERT, bounded concurrency and retries, writes the scan's dead letters,
//! and returns one report row per partition.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{AsArray, RecordBatch};
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
use futures::{StreamExt, TryStreamExt};
use scylla::serialize::SerializationError;
use scylla::serialize::row::{RowSerializationContext, SerializeRow};
use scylla::serialize::value::SerializeValue;
use scylla::serialize::writers::RowWriter;
use scylla::value::CqlTimestamp;

use super::convert::SinkColumn;
use super::session::{Connected, SinkConnection, connect};
use crate::kafka::scan::{DeadLetter, OFFSET_COLUMN, WRITE_TS_COLUMN};
use crate::latency::Latency;
use crate::report::{TaskOutcome, now_ms, report_schema, scan_report};

#[derive(Debug, Clone)]
pub struct SinkConfig {
    pub job: String,
    pub batch_id: u64,
    pub connection: SinkConnection,
    pub keyspace: String,
    pub table: String,
    /// (name, CQL type) of the columns written, in input order.
    pub columns: Vec<(String, String)>,
    pub dead_letter_table: String,
    pub concurrency: usize,
    pub max_retries: u32,
}

impl SinkConfig {
    pub fn insert_cql(&self) -> String {
        let names: Vec<String> = self
            .columns
            .iter()
            .map(|c| format!("\"{}\"", c.0))
            .collect();
        let marks = vec!["?"; names.len()].join(", ");
        format!(
            "INSERT INTO {}.{} ({}) VALUES ({marks}) USING TIMESTAMP ?",
            self.keyspace,
            self.table,
            names.join(", ")
        )
    }
    pub fn dead_letter_cql(&self) -> String {
        format!(
            "INSERT INTO {}.{} (topic, partition, offset, job, batch_id, value, reason, failed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            self.keyspace, self.dead_letter_table
        )
    }
}

pub struct CassandraSinkExec {
    input: Arc<dyn ExecutionPlan>,
    config: Arc<SinkConfig>,
    properties: Arc<PlanProperties>,
}

impl fmt::Debug for CassandraSinkExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CassandraSinkExec")
            .field("config", &self.config)
            .finish()
    }
}

impl CassandraSinkExec {
    pub fn new(input: Arc<dyn ExecutionPlan>, config: Arc<SinkConfig>) -> Self {
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
    pub fn config(&self) -> &Arc<SinkConfig> {
        &self.config
    }
}

impl DisplayAs for CassandraSinkExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "CassandraSinkExec: {}.{} batch={}",
            self.config.keyspace, self.config.table, self.config.batch_id
        )
    }
}

impl ExecutionPlan for CassandraSinkExec {
    fn name(&self) -> &str {
        "CassandraSinkExec"
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
            .map_err(|_| DataFusionError::Internal("CassandraSinkExec takes one child".into()))?;
        Ok(Arc::new(CassandraSinkExec::new(child, self.config.clone())))
    }

    fn execute(
        &self,
        partition: usize,
        ctx: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, ctx)?;
        let config = self.config.clone();
        let scan_plan = self.input.clone();
        let fut = async move {
            let started = Instant::now();
            let conn = connect(&config.connection)
                .await
                .map_err(DataFusionError::Execution)?;
            let mut latency = Latency::new();
            let (rows_out, sink_dead) = write_rows(&config, &conn, input, &mut latency).await?;
            let scan = scan_report(&scan_plan, partition).unwrap_or_default();
            let mut outcome = TaskOutcome {
                scan,
                rows_out,
                latency,
                ..Default::default()
            };
            let (topic, part, _, _) = outcome.range();
            let mut dead = std::mem::take(&mut outcome.scan.dead);
            dead.extend(sink_dead.into_iter().map(|(offset, reason)| DeadLetter {
                topic: topic.clone(),
                partition: part,
                offset,
                value: None,
                reason,
            }));
            write_dead_letters(&config, &conn, &dead).await?;
            outcome.rows_dead = dead.len() as u64;
            outcome.duration_ms = started.elapsed().as_millis() as u64;
            outcome.to_batch()
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            report_schema(),
            futures::stream::once(fut),
        )))
    }
}

/// One row of an input batch with its write timestamp, serialized straight
/// from the batch's columns (no `CqlValue` per cell).
struct Row {
    cols: Arc<[SinkColumn]>,
    i: usize,
    ts: i64,
}

impl SerializeRow for Row {
    fn serialize(
        &self,
        ctx: &RowSerializationContext<'_>,
        writer: &mut RowWriter,
    ) -> std::result::Result<(), SerializationError> {
        let specs = ctx.columns();
        // The table's columns, then USING TIMESTAMP's marker.
        if specs.len() != self.cols.len() + 1 {
            return Err(SerializationError::new(std::io::Error::other(format!(
                "the insert binds {} values, the sink has {}",
                specs.len(),
                self.cols.len() + 1
            ))));
        }
        for (col, spec) in self.cols.iter().zip(specs) {
            col.serialize(self.i, spec.typ(), writer.make_cell_writer())?;
        }
        self.ts
            .serialize(specs[self.cols.len()].typ(), writer.make_cell_writer())?;
        Ok(())
    }

    fn is_empty(&self) -> bool {
        false
    }
}

/// Writes every row of the input; returns rows written and (offset, reason)
/// of rows that cannot be converted to the table's types.
async fn write_rows(
    config: &SinkConfig,
    conn: &Arc<Connected>,
    input: SendableRecordBatchStream,
    latency: &mut Latency,
) -> Result<(u64, Vec<(i64, String)>)> {
    let insert = conn
        .prepare(&config.insert_cql())
        .await
        .map_err(DataFusionError::Execution)?;
    // One window of `concurrency` writes over the whole input, not one per
    // input batch: waiting for each batch's last writes before taking the
    // next left the store idle at every batch boundary.
    let mut dead = Vec::new();
    let mut written = 0u64;
    let insert = &insert;
    input
        .map(|batch| to_rows(config, &batch?, &mut dead))
        .map_ok(|rows| futures::stream::iter(rows.into_iter().map(Ok::<Row, DataFusionError>)))
        .try_flatten()
        .map_ok(|row| async move {
            let ts = row.ts;
            with_retries(config.max_retries, || {
                conn.session.execute_unpaged(insert, &row)
            })
            .await?;
            // The write timestamp is the record's ms timestamp × 1000 (+ a tiebreak).
            Ok::<_, DataFusionError>(now_ms() - ts.div_euclid(1000))
        })
        .try_buffer_unordered(config.concurrency.max(1))
        .try_for_each(|ms| {
            latency.record(ms);
            written += 1;
            futures::future::ready(Ok(()))
        })
        .await?;
    Ok((written, dead))
}

fn to_rows(
    config: &SinkConfig,
    batch: &RecordBatch,
    dead: &mut Vec<(i64, String)>,
) -> Result<Vec<Row>> {
    let n = batch.num_rows();
    let hidden = |name: &str| {
        batch
            .column_by_name(name)
            .and_then(|c| c.as_primitive_opt::<Int64Type>().cloned())
            .ok_or_else(|| {
                DataFusionError::Internal(format!("sink input lacks hidden column {name}"))
            })
    };
    let write_ts = hidden(WRITE_TS_COLUMN)?;
    let offsets = hidden(OFFSET_COLUMN)?;
    let mut cols = Vec::with_capacity(config.columns.len());
    for (name, ty) in &config.columns {
        let c = batch
            .column_by_name(name)
            .ok_or_else(|| DataFusionError::Internal(format!("sink input lacks column {name}")))?;
        cols.push(SinkColumn::new(c, ty, name).map_err(DataFusionError::Execution)?);
    }
    let cols: Arc<[SinkColumn]> = cols.into();
    let mut rows = Vec::with_capacity(n);
    for i in 0..n {
        match cols.iter().find_map(|c| c.error(i)) {
            Some(reason) => dead.push((offsets.value(i), reason.to_string())),
            None => rows.push(Row {
                cols: cols.clone(),
                i,
                ts: write_ts.value(i),
            }),
        }
    }
    Ok(rows)
}

async fn write_dead_letters(
    config: &SinkConfig,
    conn: &Arc<Connected>,
    dead: &[DeadLetter],
) -> Result<()> {
    if dead.is_empty() {
        return Ok(());
    }
    let stmt = conn
        .prepare(&config.dead_letter_cql())
        .await
        .map_err(DataFusionError::Execution)?;
    let now = CqlTimestamp(chrono::Utc::now().timestamp_millis());
    let rows: Vec<_> = dead
        .iter()
        .map(|d| {
            (
                d.topic.clone(),
                d.partition,
                d.offset,
                config.job.clone(),
                config.batch_id as i64,
                d.value.clone().unwrap_or_default(),
                d.reason.clone(),
                now,
            )
        })
        .collect();
    let stmt = &stmt;
    futures::stream::iter(rows.into_iter().map(|values| async move {
        with_retries(config.max_retries, || {
            conn.session.execute_unpaged(stmt, &values)
        })
        .await
    }))
    .buffer_unordered(config.concurrency.max(1))
    .try_collect::<Vec<()>>()
    .await?;
    Ok(())
}

/// Retries a write with exponential backoff (100 ms doubling to 5 s).
///
/// Each attempt is boxed: the driver's request future is kilobytes, and the
/// writers' windows of concurrent writes moved it by value with every row
/// (memmove was ~10% of the executor's CPU in `perf`, half of it moving
/// these futures).
async fn with_retries<F, Fut, T, E>(max_retries: u32, mut f: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<T, E>>,
    E: std::fmt::Display,
{
    let mut delay = Duration::from_millis(100);
    let mut attempt = 0;
    loop {
        match Box::pin(f()).await {
            Ok(_) => return Ok(()),
            Err(e) if attempt < max_retries => {
                tracing::debug!("write failed (attempt {}): {e}", attempt + 1);
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
                attempt += 1;
            }
            Err(e) => {
                return Err(DataFusionError::Execution(format!(
                    "write failed after {} attempts: {e}",
                    attempt + 1
                )));
            }
        }
    }
}
