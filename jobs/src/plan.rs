//! Building one micro-batch's physical plan from a job spec and its offset
//! ranges: Kafka scan (with decode) or rate scan → the spec's SQL →
//! Cassandra or noop sink.
//!
//! The SQL is planned by DataFusion over a table `source` whose scan is a
//! `KafkaScanExec` over exactly this batch's ranges. Two hidden columns (the
//! record's write timestamp and offset) are threaded through the SQL's
//! projections to the sink. Only per-record transforms are accepted: a
//! shuffle (aggregation, join, sort) would break the one-task-per-range
//! layout and the idempotence of an upsert stream.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::Column;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{Expr, Filter, LogicalPlan, LogicalPlanBuilder, SubqueryAlias};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::cassandra::{CassandraSinkExec, SinkConfig, SinkConnection};
use crate::decode::{KeyType, ValueDecoder};
use crate::functions;
use crate::kafka::scan::{HIDDEN_COLUMNS, kafka_source_schema, ranges_exec};
use crate::kafka::{KafkaScanConfig, KafkaScanExec, OffsetRange};
use crate::noop::{NoopSinkConfig, NoopSinkExec};
use crate::rate::{RateConfig, RateScanExec, rate_source_schema};
use crate::spec::{JobSpec, SinkFormat};

/// What the table `source` scans.
#[derive(Debug, Clone)]
enum SourceConfig {
    Kafka(Arc<KafkaScanConfig>),
    Rate(RateConfig),
}

/// The sink table's columns as the store describes them.
#[derive(Debug, Clone)]
pub struct SinkTable {
    /// (name, CQL type, kind: partition_key | clustering | regular)
    pub columns: Vec<(String, String, String)>,
}

impl SinkTable {
    fn cql_type(&self, name: &str) -> Option<&str> {
        self.columns
            .iter()
            .find(|c| c.0 == name)
            .map(|c| c.1.as_str())
    }
    fn key_columns(&self) -> Vec<&str> {
        self.columns
            .iter()
            .filter(|c| c.2 == "partition_key" || c.2 == "clustering")
            .map(|c| c.0.as_str())
            .collect()
    }
}

pub struct JobPlanner {
    spec: JobSpec,
    source: SourceConfig,
    sink_columns: Vec<(String, String)>,
    ctx: SessionContext,
}

impl std::fmt::Debug for JobPlanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobPlanner")
            .field("job", &self.spec.name)
            .finish()
    }
}

impl JobPlanner {
    /// Checks the SQL against the source and the sink table (None for the
    /// noop sink), naming any fault, and prepares for planning batches.
    pub async fn new(spec: JobSpec, sink: Option<SinkTable>) -> Result<Self, String> {
        let sink = match spec.sink.format {
            SinkFormat::Noop => None,
            SinkFormat::Cassandra => sink.filter(|t| !t.columns.is_empty()),
        };
        if spec.sink.format == SinkFormat::Cassandra && sink.is_none() {
            return Err(format!(
                "sink table {}.{} does not exist",
                spec.sink.keyspace, spec.sink.table
            ));
        }
        let key_type = spec
            .source
            .key_field
            .as_ref()
            .and_then(|k| sink.as_ref()?.cql_type(k))
            .map(KeyType::from_cql)
            .unwrap_or(KeyType::Text);
        let decoder = spec.source.value_schema.clone().map(|fields| {
            ValueDecoder::new(fields, spec.source.key_field.clone().map(|k| (k, key_type)))
        });
        let kafka = Arc::new(KafkaScanConfig {
            job: spec.name.clone(),
            bootstrap_servers: spec.source.bootstrap_servers.clone(),
            consumer_options: spec.source.kafka_options.clone(),
            decoder,
            // A broker that gives nothing for this long fails the batch, which
            // the job retries with the same ranges (and shows as retrying).
            fetch_timeout: spec.source.poll_timeout,
        });
        let source = match spec.source.rate {
            // The job's start is set by the manager with `with_rate_start`.
            Some(r) => SourceConfig::Rate(RateConfig::for_job(r, 0)),
            None => SourceConfig::Kafka(kafka),
        };
        let config = SessionConfig::new()
            .with_target_partitions(1)
            .with_round_robin_repartition(false)
            .with_coalesce_batches(false);
        let ctx = SessionContext::new_with_config(config);
        functions::register(&ctx);
        let mut planner = Self {
            spec,
            source,
            sink_columns: Vec::new(),
            ctx,
        };

        // Plan once over no ranges to check the SQL and map its columns.
        let plan = planner
            .transform_plan(&[])
            .await
            .map_err(|e| format!("invalid transform SQL: {}", clean(&e)))?;
        let schema = plan.schema();
        let mut cols = Vec::new();
        for f in schema.fields() {
            let name = f.name();
            if HIDDEN_COLUMNS.contains(&name.as_str()) {
                continue;
            }
            let Some(sink) = &sink else {
                cols.push((name.clone(), String::new())); // noop: any column
                continue;
            };
            let Some(ty) = sink.cql_type(name) else {
                return Err(format!(
                    "the transform's column `{name}` is not a column of {}.{} (its columns: {})",
                    planner.spec.sink.keyspace,
                    planner.spec.sink.table,
                    sink.columns
                        .iter()
                        .map(|c| c.0.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            };
            if !crate::cassandra::convert::supported(ty) {
                return Err(format!(
                    "sink column `{name}` has CQL type {ty}, which Ember's sink does not write yet"
                ));
            }
            cols.push((name.clone(), ty.to_string()));
        }
        for key in sink.iter().flat_map(|s| s.key_columns()) {
            if !cols.iter().any(|c| c.0 == key) {
                return Err(format!(
                    "the transform does not produce `{key}`, a primary-key column of {}.{}",
                    planner.spec.sink.keyspace, planner.spec.sink.table
                ));
            }
        }
        planner.sink_columns = cols;
        Ok(planner)
    }

    pub fn spec(&self) -> &JobSpec {
        &self.spec
    }

    /// For a rate source: when the job started, which fixes its rows.
    pub fn with_rate_start(mut self, job_start_ms: i64) -> Self {
        if let (SourceConfig::Rate(r), Some(opts)) = (&mut self.source, self.spec.source.rate) {
            *r = RateConfig::for_job(opts, job_start_ms);
        }
        self
    }

    /// The physical plan of one batch.
    pub async fn batch_plan(
        &self,
        batch_id: u64,
        ranges: &[OffsetRange],
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let transform = self.transform_plan(ranges).await?;
        let s = &self.spec.sink;
        if s.format == SinkFormat::Noop {
            return Ok(Arc::new(NoopSinkExec::new(
                transform,
                NoopSinkConfig {
                    job: self.spec.name.clone(),
                    batch_id,
                },
            )));
        }
        let config = SinkConfig {
            job: self.spec.name.clone(),
            batch_id,
            connection: SinkConnection {
                contact_points: s.contact_points.clone(),
                username: s.username.clone(),
                password: s.password.clone(),
            },
            keyspace: s.keyspace.clone(),
            table: s.table.clone(),
            columns: self.sink_columns.clone(),
            dead_letter_table: s.dead_letter_table.clone(),
            concurrency: s.concurrency as usize,
            max_retries: s.max_retries,
        };
        Ok(Arc::new(CassandraSinkExec::new(
            transform,
            Arc::new(config),
        )))
    }

    async fn transform_plan(&self, ranges: &[OffsetRange]) -> Result<Arc<dyn ExecutionPlan>> {
        let table = Arc::new(BatchSource {
            config: self.source.clone(),
            ranges: ranges.to_vec(),
        });
        self.ctx.deregister_table("source")?;
        self.ctx.register_table("source", table)?;
        let logical = self.ctx.sql(&self.spec.sql).await?.into_unoptimized_plan();
        let logical = carry_hidden(logical)?;
        let state = self.ctx.state();
        let physical = state.create_physical_plan(&logical).await?;
        check_per_record(&physical)?;
        Ok(physical)
    }
}

fn clean(e: &DataFusionError) -> String {
    e.to_string()
        .trim_start_matches("Error during planning: ")
        .to_string()
}

/// Adds the hidden columns to every projection between the scan and the top.
fn carry_hidden(plan: LogicalPlan) -> Result<LogicalPlan> {
    match plan {
        LogicalPlan::Projection(p) => {
            let input = carry_hidden(Arc::unwrap_or_clone(p.input))?;
            let mut exprs = p.expr;
            for h in HIDDEN_COLUMNS {
                let present = exprs.iter().any(|e| e.schema_name().to_string() == h);
                if !present {
                    exprs.push(Expr::Column(Column::from_name(h)));
                }
            }
            LogicalPlanBuilder::from(input).project(exprs)?.build()
        }
        LogicalPlan::Filter(f) => Ok(LogicalPlan::Filter(Filter::try_new(
            f.predicate,
            Arc::new(carry_hidden(Arc::unwrap_or_clone(f.input))?),
        )?)),
        LogicalPlan::SubqueryAlias(a) => Ok(LogicalPlan::SubqueryAlias(SubqueryAlias::try_new(
            Arc::new(carry_hidden(Arc::unwrap_or_clone(a.input))?),
            a.alias,
        )?)),
        LogicalPlan::TableScan(t) => Ok(LogicalPlan::TableScan(t)),
        other => Err(DataFusionError::Plan(format!(
            "the transform must be a per-record SELECT over `source` (projections, filters, functions, subqueries in FROM); `{}` is not supported in a streaming upsert",
            other.display()
        ))),
    }
}

fn check_per_record(plan: &Arc<dyn ExecutionPlan>) -> Result<()> {
    const ALLOWED: &[&str] = &[
        "ProjectionExec",
        "FilterExec",
        "CoalesceBatchesExec",
        "KafkaScanExec",
        "RateScanExec",
        "DataSourceExec",
        "CooperativeExec",
    ];
    if !ALLOWED.contains(&plan.name()) {
        return Err(DataFusionError::Plan(format!(
            "the transform needs `{}`, which a per-record streaming transform cannot have",
            plan.name()
        )));
    }
    for c in plan.children() {
        check_per_record(c)?;
    }
    Ok(())
}

/// The table `source` for one batch.
#[derive(Debug)]
struct BatchSource {
    config: SourceConfig,
    ranges: Vec<OffsetRange>,
}

#[async_trait]
impl TableProvider for BatchSource {
    fn schema(&self) -> SchemaRef {
        match &self.config {
            SourceConfig::Kafka(k) => kafka_source_schema(k.decoder.as_ref()),
            SourceConfig::Rate(_) => rate_source_schema(),
        }
    }
    fn table_type(&self) -> TableType {
        TableType::Base
    }
    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let ranges = ranges_exec(&self.ranges)?;
        Ok(match &self.config {
            SourceConfig::Kafka(k) => {
                Arc::new(KafkaScanExec::new(ranges, k.clone(), projection.cloned())?)
            }
            SourceConfig::Rate(r) => Arc::new(RateScanExec::new(ranges, *r, projection.cloned())?),
        })
    }
}
