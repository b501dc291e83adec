//! Ember's streaming-job building blocks: job specs, the Kafka source, JSON
//! decoding and Spark's JSON functions, the Cassandra sink, the batch-plan
//! builder, and the Ballista extension codecs that carry them to executors.

pub mod cassandra;
pub mod codec;
pub mod decode;
pub mod functions;
pub mod kafka;
pub mod plan;
pub mod runtime;
pub mod schema;
pub mod spec;

pub use codec::{EmberLogicalCodec, EmberPhysicalCodec};
pub use plan::{JobPlanner, SinkTable};
pub use spec::JobSpec;
