//! ember-cql: a single-node store speaking the Cassandra native protocol v4, for development
//! and CI. See README.md for what it supports and what it does not.

pub mod commitlog;
pub mod error;
pub mod exec;
pub mod frame;
pub mod parser;
pub mod protocol;
pub mod schema;
pub mod server;
pub mod storage;
pub mod system;
pub mod types;

pub use commitlog::SyncMode;
pub use server::{Config, Server, ServerHandle};
