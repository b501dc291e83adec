//! The Cassandra sink: sessions, value conversion, and `CassandraSinkExec`.

pub mod convert;
pub mod session;
pub mod sink;

pub use session::{SinkConnection, connect, table_columns};
pub use sink::{CassandraSinkExec, SinkConfig};
