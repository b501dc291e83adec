//! CQL sessions, one per contact-point set per process, shared by every task
//! (the driver multiplexes). A failed connect is not cached: the next task
//! tries again, which is how a sink rides out a store outage.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use parking_lot::Mutex;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::statement::prepared::PreparedStatement;
use tokio::sync::OnceCell;

/// Where and as whom to connect.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SinkConnection {
    pub contact_points: Vec<String>,
    pub username: Option<String>,
    pub password: Option<String>,
}

pub struct Connected {
    pub session: Session,
    prepared: Mutex<HashMap<String, PreparedStatement>>,
}

impl Connected {
    /// A prepared statement, prepared once per session.
    pub async fn prepare(&self, cql: &str) -> Result<PreparedStatement, String> {
        if let Some(p) = self.prepared.lock().get(cql) {
            return Ok(p.clone());
        }
        let p = self
            .session
            .prepare(cql)
            .await
            .map_err(|e| format!("preparing `{cql}`: {e}"))?;
        self.prepared.lock().insert(cql.to_string(), p.clone());
        Ok(p)
    }
}

type Cell = Arc<OnceCell<Arc<Connected>>>;
static SESSIONS: LazyLock<Mutex<HashMap<SinkConnection, Cell>>> = LazyLock::new(Default::default);

pub async fn connect(conn: &SinkConnection) -> Result<Arc<Connected>, String> {
    let cell = SESSIONS.lock().entry(conn.clone()).or_default().clone();
    cell.get_or_try_init(|| async {
        let mut b = SessionBuilder::new().known_nodes(&conn.contact_points);
        if let (Some(u), Some(p)) = (&conn.username, &conn.password) {
            b = b.user(u, p);
        }
        let session = b.build().await.map_err(|e| {
            format!(
                "cannot connect to Cassandra at {}: {e}",
                conn.contact_points.join(",")
            )
        })?;
        Ok(Arc::new(Connected {
            session,
            prepared: Mutex::new(HashMap::new()),
        }))
    })
    .await
    .cloned()
}

/// Column name → (CQL type, kind) of a table, from system_schema.
pub async fn table_columns(
    c: &Connected,
    keyspace: &str,
    table: &str,
) -> Result<Vec<(String, String, String)>, String> {
    let res = c
        .session
        .query_unpaged(
            "SELECT column_name, type, kind FROM system_schema.columns WHERE keyspace_name = ? AND table_name = ?",
            (keyspace, table),
        )
        .await
        .map_err(|e| format!("reading the columns of {keyspace}.{table}: {e}"))?;
    let rows = res.into_rows_result().map_err(|e| e.to_string())?;
    let cols = rows
        .rows::<(String, String, String)>()
        .map_err(|e| e.to_string())?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    Ok(cols)
}
