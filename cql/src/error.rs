//! Errors as the native protocol reports them (`ERROR` message codes).

use bytes::Bytes;

pub const SERVER_ERROR: i32 = 0x0000;
pub const PROTOCOL_ERROR: i32 = 0x000A;
pub const BAD_CREDENTIALS: i32 = 0x0100;
pub const SYNTAX_ERROR: i32 = 0x2000;
pub const UNAUTHORIZED: i32 = 0x2100;
pub const INVALID: i32 = 0x2200;
pub const CONFIG_ERROR: i32 = 0x2300;
pub const ALREADY_EXISTS: i32 = 0x2400;
pub const UNPREPARED: i32 = 0x2500;

#[derive(Debug, Clone, thiserror::Error)]
#[error("{message} (code 0x{code:04X})")]
pub struct CqlError {
    pub code: i32,
    pub message: String,
    pub extra: ErrorExtra,
}

#[derive(Debug, Clone)]
pub enum ErrorExtra {
    None,
    AlreadyExists { keyspace: String, table: String },
    Unprepared { id: Bytes },
}

impl CqlError {
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        CqlError {
            code,
            message: message.into(),
            extra: ErrorExtra::None,
        }
    }
    pub fn syntax(message: impl Into<String>) -> Self {
        Self::new(SYNTAX_ERROR, message)
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(INVALID, message)
    }
    pub fn protocol(message: impl Into<String>) -> Self {
        Self::new(PROTOCOL_ERROR, message)
    }
    pub fn server(message: impl Into<String>) -> Self {
        Self::new(SERVER_ERROR, message)
    }
    pub fn already_exists(keyspace: &str, table: &str) -> Self {
        let message = if table.is_empty() {
            format!("Keyspace {keyspace} already exists")
        } else {
            format!("Object {keyspace}.{table} already exists")
        };
        CqlError {
            code: ALREADY_EXISTS,
            message,
            extra: ErrorExtra::AlreadyExists {
                keyspace: keyspace.to_string(),
                table: table.to_string(),
            },
        }
    }
    pub fn unprepared(id: Bytes) -> Self {
        let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
        CqlError {
            code: UNPREPARED,
            message: format!("Prepared query with ID {hex} not found"),
            extra: ErrorExtra::Unprepared { id },
        }
    }
}

pub type Result<T> = std::result::Result<T, CqlError>;
