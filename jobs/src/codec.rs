//! Ballista extension codecs carrying Ember's plan nodes and functions.
//!
//! Codec overrides replace Ballista's defaults, so everything that is not
//! Ember's is delegated to them. Ember's node bytes start with a marker,
//! because Ballista's physical codec assumes every buffer is one of its own.
//! Install both codecs on the client, the scheduler and every executor.

use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::{Field, Fields};
use ballista_core::serde::{BallistaLogicalExtensionCodec, BallistaPhysicalExtensionCodec};
use datafusion::common::TableReference;
use datafusion::datasource::TableProvider;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Extension, LogicalPlan, ScalarUDF};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use ember_proto::{
    CassandraSinkNode, EmberPlanNode, KafkaScanNode, NoopSinkNode, RateScanNode, SinkColumn,
    ValueField, ember_plan_node::Node,
};
use prost::Message;

use crate::cassandra::{CassandraSinkExec, SinkConfig, SinkConnection};
use crate::decode::{KeyType, ValueDecoder};
use crate::functions;
use crate::kafka::{KafkaScanConfig, KafkaScanExec};
use crate::noop::{NoopSinkConfig, NoopSinkExec};
use crate::rate::{RateConfig, RateScanExec};
use crate::schema::{spark_type, spark_type_name};

const MARKER: &[u8] = b"EMBR1";

#[derive(Debug, Default)]
pub struct EmberPhysicalCodec {
    inner: BallistaPhysicalExtensionCodec,
}

fn err(msg: impl Into<String>) -> DataFusionError {
    DataFusionError::Internal(msg.into())
}

fn encode_scan(s: &KafkaScanExec) -> KafkaScanNode {
    let c = s.config();
    let (value_fields, key_field, key_type) = match &c.decoder {
        None => (vec![], String::new(), String::new()),
        Some(d) => (
            d.fields()
                .iter()
                .map(|f| ValueField {
                    name: f.name().clone(),
                    data_type: spark_type_name(f.data_type()).into(),
                })
                .collect(),
            d.key().map(|k| k.0.clone()).unwrap_or_default(),
            d.key()
                .map(|k| k.1.cql_name().to_string())
                .unwrap_or_default(),
        ),
    };
    KafkaScanNode {
        job: c.job.clone(),
        bootstrap_servers: c.bootstrap_servers.clone(),
        consumer_options: c.consumer_options.clone().into_iter().collect(),
        value_fields,
        key_field,
        key_type,
        fetch_timeout_ms: c.fetch_timeout.as_millis() as u64,
        projection: projection_of(s.projection()).0,
        has_projection: s.projection().is_some(),
    }
}

fn decode_scan(n: KafkaScanNode, input: Arc<dyn ExecutionPlan>) -> Result<KafkaScanExec> {
    let decoder = if n.value_fields.is_empty() {
        None
    } else {
        let fields: Fields = n
            .value_fields
            .iter()
            .map(|f| {
                spark_type(&f.data_type)
                    .map(|t| Field::new(&f.name, t, true))
                    .ok_or_else(|| err(format!("unknown value type {}", f.data_type)))
            })
            .collect::<Result<Vec<_>>>()?
            .into();
        let key = (!n.key_field.is_empty())
            .then(|| (n.key_field.clone(), KeyType::from_cql(&n.key_type)));
        Some(ValueDecoder::new(fields, key))
    };
    let config = KafkaScanConfig {
        job: n.job,
        bootstrap_servers: n.bootstrap_servers,
        consumer_options: n.consumer_options.into_iter().collect(),
        decoder,
        fetch_timeout: Duration::from_millis(n.fetch_timeout_ms),
    };
    let projection = n
        .has_projection
        .then(|| n.projection.iter().map(|i| *i as usize).collect());
    KafkaScanExec::new(input, Arc::new(config), projection)
}

fn encode_sink(s: &CassandraSinkExec) -> CassandraSinkNode {
    let c = s.config();
    CassandraSinkNode {
        job: c.job.clone(),
        batch_id: c.batch_id,
        contact_points: c.connection.contact_points.clone(),
        keyspace: c.keyspace.clone(),
        table: c.table.clone(),
        columns: c
            .columns
            .iter()
            .map(|(n, t)| SinkColumn {
                name: n.clone(),
                cql_type: t.clone(),
            })
            .collect(),
        dead_letter_table: c.dead_letter_table.clone(),
        concurrency: c.concurrency as u32,
        max_retries: c.max_retries,
        username: c.connection.username.clone().unwrap_or_default(),
        password: c.connection.password.clone().unwrap_or_default(),
    }
}

fn decode_sink(n: CassandraSinkNode, input: Arc<dyn ExecutionPlan>) -> CassandraSinkExec {
    let config = SinkConfig {
        job: n.job,
        batch_id: n.batch_id,
        connection: SinkConnection {
            contact_points: n.contact_points,
            username: (!n.username.is_empty()).then_some(n.username),
            password: (!n.password.is_empty()).then_some(n.password),
        },
        keyspace: n.keyspace,
        table: n.table,
        columns: n
            .columns
            .into_iter()
            .map(|c| (c.name, c.cql_type))
            .collect(),
        dead_letter_table: n.dead_letter_table,
        concurrency: n.concurrency as usize,
        max_retries: n.max_retries,
    };
    CassandraSinkExec::new(input, Arc::new(config))
}

fn projection_of(p: Option<&Vec<usize>>) -> (Vec<u32>, bool) {
    (
        p.map(|p| p.iter().map(|i| *i as u32).collect())
            .unwrap_or_default(),
        p.is_some(),
    )
}

fn encode_rate(s: &RateScanExec) -> RateScanNode {
    let c = s.config();
    let (projection, has_projection) = projection_of(s.projection());
    RateScanNode {
        rows_per_second: c.rows_per_second,
        num_partitions: c.num_partitions,
        start_ms: c.start_ms,
        projection,
        has_projection,
        rows_per_batch: c.rows_per_batch,
        advance_ms: c.advance_ms,
    }
}

fn decode_rate(n: RateScanNode, input: Arc<dyn ExecutionPlan>) -> Result<RateScanExec> {
    let config = RateConfig {
        rows_per_second: n.rows_per_second,
        num_partitions: n.num_partitions,
        start_ms: n.start_ms,
        rows_per_batch: n.rows_per_batch,
        advance_ms: n.advance_ms,
    };
    let projection = n
        .has_projection
        .then(|| n.projection.iter().map(|i| *i as usize).collect());
    RateScanExec::new(input, config, projection)
}

impl PhysicalExtensionCodec for EmberPhysicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let Some(body) = buf.strip_prefix(MARKER) else {
            return self.inner.try_decode(buf, inputs, ctx, proto_converter);
        };
        let node = EmberPlanNode::decode(body)
            .map_err(|e| err(format!("cannot decode an Ember plan node: {e}")))?;
        let input = inputs
            .first()
            .cloned()
            .ok_or_else(|| err("Ember plan node without its input"))?;
        match node.node {
            Some(Node::KafkaScan(n)) => Ok(Arc::new(decode_scan(n, input)?)),
            Some(Node::CassandraSink(n)) => Ok(Arc::new(decode_sink(n, input))),
            Some(Node::RateScan(n)) => Ok(Arc::new(decode_rate(n, input)?)),
            Some(Node::NoopSink(n)) => Ok(Arc::new(NoopSinkExec::new(
                input,
                NoopSinkConfig {
                    job: n.job,
                    batch_id: n.batch_id,
                },
            ))),
            None => Err(err("empty Ember plan node")),
        }
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        let ours = if let Some(s) = node.as_ref().downcast_ref::<KafkaScanExec>() {
            Node::KafkaScan(encode_scan(s))
        } else if let Some(s) = node.as_ref().downcast_ref::<CassandraSinkExec>() {
            Node::CassandraSink(encode_sink(s))
        } else if let Some(s) = node.as_ref().downcast_ref::<RateScanExec>() {
            Node::RateScan(encode_rate(s))
        } else if let Some(s) = node.as_ref().downcast_ref::<NoopSinkExec>() {
            Node::NoopSink(NoopSinkNode {
                job: s.config().job.clone(),
                batch_id: s.config().batch_id,
            })
        } else {
            return self.inner.try_encode(node, buf, proto_converter);
        };
        buf.extend_from_slice(MARKER);
        EmberPlanNode { node: Some(ours) }
            .encode(buf)
            .map_err(|e| err(e.to_string()))
    }

    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> Result<Arc<ScalarUDF>> {
        match functions::by_name(name) {
            Some(f) => Ok(f),
            None => self.inner.try_decode_udf(name, buf),
        }
    }

    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> Result<()> {
        if functions::by_name(node.name()).is_some() {
            return Ok(()); // the name is enough
        }
        self.inner.try_encode_udf(node, buf)
    }
}

/// Ember adds no logical nodes or tables of its own to client plans yet; it
/// contributes its functions and delegates the rest to Ballista.
#[derive(Debug, Default)]
pub struct EmberLogicalCodec {
    inner: BallistaLogicalExtensionCodec,
}

impl LogicalExtensionCodec for EmberLogicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[LogicalPlan],
        ctx: &TaskContext,
    ) -> Result<Extension> {
        self.inner.try_decode(buf, inputs, ctx)
    }
    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> Result<()> {
        self.inner.try_encode(node, buf)
    }
    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: arrow::datatypes::SchemaRef,
        ctx: &TaskContext,
    ) -> Result<Arc<dyn TableProvider>> {
        self.inner
            .try_decode_table_provider(buf, table_ref, schema, ctx)
    }
    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        self.inner.try_encode_table_provider(table_ref, node, buf)
    }
    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> Result<Arc<ScalarUDF>> {
        match functions::by_name(name) {
            Some(f) => Ok(f),
            None => self.inner.try_decode_udf(name, buf),
        }
    }
    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> Result<()> {
        if functions::by_name(node.name()).is_some() {
            return Ok(());
        }
        self.inner.try_encode_udf(node, buf)
    }
}
