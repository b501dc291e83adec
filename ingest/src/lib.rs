//! ember-ingest: users from the randomuser.me API (or an offline, seeded
//! generator) → a Postgres outbox → Kafka, plus a rate-limited load producer.

pub mod api;
pub mod check;
pub mod cli;
pub mod generator;
pub mod handoff;
pub mod ingest;
pub mod kafka;
pub mod load;
pub mod metrics;
pub mod outbox;
pub mod pipeline;
pub mod producer;
pub mod record;
pub mod service;
