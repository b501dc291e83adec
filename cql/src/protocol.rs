//! Native protocol v4 message bodies: request decoding and response encoding.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{CqlError, ErrorExtra, Result};
use crate::types::CqlType;

/// Reads protocol notation ([short], [string], [bytes], ...) from a body, failing with a
/// protocol error instead of panicking on truncated input.
pub struct Reader {
    buf: Bytes,
    pos: usize,
}

fn short_body() -> CqlError {
    CqlError::protocol("Not enough bytes to read the message body")
}

impl Reader {
    pub fn new(buf: Bytes) -> Reader {
        Reader { buf, pos: 0 }
    }
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    fn take(&mut self, n: usize) -> Result<Bytes> {
        if self.remaining() < n {
            return Err(short_body());
        }
        let b = self.buf.slice(self.pos..self.pos + n);
        self.pos += n;
        Ok(b)
    }
    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    pub fn u16(&mut self) -> Result<u16> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    pub fn i32(&mut self) -> Result<i32> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub fn i64(&mut self) -> Result<i64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(&b);
        Ok(i64::from_be_bytes(a))
    }
    pub fn string(&mut self) -> Result<String> {
        let n = self.u16()? as usize;
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| CqlError::protocol("invalid UTF-8 in [string]"))
    }
    pub fn long_string(&mut self) -> Result<String> {
        let n = self.i32()?;
        if n < 0 {
            return Err(CqlError::protocol("negative [long string] length"));
        }
        let b = self.take(n as usize)?;
        String::from_utf8(b.to_vec())
            .map_err(|_| CqlError::protocol("invalid UTF-8 in [long string]"))
    }
    pub fn short_bytes(&mut self) -> Result<Bytes> {
        let n = self.u16()? as usize;
        self.take(n)
    }
    /// `[bytes]`: None for a negative length (null).
    pub fn bytes(&mut self) -> Result<Option<Bytes>> {
        let n = self.i32()?;
        if n < 0 {
            return Ok(None);
        }
        Ok(Some(self.take(n as usize)?))
    }
    pub fn value(&mut self) -> Result<Value> {
        let n = self.i32()?;
        match n {
            -1 => Ok(Value::Null),
            -2 => Ok(Value::Unset),
            n if n < 0 => Err(CqlError::protocol(format!("invalid [value] length {n}"))),
            n => Ok(Value::Set(self.take(n as usize)?)),
        }
    }
    pub fn string_map(&mut self) -> Result<Vec<(String, String)>> {
        let n = self.u16()?;
        (0..n)
            .map(|_| Ok((self.string()?, self.string()?)))
            .collect()
    }
    pub fn string_list(&mut self) -> Result<Vec<String>> {
        let n = self.u16()?;
        (0..n).map(|_| self.string()).collect()
    }
    /// Skips a custom payload ([bytes map]) if the frame carries one.
    pub fn skip_bytes_map(&mut self) -> Result<()> {
        let n = self.u16()?;
        for _ in 0..n {
            self.string()?;
            self.bytes()?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Unset,
    Set(Bytes),
}

#[derive(Debug, Clone, Default)]
pub struct QueryParams {
    pub consistency: u16,
    pub values: Vec<Value>,
    pub names: Option<Vec<String>>,
    pub skip_metadata: bool,
    pub page_size: Option<i32>,
    pub paging_state: Option<Bytes>,
    pub serial_consistency: Option<u16>,
    pub default_timestamp: Option<i64>,
}

pub fn read_query_params(r: &mut Reader) -> Result<QueryParams> {
    let consistency = r.u16()?;
    let flags = r.u8()?;
    let mut p = QueryParams {
        consistency,
        ..Default::default()
    };
    if flags & 0x01 != 0 {
        let n = r.u16()?;
        let mut names = Vec::new();
        for _ in 0..n {
            if flags & 0x40 != 0 {
                names.push(r.string()?.to_ascii_lowercase());
            }
            p.values.push(r.value()?);
        }
        if flags & 0x40 != 0 {
            p.names = Some(names);
        }
    }
    p.skip_metadata = flags & 0x02 != 0;
    if flags & 0x04 != 0 {
        p.page_size = Some(r.i32()?);
    }
    if flags & 0x08 != 0 {
        p.paging_state = r.bytes()?;
    }
    if flags & 0x10 != 0 {
        p.serial_consistency = Some(r.u16()?);
    }
    if flags & 0x20 != 0 {
        p.default_timestamp = Some(r.i64()?);
    }
    Ok(p)
}

pub enum BatchStatement {
    Query(String, Vec<Value>),
    Prepared(Bytes, Vec<Value>),
}

pub struct BatchRequest {
    pub kind: u8,
    pub statements: Vec<BatchStatement>,
    pub consistency: u16,
    pub default_timestamp: Option<i64>,
}

pub fn read_batch(r: &mut Reader) -> Result<BatchRequest> {
    let kind = r.u8()?;
    if kind > 2 {
        return Err(CqlError::protocol(format!("invalid BATCH type {kind}")));
    }
    let n = r.u16()?;
    let mut statements = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let k = r.u8()?;
        let stmt_kind = match k {
            0 => Ok(r.long_string()?),
            1 => Err(r.short_bytes()?),
            _ => {
                return Err(CqlError::protocol(format!(
                    "invalid BATCH statement kind {k}"
                )));
            }
        };
        let nv = r.u16()?;
        let values = (0..nv).map(|_| r.value()).collect::<Result<Vec<_>>>()?;
        statements.push(match stmt_kind {
            Ok(q) => BatchStatement::Query(q, values),
            Err(id) => BatchStatement::Prepared(id, values),
        });
    }
    let consistency = r.u16()?;
    let flags = r.u8()?;
    if flags & 0x40 != 0 {
        return Err(CqlError::protocol(
            "named values in BATCH are not supported",
        ));
    }
    if flags & 0x10 != 0 {
        r.u16()?;
    }
    let default_timestamp = if flags & 0x20 != 0 {
        Some(r.i64()?)
    } else {
        None
    };
    Ok(BatchRequest {
        kind,
        statements,
        consistency,
        default_timestamp,
    })
}

// ------------------------------------------------------------------ responses

pub fn put_string(out: &mut BytesMut, s: &str) {
    // A [string] length is a u16: cut (on a char boundary) rather than corrupt the frame,
    // e.g. for an error message quoting a huge identifier.
    let mut end = s.len().min(u16::MAX as usize);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    out.put_u16(end as u16);
    out.put_slice(&s.as_bytes()[..end]);
}

pub fn put_short_bytes(out: &mut BytesMut, b: &[u8]) {
    out.put_u16(b.len() as u16);
    out.put_slice(b);
}

pub fn put_bytes(out: &mut BytesMut, b: Option<&[u8]>) {
    match b {
        Some(b) => {
            out.put_i32(b.len() as i32);
            out.put_slice(b);
        }
        None => out.put_i32(-1),
    }
}

pub fn put_string_multimap(out: &mut BytesMut, m: &[(&str, Vec<&str>)]) {
    out.put_u16(m.len() as u16);
    for (k, vs) in m {
        put_string(out, k);
        out.put_u16(vs.len() as u16);
        for v in vs {
            put_string(out, v);
        }
    }
}

#[derive(Debug, Clone)]
pub struct ColumnSpec {
    pub keyspace: String,
    pub table: String,
    pub name: String,
    pub ty: CqlType,
}

fn put_column_specs(out: &mut BytesMut, specs: &[ColumnSpec]) {
    // Global table spec when every column comes from the same table (always true for us).
    if let Some(first) = specs.first() {
        let global = specs
            .iter()
            .all(|s| s.keyspace == first.keyspace && s.table == first.table);
        if global {
            put_string(out, &first.keyspace);
            put_string(out, &first.table);
        }
        for s in specs {
            if !global {
                put_string(out, &s.keyspace);
                put_string(out, &s.table);
            }
            put_string(out, &s.name);
            s.ty.write_option(out);
        }
    }
}

fn metadata_flags(specs: &[ColumnSpec]) -> i32 {
    match specs.first() {
        Some(first)
            if specs
                .iter()
                .all(|s| s.keyspace == first.keyspace && s.table == first.table) =>
        {
            0x0001
        }
        _ => 0,
    }
}

pub fn put_rows_metadata(
    out: &mut BytesMut,
    specs: &[ColumnSpec],
    paging_state: Option<&[u8]>,
    no_metadata: bool,
) {
    let mut flags = if no_metadata {
        0x0004
    } else {
        metadata_flags(specs)
    };
    if paging_state.is_some() {
        flags |= 0x0002;
    }
    out.put_i32(flags);
    out.put_i32(specs.len() as i32);
    if let Some(p) = paging_state {
        put_bytes(out, Some(p));
    }
    if !no_metadata {
        put_column_specs(out, specs);
    }
}

pub const RESULT_VOID: i32 = 1;
pub const RESULT_ROWS: i32 = 2;
pub const RESULT_SET_KEYSPACE: i32 = 3;
pub const RESULT_PREPARED: i32 = 4;
pub const RESULT_SCHEMA_CHANGE: i32 = 5;

pub struct Rows {
    pub specs: Vec<ColumnSpec>,
    pub rows: Vec<Vec<Option<Bytes>>>,
    pub paging_state: Option<Bytes>,
}

pub fn encode_rows(rows: &Rows, skip_metadata: bool) -> BytesMut {
    let mut out = BytesMut::with_capacity(64 + rows.rows.len() * 32);
    out.put_i32(RESULT_ROWS);
    put_rows_metadata(
        &mut out,
        &rows.specs,
        rows.paging_state.as_deref(),
        skip_metadata,
    );
    out.put_i32(rows.rows.len() as i32);
    for r in &rows.rows {
        for v in r {
            put_bytes(&mut out, v.as_deref());
        }
    }
    out
}

pub fn encode_void() -> BytesMut {
    let mut out = BytesMut::with_capacity(4);
    out.put_i32(RESULT_VOID);
    out
}

pub fn encode_set_keyspace(ks: &str) -> BytesMut {
    let mut out = BytesMut::new();
    out.put_i32(RESULT_SET_KEYSPACE);
    put_string(&mut out, ks);
    out
}

#[derive(Debug, Clone)]
pub struct SchemaChange {
    pub change: &'static str,
    pub target: &'static str,
    pub keyspace: String,
    pub name: Option<String>,
}

pub fn put_schema_change(out: &mut BytesMut, sc: &SchemaChange) {
    put_string(out, sc.change);
    put_string(out, sc.target);
    put_string(out, &sc.keyspace);
    if let Some(n) = &sc.name {
        put_string(out, n);
    }
}

pub fn encode_schema_change(sc: &SchemaChange) -> BytesMut {
    let mut out = BytesMut::new();
    out.put_i32(RESULT_SCHEMA_CHANGE);
    put_schema_change(&mut out, sc);
    out
}

pub fn encode_schema_event(sc: &SchemaChange) -> BytesMut {
    let mut out = BytesMut::new();
    put_string(&mut out, "SCHEMA_CHANGE");
    put_schema_change(&mut out, sc);
    out
}

pub fn encode_prepared(
    id: &[u8],
    binds: &[ColumnSpec],
    pk_indexes: &[u16],
    result: Option<&[ColumnSpec]>,
) -> BytesMut {
    let mut out = BytesMut::new();
    out.put_i32(RESULT_PREPARED);
    put_short_bytes(&mut out, id);
    out.put_i32(metadata_flags(binds));
    out.put_i32(binds.len() as i32);
    out.put_i32(pk_indexes.len() as i32);
    for i in pk_indexes {
        out.put_u16(*i);
    }
    put_column_specs(&mut out, binds);
    match result {
        Some(specs) => put_rows_metadata(&mut out, specs, None, false),
        None => {
            out.put_i32(0x0004);
            out.put_i32(0);
        }
    }
    out
}

pub fn encode_error(e: &CqlError) -> BytesMut {
    let mut out = BytesMut::new();
    out.put_i32(e.code);
    put_string(&mut out, &e.message);
    match &e.extra {
        ErrorExtra::None => {}
        ErrorExtra::AlreadyExists { keyspace, table } => {
            put_string(&mut out, keyspace);
            put_string(&mut out, table);
        }
        ErrorExtra::Unprepared { id } => put_short_bytes(&mut out, id),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_params_are_protocol_errors() {
        let mut r = Reader::new(Bytes::from_static(&[0, 1, 0x05, 0, 1]));
        let e = read_query_params(&mut r).unwrap_err();
        assert_eq!(e.code, crate::error::PROTOCOL_ERROR);
    }

    #[test]
    fn params_with_values() {
        let mut b = BytesMut::new();
        b.put_u16(1);
        b.put_u8(0x01 | 0x04);
        b.put_u16(2);
        b.put_i32(1);
        b.put_u8(7);
        b.put_i32(-2);
        b.put_i32(100);
        let p = read_query_params(&mut Reader::new(b.freeze())).unwrap();
        assert_eq!(
            p.values,
            vec![Value::Set(Bytes::from_static(&[7])), Value::Unset]
        );
        assert_eq!(p.page_size, Some(100));
    }
}
