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
use crate::storage::{Cell, ColumnDef, ColumnKind, Liveness, RowMutation, Table, TableSchema};
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

pub fn encode_batch(records: &[LogRecord]) -> Vec<u8> {
    let mut w = W(Vec::new());
    w.u8(7);
    w.u32(records.len() as u32);
    for r in records {
        w.bytes(&r.encode());
    }
    w.0
}

// ------------------------------------------------------------------ record codec

struct W(Vec<u8>);
impl W {
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
        let mut w = W(Vec::with_capacity(128));
        match self {
            LogRecord::Batch(records) => return encode_batch(records),
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
            } => {
                w.u8(6);
                w.str(keyspace);
                w.str(table);
                w.0.extend_from_slice(id.as_bytes());
                w.u32(m.pk.len() as u32);
                for p in &m.pk {
                    w.bytes(p);
                }
                w.u32(m.ck.len() as u32);
                for c in &m.ck {
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
                w.u32(m.cells.len() as u32);
                for (col, c) in &m.cells {
                    w.u32(*col);
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
        }
        w.0
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
    pub fn apply_record(&self, rec: &LogRecord) {
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
                if let Ok(t) = self.table(keyspace, table)
                    && t.schema.id == *id
                {
                    t.apply(m);
                }
            }
            LogRecord::PutKeyspace {
                name,
                replication,
                durable_writes,
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
            LogRecord::DropKeyspace { name } => {
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
                let mut kss = self.keyspaces.write();
                if let Some(k) = kss.get_mut(keyspace) {
                    let schema = TableSchema::new(
                        keyspace.clone(),
                        name.clone(),
                        *id,
                        columns.clone(),
                        ck_desc.clone(),
                        options.clone(),
                    );
                    match k.tables.get(name) {
                        Some(t) if t.schema.id == *id => {}
                        _ => {
                            if let Some(old) =
                                k.tables.insert(name.clone(), Arc::new(Table::new(schema)))
                            {
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
                let mut kss = self.keyspaces.write();
                if let Some(k) = kss.get_mut(keyspace)
                    && let Some(old) = k.tables.get(name).filter(|t| t.schema.id == *id).cloned()
                {
                    let new = Arc::new(Table::new(TableSchema::new(
                        keyspace.clone(),
                        name.clone(),
                        *id,
                        columns.clone(),
                        ck_desc.clone(),
                        options.clone(),
                    )));
                    old.replace_into(&new);
                    k.tables.insert(name.clone(), new);
                }
                drop(kss);
                self.bump_version();
            }
            LogRecord::DropTable { keyspace, name } => {
                if let Some(k) = self.keyspaces.write().get_mut(keyspace)
                    && let Some(t) = k.tables.remove(name)
                {
                    t.dropped.store(true, AtomicOrdering::Release);
                    t.truncate(); // as for DropKeyspace
                }
                self.bump_version();
            }
            LogRecord::Truncate { keyspace, name } => {
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

    /// Every record needed to rebuild the current state.
    pub fn snapshot_records(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let kss = self.keyspaces.read();
        let mut tables = Vec::new();
        for k in kss.values() {
            commitlog::frame_record(
                &mut out,
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
                    &mut out,
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
        for t in tables {
            let s = &t.schema;
            t.dump(|m| {
                commitlog::frame_record(
                    &mut out,
                    &LogRecord::Mutation {
                        keyspace: s.keyspace.clone(),
                        table: s.name.clone(),
                        id: s.id,
                        m,
                    }
                    .encode(),
                );
            });
        }
        out
    }

    /// Loads snapshot + commit log segments from `dir`, writes a fresh snapshot, deletes the
    /// replayed segments and returns the number for the next segment.
    pub fn recover(&self, dir: &Path) -> std::io::Result<u64> {
        let mut applied = 0usize;
        let mut bad = 0usize;
        let mut apply = |payload: &[u8]| match LogRecord::decode(payload) {
            Some(rec) => {
                self.apply_record(&rec);
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
        commitlog::write_snapshot(dir, &self.snapshot_records())?;
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
