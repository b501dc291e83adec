//! The Kafka source: offset-range planning, watermarks, and the scan that
//! runs on executors.

pub mod consumer;
pub mod ranges;
pub mod scan;

pub use ranges::{OffsetRange, PartitionOffsets, TopicPartition, backlog, plan_ranges};
pub use scan::{KafkaScanConfig, KafkaScanExec, ScanReport, kafka_source_schema};
