//! Ember's streaming-job building blocks: job specs, the Kafka and rate
//! sources, JSON decoding and Spark's JSON functions, the Cassandra and noop sinks, the batch-plan
//! builder, and the Ballista extension codecs that carry them to executors.

pub mod cassandra;
pub mod codec;
pub mod decode;
pub mod functions;
pub mod kafka;
pub mod latency;
pub mod noop;
pub mod plan;
pub mod rate;
pub mod report;
pub mod runtime;
pub mod schema;
pub mod spec;

pub use codec::{EmberLogicalCodec, EmberPhysicalCodec};
pub use plan::{JobPlanner, SinkTable};
pub use spec::JobSpec;
