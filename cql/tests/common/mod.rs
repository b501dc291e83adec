//! Shared helpers: an in-process server on a free port and a default scylla session.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use ember_cql::{Config, Server, ServerHandle, SyncMode};
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;

pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "ember-cql-test-{name}-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4()
    ));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

pub fn config(data_dir: Option<PathBuf>) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir,
        commitlog_sync: SyncMode::Group,
        commitlog_sync_period: Duration::from_millis(2),
        ..Config::default()
    }
}

pub async fn start(data_dir: Option<PathBuf>) -> ServerHandle {
    Server::start(config(data_dir))
        .await
        .expect("server starts")
}

/// A session with the driver's default settings (token-aware, schema metadata fetch).
pub async fn connect(handle: &ServerHandle) -> Session {
    SessionBuilder::new()
        .known_node_addr(handle.local_addr())
        .build()
        .await
        .expect("scylla driver connects")
}

/// Splits a failed request into the server's error kind and message.
pub fn db_err(e: scylla::errors::ExecutionError) -> (scylla::errors::DbError, String) {
    match e {
        scylla::errors::ExecutionError::LastAttemptError(
            scylla::errors::RequestAttemptError::DbError(k, m),
        ) => (k, m),
        other => panic!("expected a database error, got {other:?}"),
    }
}

pub async fn rows<T>(session: &Session, q: &str) -> Vec<T>
where
    T: for<'f, 'm> scylla::deserialize::row::DeserializeRow<'f, 'm>,
{
    session
        .query_unpaged(q, &[])
        .await
        .unwrap_or_else(|e| panic!("{q}: {e}"))
        .into_rows_result()
        .unwrap()
        .rows::<T>()
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

pub async fn exec(session: &Session, q: &str) {
    session
        .query_unpaged(q, &[])
        .await
        .unwrap_or_else(|e| panic!("{q}: {e}"));
}
