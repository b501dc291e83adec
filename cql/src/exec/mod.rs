//! Statement planning (binding names and literals against the schema, once per PREPARE) and
//! execution against storage.
//!
//! `plan` turns parsed statements into plans, `select` runs reads (with paging), `write`
//! builds and applies mutations, `ddl` runs schema statements.

mod ddl;
mod plan;
mod select;
mod write;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::Bound;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use parking_lot::RwLock;
use tokio::sync::broadcast;

use crate::error::{CqlError, Result};
use crate::parser::{
    self, BatchKind, Condition, Literal, Op, RelValue, Relation, SelectorExpr, Statement, Term,
    Using,
};
use crate::protocol::{ColumnSpec, QueryParams, Rows, SchemaChange, Value};
use crate::schema::{Db, LogRecord, columns_from_ast, is_system_keyspace};
use crate::storage::{
    CKey, Cell, ColumnKind, Liveness, PKey, Partition, Row, RowMutation, Table,
    serialize_partition_key,
};
use crate::system::{self, NodeInfo};
use crate::types::{self, CqlType};

pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A value position after planning.
#[derive(Debug, Clone)]
enum Val {
    Const(Option<Bytes>),
    Bind(usize),
}

enum Resolved {
    Null,
    Unset,
    Some(Bytes),
}

impl Val {
    fn resolve(&self, vals: &[Value]) -> Result<Resolved> {
        match self {
            Val::Const(Some(b)) => Ok(Resolved::Some(b.clone())),
            Val::Const(None) => Ok(Resolved::Null),
            Val::Bind(i) => match vals.get(*i) {
                Some(Value::Set(b)) => Ok(Resolved::Some(b.clone())),
                Some(Value::Null) => Ok(Resolved::Null),
                Some(Value::Unset) => Ok(Resolved::Unset),
                None => Err(CqlError::invalid(format!(
                    "There were {} markers(?) in CQL but {} bound variables",
                    i + 1,
                    vals.len()
                ))),
            },
        }
    }
}

/// Candidate values for a key column or a relation (`=` gives one, `IN` several).
#[derive(Debug, Clone)]
enum Vals {
    List(Vec<Val>),
    /// `IN ?`: a bound list of values.
    InBind(usize),
}

impl Vals {
    fn resolve(&self, vals: &[Value], col: &str) -> Result<Vec<Bytes>> {
        match self {
            Vals::List(l) => {
                let mut out = Vec::with_capacity(l.len());
                for v in l {
                    match v.resolve(vals)? {
                        Resolved::Some(b) => out.push(b),
                        Resolved::Null => {
                            return Err(CqlError::invalid(format!(
                                "Invalid null value in condition for column {col}"
                            )));
                        }
                        Resolved::Unset => {
                            return Err(CqlError::invalid(format!(
                                "Invalid unset value for column {col}"
                            )));
                        }
                    }
                }
                Ok(out)
            }
            Vals::InBind(i) => match Val::Bind(*i).resolve(vals)? {
                Resolved::Some(b) => Ok(types::decode_collection(&b, false)
                    .ok_or_else(|| {
                        CqlError::invalid(format!("Invalid list value for IN on column {col}"))
                    })?
                    .into_iter()
                    .map(|(e, _)| Bytes::from(e))
                    .collect()),
                _ => Err(CqlError::invalid(format!(
                    "Invalid null or unset value for IN on column {col}"
                ))),
            },
        }
    }
}

#[derive(Debug, Clone)]
enum Source {
    User(Arc<Table>),
    /// Regenerated at each execution.
    System(String, String),
}

#[derive(Debug, Clone)]
enum OutExpr {
    Column(usize),
    WriteTime(usize),
    Ttl(usize),
    Token,
}

#[derive(Debug, Clone)]
struct Filter {
    col: usize,
    op: Op,
    vals: Vals,
}

#[derive(Debug, Clone)]
pub struct SelectPlan {
    source: Source,
    template: Arc<Table>,
    out: Vec<OutExpr>,
    count: bool,
    distinct: bool,
    /// Per partition key column when the partition key is fully restricted by = / IN.
    pk: Option<Vec<Vals>>,
    filters: Vec<Filter>,
    /// `token(pk) op value` restrictions.
    token_filters: Vec<(Op, Val)>,
    limit: Option<Val>,
    per_partition_limit: Option<Val>,
    reversed: bool,
    specs: Vec<ColumnSpec>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum WriteKind {
    Insert,
    Update,
    Delete,
}

#[derive(Debug, Clone)]
pub struct WritePlan {
    table: Arc<Table>,
    kind: WriteKind,
    pk: Vec<Vals>,
    ck: Vec<Vals>,
    sets: Vec<(u32, Val)>,
    /// Specific columns to delete; empty means the whole row / partition.
    delete_cols: Vec<u32>,
    ttl: Option<Val>,
    ts: Option<Val>,
    /// IF NOT EXISTS (insert) or IF EXISTS (update/delete).
    conditional: bool,
    /// Collection element operations, applied read-modify-write under the shard lock.
    coll_ops: Vec<CollectionOp>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum ElemOp {
    Coll(parser::CollOp),
    /// `m[k] = v`, `l[i] = v`
    Put,
    /// `DELETE m[k]`, `DELETE l[i]`
    Delete,
}

#[derive(Debug, Clone)]
struct CollectionOp {
    col: u32,
    op: ElemOp,
    /// The operand, or the key/index for Put and Delete.
    a: Val,
    /// The value for Put.
    b: Option<Val>,
}

#[derive(Debug, Clone)]
pub enum Plan {
    Select(Box<SelectPlan>),
    Write(Box<WritePlan>),
    Batch(Vec<WritePlan>),
    Other(Statement),
}

pub struct Prepared {
    pub id: Bytes,
    pub plan: Plan,
    pub binds: Vec<ColumnSpec>,
    pub marker_names: Vec<Option<String>>,
    pub pk_indexes: Vec<u16>,
    pub result: Option<Vec<ColumnSpec>>,
}

impl Prepared {
    fn is_stale(&self) -> bool {
        let t = match &self.plan {
            Plan::Select(s) => match &s.source {
                Source::User(t) => Some(t),
                Source::System(..) => None,
            },
            Plan::Write(w) => Some(&w.table),
            Plan::Batch(ws) => return ws.iter().any(|w| w.table.is_dropped()),
            Plan::Other(_) => None,
        };
        t.is_some_and(|t| t.is_dropped())
    }
}

pub enum Outcome {
    Void,
    Rows(Rows),
    /// Rows that must carry full metadata whatever skip_metadata says (LWT results).
    RowsWithMetadata(Rows),
    SetKeyspace(String),
    SchemaChange(SchemaChange),
    Prepared(Arc<Prepared>),
}

/// Per-connection state that statements depend on.
#[derive(Clone)]
pub struct Ctx {
    pub keyspace: Option<String>,
    pub local_addr: SocketAddr,
}

pub struct Engine {
    pub db: Arc<Db>,
    prepared: RwLock<HashMap<Bytes, Arc<Prepared>>>,
    pub node: NodeInfo,
    pub events: broadcast::Sender<SchemaChange>,
}

impl Engine {
    pub fn new(db: Arc<Db>, node: NodeInfo) -> Engine {
        let (events, _) = broadcast::channel(256);
        Engine {
            db,
            prepared: RwLock::new(HashMap::new()),
            node,
            events,
        }
    }

    fn resolve_ks(&self, q: &parser::QName, ctx: &Ctx) -> Result<String> {
        match (&q.keyspace, &ctx.keyspace) {
            (Some(k), _) => Ok(k.clone()),
            (None, Some(k)) => Ok(k.clone()),
            (None, None) => Err(CqlError::invalid(
                "No keyspace has been specified. USE a keyspace, or explicitly specify keyspace.tablename",
            )),
        }
    }

    fn user_table(&self, ks: &str, name: &str) -> Result<Arc<Table>> {
        let kss = self.db.keyspaces.read();
        let k = kss.get(ks).ok_or_else(|| {
            if is_system_keyspace(ks) {
                CqlError::invalid(format!("table {ks}.{name} does not exist"))
            } else {
                CqlError::invalid(format!("keyspace {ks} does not exist"))
            }
        })?;
        k.tables
            .get(name)
            .cloned()
            .ok_or_else(|| CqlError::invalid(format!("table {ks}.{name} does not exist")))
    }

    fn source(&self, ks: &str, name: &str, ctx: &Ctx) -> Result<(Source, Arc<Table>)> {
        if is_system_keyspace(ks) {
            if let Some(t) = system::build(&self.db, &self.node, ctx.local_addr, ks, name) {
                return Ok((Source::System(ks.to_string(), name.to_string()), t));
            }
            return Err(CqlError::invalid(format!(
                "table {ks}.{name} does not exist"
            )));
        }
        let t = self.user_table(ks, name)?;
        Ok((Source::User(t.clone()), t))
    }

    /// Parses and plans a statement in the context of the connection's keyspace.
    pub fn prepare(&self, query: &str, ctx: &Ctx) -> Result<Arc<Prepared>> {
        let id = {
            use md5::{Digest, Md5};
            let mut h = Md5::new();
            h.update(ctx.keyspace.as_deref().unwrap_or("").as_bytes());
            h.update([0u8]);
            h.update(query.as_bytes());
            Bytes::copy_from_slice(&h.finalize())
        };
        if let Some(p) = self.prepared.read().get(&id)
            && !p.is_stale()
        {
            return Ok(p.clone());
        }
        let p = Arc::new(self.plan(query, ctx, id.clone())?);
        self.prepared.write().insert(id, p.clone());
        Ok(p)
    }

    /// Plans a one-off QUERY without caching it (its text may embed literals).
    pub fn plan_query(&self, query: &str, ctx: &Ctx) -> Result<Arc<Prepared>> {
        Ok(Arc::new(self.plan(query, ctx, Bytes::new())?))
    }

    pub fn get_prepared(&self, id: &Bytes) -> Result<Arc<Prepared>> {
        match self.prepared.read().get(id) {
            Some(p) if !p.is_stale() => Ok(p.clone()),
            _ => Err(CqlError::unprepared(id.clone())),
        }
    }

    /// Executes a planned statement with bound values.
    pub async fn execute(&self, p: &Prepared, params: &QueryParams, ctx: &Ctx) -> Result<Outcome> {
        let values = self.order_values(p, params)?;
        if values.len() != p.binds.len() {
            return Err(CqlError::invalid(format!(
                "There were {} markers(?) in CQL but {} bound variables",
                p.binds.len(),
                values.len()
            )));
        }
        for (v, spec) in values.iter().zip(&p.binds) {
            if let Value::Set(b) = v {
                types::validate(&spec.ty, b).map_err(|e| {
                    CqlError::invalid(format!(
                        "Invalid value for column {} of type {}: {e}",
                        spec.name, spec.ty
                    ))
                })?;
            }
        }
        match &p.plan {
            Plan::Select(s) => {
                let table = match &s.source {
                    Source::User(t) => t.clone(),
                    Source::System(ks, name) => {
                        system::build(&self.db, &self.node, ctx.local_addr, ks, name).ok_or_else(
                            || CqlError::invalid(format!("table {ks}.{name} does not exist")),
                        )?
                    }
                };
                Ok(Outcome::Rows(self.run_select(s, &table, &values, params)?))
            }
            Plan::Write(w) => {
                self.run_writes(
                    std::slice::from_ref(w.as_ref()),
                    &[&values],
                    params.default_timestamp,
                )
                .await
            }
            Plan::Batch(ws) => {
                let vs: Vec<&[Value]> = ws.iter().map(|_| &values[..]).collect();
                self.run_writes(ws, &vs, params.default_timestamp).await
            }
            Plan::Other(st) => self.run_other(st, ctx).await,
        }
    }

    fn order_values(&self, p: &Prepared, params: &QueryParams) -> Result<Vec<Value>> {
        let Some(names) = &params.names else {
            return Ok(params.values.clone());
        };
        let mut out = vec![Value::Unset; p.binds.len()];
        for (name, v) in names.iter().zip(&params.values) {
            let idx = p
                .marker_names
                .iter()
                .position(|m| m.as_deref() == Some(name))
                .or_else(|| p.binds.iter().position(|b| &b.name == name))
                .ok_or_else(|| CqlError::invalid(format!("Unknown named bind marker {name}")))?;
            out[idx] = v.clone();
        }
        Ok(out)
    }

    pub async fn execute_batch(
        &self,
        items: &[(Arc<Prepared>, Vec<Value>)],
        default_ts: Option<i64>,
    ) -> Result<Outcome> {
        let mut plans = Vec::new();
        let mut vals: Vec<&[Value]> = Vec::new();
        for (p, v) in items {
            if v.len() != p.binds.len() {
                return Err(CqlError::invalid(format!(
                    "There were {} markers(?) in CQL but {} bound variables",
                    p.binds.len(),
                    v.len()
                )));
            }
            for (val, spec) in v.iter().zip(&p.binds) {
                if let Value::Set(b) = val {
                    types::validate(&spec.ty, b).map_err(|e| {
                        CqlError::invalid(format!("Invalid value for column {}: {e}", spec.name))
                    })?;
                }
            }
            match &p.plan {
                Plan::Write(w) => {
                    if w.conditional {
                        return Err(CqlError::invalid(
                            "conditional statements in batches are not supported by ember-cql",
                        ));
                    }
                    plans.push(w.as_ref().clone());
                    vals.push(v);
                }
                Plan::Batch(ws) => {
                    for w in ws {
                        plans.push(w.clone());
                        vals.push(v);
                    }
                }
                _ => {
                    return Err(CqlError::invalid(
                        "Invalid statement in batch: only UPDATE, INSERT and DELETE statements are allowed.",
                    ));
                }
            }
        }
        self.run_writes(&plans, &vals, default_ts).await
    }
}
