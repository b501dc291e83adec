//! Producer configuration shared by the outbox producer and the load tool.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::FutureProducer;

/// Compression codecs librdkafka is built with here. Snappy is left out on
/// purpose (tansu 0.6 cannot fetch snappy batches) and zstd would need the
/// rdkafka `zstd` feature, which would rebuild librdkafka for the workspace.
///
/// The default is none, as in Kafka. tansu 0.6 stores each record
/// uncompressed in sqlite and compresses every fetch response again; it
/// counts the fetch budget in compressed bytes but selects records by their
/// uncompressed size, so an lz4 fetch takes many queries, each over the
/// partition's remaining records. At 1M users (BENCHMARKS.md, run 18) raw
/// consume ran at 9.8k msg/s from lz4 batches and 25.5k from uncompressed
/// ones, and produce at 30k and 53k msg/s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Compression {
    Lz4,
    Gzip,
    None,
}

impl Compression {
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::Lz4 => "lz4",
            Compression::Gzip => "gzip",
            Compression::None => "none",
        }
    }
}

/// A producer with `acks=all`. `idempotence` turns on
/// `enable.idempotence` (librdkafka retries with sequence numbers, so a
/// retried batch is not written twice). It is off by default because tansu
/// 0.6 cannot take it across a broker restart: when in-flight requests are
/// lost, librdkafka bumps the producer epoch locally and tansu's storage
/// task panics on the unknown epoch ("more or less than one row",
/// tansu-storage lite.rs:503), after which every Produce to that broker
/// fails until it is restarted. The outbox already guarantees no loss;
/// without idempotence a lost ack can duplicate a record, which the
/// `users_created` sink absorbs (upsert by id). Turn it on for real Kafka.
/// `message_timeout` bounds how long a message may wait for a broker.
pub fn producer(
    brokers: &str,
    compression: Compression,
    message_timeout: Duration,
    idempotence: bool,
) -> Result<FutureProducer, KafkaError> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", idempotence.to_string())
        .set("acks", "all")
        .set("compression.type", compression.as_str())
        .set("linger.ms", "5")
        .set(
            "message.timeout.ms",
            message_timeout.as_millis().to_string(),
        )
        // Quiet the log when the broker is away on purpose (outage tests).
        .set("reconnect.backoff.max.ms", "2000")
        .create()
}

/// True for errors where waiting and sending again is the right response.
pub fn is_queue_full(e: &KafkaError) -> bool {
    matches!(
        e,
        KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)
    )
}
