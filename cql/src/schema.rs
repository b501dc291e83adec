//! The database: keyspaces and tables, schema changes, and the commit-log record format that
//! both DDL and data mutations are persisted in.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering as AtomicOrdering;

use bytes::Bytes;
use parking_lot::RwLock;

use crate::commitlog::{self, CommitLog};
use crate::error::{CqlError, Result};
use crate::storage::{
    Cell, ColumnDef, ColumnKind, Liveness, RowMutation, RowRef, Table, TableSchema,
};
use crate::types::CqlType;

pub struct KeyspaceDef {
    pub name: String,
    pub replication: Vec<(String, String)>,
    pub durable_writes: bool,
    pub tables: BTreeMap<String, Arc<Table>>,
}

pub struct Db {
    pub keyspaces: RwLock<BTreeMap<String, KeyspaceDef>>,
    pub schema_version: RwLock<uuid::Uuid>,
    pub log: RwLock<Option<Arc<CommitLog>>>,
    pub data_dir: Option<PathBuf>,
}

pub const SYSTEM_KEYSPACES: &[&str] = &[
    "system",
    "system_schema",
    "system_auth",
    "system_distributed",
    "system_traces",
    "system_views",
    "system_virtual_schema",
];

pub fn is_system_keyspace(ks: &str) -> bool {
    SYSTEM_KEYSPACES.contains(&ks)
}

/// A persisted change. Replaying records in log order rebuilds the state; data mutations carry
/// resolved timestamps, so replaying one twice is harmless.
#[derive(Debug, Clone)]
pub enum LogRecord {
    PutKeyspace {
        name: String,
        replication: Vec<(String, String)>,
        durable_writes: bool,
    },
    DropKeyspace {
        name: String,
    },
    CreateTable {
        keyspace: String,
        name: String,
        id: uuid::Uuid,
        columns: Vec<ColumnDef>,
        ck_desc: Vec<bool>,
        options: Vec<(String, String)>,
    },
    /// Same fields as CreateTable; replaces the definition of the table with this id and
    /// keeps its data (ALTER TABLE ADD appends columns, so column ids stay valid).
    AlterTable {
        keyspace: String,
        name: String,
        id: uuid::Uuid,
        columns: Vec<ColumnDef>,
        ck_desc: Vec<bool>,
        options: Vec<(String, String)>,
    },
    DropTable {
        keyspace: String,
        name: String,
    },
    Truncate {
        keyspace: String,
        name: String,
    },
    Mutation {
        keyspace: String,
        table: String,
        id: uuid::Uuid,
        m: RowMutation,
    },
    /// Several records written as one, so a batch is replayed all-or-nothing.
    Batch(Vec<LogRecord>),
}

/// A batch record of already encoded records.
pub fn encode_batch(records: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w = W(&mut out);
    w.u8(7);
    w.u32(records.len() as u32);
    for r in records {
        w.bytes(r);
    }
    out
}

/// Encodes a mutation record into `out`, from borrowed parts (what
/// `LogRecord::Mutation` encodes to).
pub fn encode_mutation(
    out: &mut Vec<u8>,
    keyspace: &str,
    table: &str,
    id: &uuid::Uuid,
    m: RowRef<'_>,
) {
    let mut w = W(out);
    w.u8(6);
    w.str(keyspace);
    w.str(table);
    w.0.extend_from_slice(id.as_bytes());
    w.u32(m.pk.len() as u32);
    for p in m.pk {
        w.bytes(p);
    }
    w.u32(m.ck.len() as u32);
    for c in m.ck {
        w.bytes(c);
    }
    w.opt_i64(m.partition_delete);
    w.opt_i64(m.row_delete);
    match &m.marker {
        Some(l) => {
            w.u8(1);
            w.i64(l.ts);
            w.i32(l.ttl);
            w.i64(l.expires_at);
        }
        None => w.u8(0),
    }
    w.u32(m.cells.iter().count() as u32);
    for (col, c) in m.cells.iter() {
        w.u32(col);
        w.i64(c.ts);
        w.i32(c.ttl);
        w.i64(c.local_deletion);
        match &c.value {
            Some(v) => {
                w.u8(1);
                w.bytes(v);
            }
            None => w.u8(0),
        }
    }
}

// ------------------------------------------------------------------ record codec

struct W<'a>(&'a mut Vec<u8>);
impl W<'_> {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn i32(&mut self, v: i32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
    }
    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    fn opt_i64(&mut self, v: Option<i64>) {
        match v {
            Some(x) => {
                self.u8(1);
                self.i64(x);
            }
            None => self.u8(0),
        }
    }
    fn pairs(&mut self, p: &[(String, String)]) {
        self.u32(p.len() as u32);
        for (k, v) in p {
            self.str(k);
            self.str(v);
        }
    }
}

struct R<'a>(&'a [u8]);
impl<'a> R<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn str(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }
    fn uuid(&mut self) -> Option<uuid::Uuid> {
        uuid::Uuid::from_slice(self.take(16)?).ok()
    }
    fn opt_i64(&mut self) -> Option<Option<i64>> {
        Some(if self.u8()? == 1 {
            Some(self.i64()?)
        } else {
            None
        })
    }
    fn pairs(&mut self) -> Option<Vec<(String, String)>> {
        let n = self.u32()?;
        (0..n).map(|_| Some((self.str()?, self.str()?))).collect()
    }
    fn vec_bytes(&mut self) -> Option<Vec<Bytes>> {
        let n = self.u32()?;
        (0..n)
            .map(|_| Some(Bytes::copy_from_slice(self.bytes()?)))
            .collect()
    }
}

impl LogRecord {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        let mut w = W(&mut out);
        match self {
            LogRecord::Batch(records) => {
                return encode_batch(&records.iter().map(LogRecord::encode).collect::<Vec<_>>());
            }
            LogRecord::PutKeyspace {
                name,
                replication,
                durable_writes,
            } => {
                w.u8(1);
                w.str(name);
                w.pairs(replication);
                w.u8(u8::from(*durable_writes));
            }
            LogRecord::DropKeyspace { name } => {
                w.u8(2);
                w.str(name);
            }
            LogRecord::CreateTable {
                keyspace,
                name,
                id,
                columns,
                ck_desc,
                options,
            }
            | LogRecord::AlterTable {
                keyspace,
                name,
                id,
                columns,
                ck_desc,
                options,
            } => {
                w.u8(if matches!(self, LogRecord::AlterTable { .. }) {
                    8
                } else {
                    3
                });
                w.str(keyspace);
                w.str(name);
                w.0.extend_from_slice(id.as_bytes());
                w.u32(columns.len() as u32);
                for c in columns {
                    w.str(&c.name);
                    w.str(&c.ty.to_string());
                    w.u8(match c.kind {
                        ColumnKind::PartitionKey => 0,
                        ColumnKind::Clustering => 1,
                        ColumnKind::Regular if c.is_static => 3,
                        ColumnKind::Regular => 2,
                    });
                    w.i32(c.position);
                }
                w.u32(ck_desc.len() as u32);
                for d in ck_desc {
                    w.u8(u8::from(*d));
                }
                w.pairs(options);
            }
            LogRecord::DropTable { keyspace, name } => {
                w.u8(4);
                w.str(keyspace);
                w.str(name);
            }
            LogRecord::Truncate { keyspace, name } => {
                w.u8(5);
                w.str(keyspace);
                w.str(name);
            }
            LogRecord::Mutation {
                keyspace,
                table,
                id,
                m,
            } => encode_mutation(w.0, keyspace, table, id, m.as_row_ref()),
        }
        out
    }

    pub fn decode(b: &[u8]) -> Option<LogRecord> {
        let mut r = R(b);
        let rec = match r.u8()? {
            1 => LogRecord::PutKeyspace {
                name: r.str()?,
                replication: r.pairs()?,
                durable_writes: r.u8()? == 1,
            },
            2 => LogRecord::DropKeyspace { name: r.str()? },
            tag @ (3 | 8) => {
                let keyspace = r.str()?;
                let name = r.str()?;
                let id = r.uuid()?;
                let n = r.u32()?;
                let mut columns = Vec::new();
                for _ in 0..n {
                    let cname = r.str()?;
                    let ty = crate::parser::parse_type(&r.str()?).ok()?;
                    let tag = r.u8()?;
                    let kind = match tag {
                        0 => ColumnKind::PartitionKey,
                        1 => ColumnKind::Clustering,
                        _ => ColumnKind::Regular,
                    };
                    columns.push(ColumnDef {
                        name: cname,
                        ty,
                        kind,
                        position: r.i32()?,
                        is_static: tag == 3,
                    });
                }
                let n = r.u32()?;
                let ck_desc = (0..n)
                    .map(|_| Some(r.u8()? == 1))
                    .collect::<Option<Vec<_>>>()?;
                let options = r.pairs()?;
                if tag == 8 {
                    LogRecord::AlterTable {
                        keyspace,
                        name,
                        id,
                        columns,
                        ck_desc,
                        options,
                    }
                } else {
                    LogRecord::CreateTable {
                        keyspace,
                        name,
                        id,
                        columns,
                        ck_desc,
                        options,
                    }
                }
            }
            4 => LogRecord::DropTable {
                keyspace: r.str()?,
                name: r.str()?,
            },
            5 => LogRecord::Truncate {
                keyspace: r.str()?,
                name: r.str()?,
            },
            6 => {
                let keyspace = r.str()?;
                let table = r.str()?;
                let id = r.uuid()?;
                let pk = r.vec_bytes()?;
                let ck = r.vec_bytes()?;
                let partition_delete = r.opt_i64()?;
                let row_delete = r.opt_i64()?;
                let marker = if r.u8()? == 1 {
                    Some(Liveness {
                        ts: r.i64()?,
                        ttl: r.i32()?,
                        expires_at: r.i64()?,
                    })
                } else {
                    None
                };
                let n = r.u32()?;
                let mut cells = Vec::with_capacity(n.min(4096) as usize);
                for _ in 0..n {
                    let col = r.u32()?;
                    let ts = r.i64()?;
                    let ttl = r.i32()?;
                    let local_deletion = r.i64()?;
                    let value = if r.u8()? == 1 {
                        Some(Bytes::copy_from_slice(r.bytes()?))
                    } else {
                        None
                    };
                    cells.push((
                        col,
                        Cell {
                            value,
                            ts,
                            ttl,
                            local_deletion,
                        },
                    ));
                }
                LogRecord::Mutation {
                    keyspace,
                    table,
                    id,
                    m: RowMutation {
                        pk,
                        ck,
                        partition_delete,
                        row_delete,
                        marker,
                        cells,
                    },
                }
            }
            7 => {
                let n = r.u32()?;
                let mut v = Vec::with_capacity(n.min(4096) as usize);
                for _ in 0..n {
                    v.push(LogRecord::decode(r.bytes()?)?);
                }
                LogRecord::Batch(v)
            }
            _ => return None,
        };
        Some(rec)
    }
}

impl Db {
    pub fn new(data_dir: Option<PathBuf>) -> Db {
        Db {
            keyspaces: RwLock::new(BTreeMap::new()),
            schema_version: RwLock::new(uuid::Uuid::new_v4()),
            log: RwLock::new(None),
            data_dir,
        }
    }

    pub fn table(&self, ks: &str, name: &str) -> Result<Arc<Table>> {
        let kss = self.keyspaces.read();
        let k = kss
            .get(ks)
            .ok_or_else(|| CqlError::invalid(format!("Keyspace {ks} does not exist")))?;
        k.tables
            .get(name)
            .cloned()
            .ok_or_else(|| CqlError::invalid(format!("unconfigured table {name}")))
    }

    fn bump_version(&self) {
        *self.schema_version.write() = uuid::Uuid::new_v4();
    }

    /// Applies a record to the in-memory state. Used both live (after validation) and during
    /// replay, so it tolerates records that no longer apply.
    pub fn apply_record(&self, rec: LogRecord) {
        match rec {
            LogRecord::Batch(records) => {
                for r in records {
                    self.apply_record(r);
                }
            }
            LogRecord::Mutation {
                keyspace,
                table,
                id,
                m,
            } => {
                if let Ok(t) = self.table(&keyspace, &table)
                    && t.schema.id == id
                {
                    t.apply(m);
                }
            }
            LogRecord::PutKeyspace {
                ref name,
                ref replication,
                ref durable_writes,
            } => {
                let mut kss = self.keyspaces.write();
                let k = kss.entry(name.clone()).or_insert_with(|| KeyspaceDef {
                    name: name.clone(),
                    replication: Vec::new(),
                    durable_writes: true,
                    tables: BTreeMap::new(),
                });
                k.replication = replication.clone();
                k.durable_writes = *durable_writes;
                drop(kss);
                self.bump_version();
            }
            LogRecord::DropKeyspace { ref name } => {
                if let Some(k) = self.keyspaces.write().remove(name) {
                    for t in k.tables.values() {
                        t.dropped.store(true, AtomicOrdering::Release);
                        // Cached prepared statements still hold the table:
                        // free its rows now, not when the last one goes.
                        t.truncate();
                    }
                }
                self.bump_version();
            }
            LogRecord::CreateTable {
                keyspace,
                name,
                id,
                columns,
                ck_desc,
                options,
            } => {
                let schema = TableSchema::new(keyspace, name, id, columns, ck_desc, options);
                let mut kss = self.keyspaces.write();
                if let Some(k) = kss.get_mut(&schema.keyspace) {
                    match k.tables.get(&schema.name) {
                        Some(t) if t.schema.id == schema.id => {}
                        _ => {
                            let name = schema.name.clone();
                            if let Some(old) = k.tables.insert(name, Arc::new(Table::new(schema))) {
                                old.dropped.store(true, AtomicOrdering::Release);
                            }
                        }
                    }
                }
                drop(kss);
                self.bump_version();
            }
            LogRecord::AlterTable {
                keyspace,
                name,
                id,
                columns,
                ck_desc,
                options,
            } => {
                let schema = TableSchema::new(keyspace, name, id, columns, ck_desc, options);
                let mut kss = self.keyspaces.write();
                if let Some(k) = kss.get_mut(&schema.keyspace)
                    && let Some(old) = k
                        .tables
                        .get(&schema.name)
                        .filter(|t| t.schema.id == schema.id)
                        .cloned()
                {
                    let name = schema.name.clone();
                    let new = Arc::new(Table::new(schema));
                    old.replace_into(&new);
                    k.tables.insert(name, new);
                }
                drop(kss);
                self.bump_version();
            }
            LogRecord::DropTable {
                ref keyspace,
                ref name,
            } => {
                if let Some(k) = self.keyspaces.write().get_mut(keyspace)
                    && let Some(t) = k.tables.remove(name)
                {
                    t.dropped.store(true, AtomicOrdering::Release);
                    t.truncate(); // as for DropKeyspace
                }
                self.bump_version();
            }
            LogRecord::Truncate {
                ref keyspace,
                ref name,
            } => {
                if let Ok(t) = self.table(keyspace, name) {
                    t.truncate();
                }
            }
        }
    }

    /// Persists a record (if there is a log); returns the sequence to wait for.
    pub fn log_append(&self, rec: &LogRecord) -> Option<(Arc<CommitLog>, u64)> {
        let log = self.log.read().clone()?;
        let seq = log.append(&rec.encode());
        Some((log, seq))
    }

    /// Writes every record needed to rebuild the current state to `out`,
    /// one chunk of rows at a time (a snapshot of a million rows is hundreds
    /// of MB: built in memory first, its growth alone cost a third of a
    /// compaction's CPU).
    pub fn write_snapshot(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        let mut head = Vec::new();
        let kss = self.keyspaces.read();
        let mut tables = Vec::new();
        for k in kss.values() {
            commitlog::frame_record(
                &mut head,
                &LogRecord::PutKeyspace {
                    name: k.name.clone(),
                    replication: k.replication.clone(),
                    durable_writes: k.durable_writes,
                }
                .encode(),
            );
            for t in k.tables.values() {
                let s = &t.schema;
                commitlog::frame_record(
                    &mut head,
                    &LogRecord::CreateTable {
                        keyspace: s.keyspace.clone(),
                        name: s.name.clone(),
                        id: s.id,
                        columns: s.columns.clone(),
                        ck_desc: s.ck_desc.clone(),
                        options: s.options.clone(),
                    }
                    .encode(),
                );
                tables.push(t.clone());
            }
        }
        drop(kss);
        out.write_all(&head)?;
        for t in tables {
            let s = &t.schema;
            t.dump(
                |chunk, row| {
                    commitlog::frame_with(chunk, |payload| {
                        encode_mutation(payload, &s.keyspace, &s.name, &s.id, row)
                    })
                },
                |chunk| out.write_all(chunk),
            )?;
        }
        Ok(())
    }

    /// Loads snapshot + commit log segments from `dir`, writes a fresh snapshot, deletes the
    /// replayed segments and returns the number for the next segment.
    pub fn recover(&self, dir: &Path) -> std::io::Result<u64> {
        let mut applied = 0usize;
        let mut bad = 0usize;
        let mut apply = |payload: &[u8]| match LogRecord::decode(payload) {
            Some(rec) => {
                self.apply_record(rec);
                applied += 1;
            }
            None => bad += 1,
        };
        let snap = dir.join(commitlog::SNAPSHOT_FILE);
        if snap.exists() {
            commitlog::read_records(&snap, &mut apply)?;
        }
        let segments = commitlog::list_segments(dir)?;
        for (_, path) in &segments {
            commitlog::read_records(path, &mut apply)?;
        }
        if bad > 0 {
            tracing::warn!(bad, "undecodable commit log records skipped");
        }
        tracing::info!(
            records = applied,
            segments = segments.len(),
            "replayed snapshot and commit log"
        );
        commitlog::write_snapshot(dir, |out| self.write_snapshot(out))?;
        for (_, path) in &segments {
            std::fs::remove_file(path)?;
        }
        Ok(segments.last().map_or(1, |(n, _)| n + 1))
    }
}

/// Builds a table's column definitions from CREATE TABLE.
pub fn columns_from_ast(
    ct: &crate::parser::CreateTable,
    ks: &str,
) -> Result<(Vec<ColumnDef>, Vec<bool>)> {
    let mut columns = Vec::new();
    for c in &ct.columns {
        if columns.iter().any(|x: &ColumnDef| x.name == c.name) {
            return Err(CqlError::invalid(format!(
                "Multiple definition of identifier {}",
                c.name
            )));
        }
        if c.is_static && ct.clustering.is_empty() {
            return Err(CqlError::invalid(format!(
                "Static column {} cannot be added to a table without clustering columns ({ks}.{})",
                c.name, ct.name.name
            )));
        }
        if matches!(c.ty.base(), CqlType::Counter) {
            return Err(CqlError::invalid(format!(
                "counter column {} is not supported by ember-cql",
                c.name
            )));
        }
        columns.push(ColumnDef {
            name: c.name.clone(),
            ty: c.ty.clone(),
            kind: ColumnKind::Regular,
            position: -1,
            is_static: c.is_static,
        });
    }
    let mut mark = |name: &str, kind: ColumnKind, pos: usize| -> Result<()> {
        let c = columns.iter_mut().find(|c| c.name == name).ok_or_else(|| {
            CqlError::invalid(format!(
                "Unknown definition {name} referenced in PRIMARY KEY"
            ))
        })?;
        if c.kind != ColumnKind::Regular {
            return Err(CqlError::invalid(format!(
                "Column {name} appears twice in PRIMARY KEY"
            )));
        }
        if c.is_static {
            return Err(CqlError::invalid(format!(
                "Static column {name} cannot be part of the PRIMARY KEY"
            )));
        }
        if c.ty.is_collection() && !matches!(c.ty, CqlType::Frozen(_)) {
            return Err(CqlError::invalid(format!(
                "Invalid non-frozen collection type {} for PRIMARY KEY component {name}",
                c.ty
            )));
        }
        c.kind = kind;
        c.position = pos as i32;
        Ok(())
    };
    for (i, n) in ct.partition_key.iter().enumerate() {
        mark(n, ColumnKind::PartitionKey, i)?;
    }
    for (i, n) in ct.clustering.iter().enumerate() {
        mark(n, ColumnKind::Clustering, i)?;
    }
    let mut ck_desc = vec![false; ct.clustering.len()];
    if !ct.clustering_order.is_empty() {
        for (i, (c, desc)) in ct.clustering_order.iter().enumerate() {
            if ct.clustering.get(i) != Some(c) {
                return Err(CqlError::invalid(format!(
                    "CLUSTERING ORDER BY must list the clustering columns in order; {c} is out of place in {ks}.{}",
                    ct.name.name
                )));
            }
            ck_desc[i] = *desc;
        }
    }
    Ok((columns, ck_desc))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, ty: CqlType, kind: ColumnKind, position: i32, st: bool) -> ColumnDef {
        ColumnDef {
            name: name.into(),
            ty,
            kind,
            position,
            is_static: st,
        }
    }

    fn cell(value: Option<&[u8]>, ts: i64, ttl: i32, local_deletion: i64) -> Cell {
        Cell {
            value: value.map(Bytes::copy_from_slice),
            ts,
            ttl,
            local_deletion,
        }
    }

    fn int(v: i32) -> Bytes {
        Bytes::copy_from_slice(&v.to_be_bytes())
    }

    /// The framed payloads of a snapshot, in order.
    fn payloads(snapshot: &[u8]) -> Vec<&[u8]> {
        let mut out = Vec::new();
        let mut rest = snapshot;
        while !rest.is_empty() {
            let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
            let crc = u32::from_be_bytes(rest[4..8].try_into().unwrap());
            let payload = &rest[8..8 + len];
            assert_eq!(crc32fast::hash(payload), crc, "record {} crc", out.len());
            out.push(payload);
            rest = &rest[8 + len..];
        }
        out
    }

    /// A snapshot encodes stored rows in place; the records must be exactly
    /// what the commit log's own encoder writes for the same mutations, and
    /// replaying them must rebuild the same state: static cells, partition
    /// and row tombstones, markers, expiring cells and cell tombstones.
    #[test]
    fn snapshot_streams_records_that_rebuild_every_kind_of_row() {
        let db = Db::new(None);
        db.apply_record(LogRecord::PutKeyspace {
            name: "ks".into(),
            replication: vec![("class".into(), "SimpleStrategy".into())],
            durable_writes: true,
        });
        let id = uuid::Uuid::new_v4();
        db.apply_record(LogRecord::CreateTable {
            keyspace: "ks".into(),
            name: "t".into(),
            id,
            columns: vec![
                col("p", CqlType::Int, ColumnKind::PartitionKey, 0, false),
                col("c", CqlType::Int, ColumnKind::Clustering, 0, false),
                col("s", CqlType::Text, ColumnKind::Regular, -1, true),
                col("v", CqlType::Text, ColumnKind::Regular, -1, false),
            ],
            ck_desc: vec![false],
            options: Vec::new(),
        });
        let m = |p: i32, ck: Option<i32>| RowMutation {
            pk: vec![int(p)],
            ck: ck.map(int).into_iter().collect(),
            partition_delete: None,
            row_delete: None,
            marker: None,
            cells: Vec::new(),
        };
        let marker = Some(Liveness {
            ts: 10,
            ttl: 0,
            expires_at: 0,
        });
        let muts = vec![
            RowMutation {
                cells: vec![(2, cell(Some(b"static"), 10, 0, 0))],
                ..m(1, None)
            },
            RowMutation {
                marker,
                cells: vec![(3, cell(Some(b"expiring"), 10, 60, 4_000_000_000))],
                ..m(1, Some(1))
            },
            RowMutation {
                marker,
                cells: vec![(3, cell(None, 11, 0, 1_700_000_000))],
                ..m(1, Some(2))
            },
            RowMutation {
                row_delete: Some(12),
                ..m(1, Some(3))
            },
            RowMutation {
                partition_delete: Some(5),
                ..m(2, None)
            },
            RowMutation {
                marker,
                cells: vec![(3, cell(Some(b"after the tombstone"), 10, 0, 0))],
                ..m(2, Some(1))
            },
        ];
        for mutation in muts {
            db.apply_record(LogRecord::Mutation {
                keyspace: "ks".into(),
                table: "t".into(),
                id,
                m: mutation,
            });
        }
        let mut snapshot = Vec::new();
        db.write_snapshot(&mut snapshot).unwrap();
        let records = payloads(&snapshot);
        let mut mutations = Vec::new();
        for payload in &records {
            let rec = LogRecord::decode(payload).expect("decodable record");
            assert_eq!(&rec.encode()[..], *payload, "the log's encoder agrees");
            if let LogRecord::Mutation { m, .. } = rec {
                mutations.push(m);
            }
        }
        // Partition 1: static row, 3 rows; partition 2: its tombstone, 1 row.
        assert_eq!(records.len(), 2 + 6, "keyspace, table and 6 mutations");
        assert_eq!(mutations.len(), 6);
        let statics: Vec<_> = mutations.iter().filter(|m| m.ck.is_empty()).collect();
        assert!(statics.iter().any(|m| m.partition_delete == Some(5)));
        assert!(statics.iter().any(|m| m.cells.len() == 1
            && m.cells[0].0 == 2
            && m.cells[0].1.value.as_deref() == Some(&b"static"[..])));
        let row = |c: i32| {
            mutations
                .iter()
                .find(|m| m.ck.first() == Some(&int(c)) && m.pk[0] == int(1))
                .unwrap_or_else(|| panic!("row (1, {c}) in the snapshot"))
        };
        assert_eq!(row(1).cells[0].1.ttl, 60);
        assert_eq!(row(1).marker, marker);
        assert_eq!(row(2).cells[0].1.value, None);
        assert_eq!(row(3).row_delete, Some(12));

        let again = Db::new(None);
        for payload in &records {
            again.apply_record(LogRecord::decode(payload).unwrap());
        }
        let mut second = Vec::new();
        again.write_snapshot(&mut second).unwrap();
        assert_eq!(
            second, snapshot,
            "replaying the snapshot rebuilds the same state"
        );
    }
}
