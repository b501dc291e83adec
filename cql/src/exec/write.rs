//! Writes: mutations from INSERT/UPDATE/DELETE/BATCH, conditional writes, commit log.

use super::select::column_value;
use super::*;
use crate::parser::CollOp;
use crate::schema::encode_mutation;

impl Engine {
    /// Builds mutations for all statements, applies them and waits for the commit log.
    pub(super) async fn run_writes(
        &self,
        plans: &[WritePlan],
        vals: &[&[Value]],
        default_ts: Option<i64>,
    ) -> Result<Outcome> {
        let now_ts = default_ts.unwrap_or_else(now_micros);
        let now_s = now_secs();
        let mut muts: Vec<Built> = Vec::new();
        for (w, v) in plans.iter().zip(vals) {
            if w.table.is_dropped() {
                return Err(CqlError::invalid(format!(
                    "table {}.{} does not exist",
                    w.table.schema.keyspace, w.table.schema.name
                )));
            }
            self.build_mutations(w, v, now_ts, now_s, &mut muts)?;
        }
        if plans.len() == 1 && plans[0].conditional {
            return self.run_conditional(&plans[0], muts, now_s).await;
        }
        let mut records = Vec::with_capacity(muts.len());
        for (t, mut m, ops) in muts {
            let s = &t.schema;
            // Encoded before the mutation moves into the table.
            let mut record = Vec::with_capacity(512);
            let applied = if ops.is_empty() {
                encode_mutation(&mut record, &s.keyspace, &s.name, &s.id, m.as_row_ref());
                t.apply(m)
            } else {
                let applied = t.apply_computed(&mut m, |row, static_row, m| {
                    compute_collection_ops(&t, row, static_row, &ops, m, now_s)
                })?;
                encode_mutation(&mut record, &s.keyspace, &s.name, &s.id, m.as_row_ref());
                applied
            };
            if !applied {
                return Err(CqlError::invalid(format!(
                    "table {}.{} was dropped or altered while writing; retry",
                    s.keyspace, s.name
                )));
            }
            records.push(record);
        }
        self.persist(records).await?;
        Ok(Outcome::Void)
    }

    /// Appends encoded records to the commit log (a batch as one record, so
    /// it is replayed all-or-nothing) and waits until the log has them.
    pub(super) async fn persist(&self, mut records: Vec<Vec<u8>>) -> Result<()> {
        let log = self.db.log.read().clone();
        let Some(log) = log else {
            return Ok(());
        };
        let payload = match records.len() {
            0 => return Ok(()),
            1 => records.pop().unwrap_or_default(),
            _ => crate::schema::encode_batch(&records),
        };
        let seq = log.append(&payload);
        log.wait_durable(seq)
            .await
            .map_err(|e| CqlError::server(format!("commit log failure: {e}")))
    }

    pub(super) fn build_mutations(
        &self,
        w: &WritePlan,
        vals: &[Value],
        now_ts: i64,
        now_s: i64,
        out: &mut Vec<Built>,
    ) -> Result<()> {
        let schema = &w.table.schema;
        let ts = match &w.ts {
            Some(v) => match v.resolve(vals)? {
                Resolved::Some(b) if b.len() == 8 => {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(&b);
                    i64::from_be_bytes(a)
                }
                Resolved::Some(_) => return Err(CqlError::invalid("Invalid timestamp value")),
                Resolved::Unset => now_ts,
                Resolved::Null => return Err(CqlError::invalid("Invalid null value of timestamp")),
            },
            None => now_ts,
        };
        let default_ttl: i32 = schema
            .options
            .iter()
            .find(|(k, _)| k == "default_time_to_live")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let ttl = match &w.ttl {
            Some(v) => match v.resolve(vals)? {
                Resolved::Some(b) if b.len() == 4 => i32::from_be_bytes([b[0], b[1], b[2], b[3]]),
                Resolved::Some(_) => return Err(CqlError::invalid("Invalid TTL value")),
                Resolved::Unset => default_ttl,
                Resolved::Null => 0,
            },
            None => default_ttl,
        };
        if ttl < 0 {
            return Err(CqlError::invalid(format!(
                "A TTL must be greater or equal to 0, but was {ttl}"
            )));
        }
        if ttl > 630_720_000 {
            return Err(CqlError::invalid(format!(
                "ttl is too large. requested ({ttl}) maximum (630720000)"
            )));
        }
        let expires_at = if ttl > 0 { now_s + i64::from(ttl) } else { 0 };
        let mut pk_cands = Vec::with_capacity(w.pk.len());
        for (k, v) in w.pk.iter().enumerate() {
            let name = &schema.columns[schema.pk[k]].name;
            let c = v.resolve(vals, name)?;
            // Like Cassandra: a partition key must serialize to at least one byte.
            if schema.pk.len() == 1 && c.iter().any(|b| b.is_empty()) {
                return Err(CqlError::invalid(format!(
                    "Key may not be empty (column {name})"
                )));
            }
            pk_cands.push(c);
        }
        let mut ck_cands = Vec::with_capacity(w.ck.len());
        for (k, v) in w.ck.iter().enumerate() {
            ck_cands.push(v.resolve(vals, &schema.columns[schema.ck[k]].name)?);
        }
        let mut cells = Vec::with_capacity(w.sets.len() + w.delete_cols.len());
        for (col, v) in &w.sets {
            let ty = &schema.columns[*col as usize].ty;
            // Cassandra stores an empty non-frozen collection as no value at all.
            let empty_collection = |b: &Bytes| {
                ty.is_collection() && !matches!(ty, CqlType::Frozen(_)) && b[..] == [0, 0, 0, 0]
            };
            match v.resolve(vals)? {
                Resolved::Unset => {}
                Resolved::Some(b) if empty_collection(&b) => cells.push((
                    *col,
                    Cell {
                        value: None,
                        ts,
                        ttl: 0,
                        local_deletion: now_s,
                    },
                )),
                Resolved::Null => cells.push((
                    *col,
                    Cell {
                        value: None,
                        ts,
                        ttl: 0,
                        local_deletion: now_s,
                    },
                )),
                Resolved::Some(b) => cells.push((
                    *col,
                    Cell {
                        value: Some(b),
                        ts,
                        ttl,
                        local_deletion: expires_at,
                    },
                )),
            }
        }
        for col in &w.delete_cols {
            cells.push((
                *col,
                Cell {
                    value: None,
                    ts,
                    ttl: 0,
                    local_deletion: now_s,
                },
            ));
        }
        let mut ops = Vec::with_capacity(w.coll_ops.len());
        for o in &w.coll_ops {
            let get = |v: &Val| -> Result<Option<Option<Bytes>>> {
                Ok(match v.resolve(vals)? {
                    Resolved::Some(b) => Some(Some(b)),
                    Resolved::Null => Some(None),
                    Resolved::Unset => None,
                })
            };
            let Some(a) = get(&o.a)? else { continue };
            let b = match &o.b {
                Some(v) => match get(v)? {
                    Some(b) => Some(b),
                    None => continue,
                },
                None => None,
            };
            ops.push(ResolvedOp {
                col: o.col,
                op: o.op,
                a,
                b,
                ts,
                ttl,
                expires_at,
            });
        }
        check_cartesian(&pk_cands)?;
        check_cartesian(&ck_cands)?;
        for pk in cartesian(&pk_cands) {
            let cks = if w.kind == WriteKind::Delete && w.ck.is_empty() {
                vec![Vec::new()]
            } else {
                cartesian(&ck_cands)
            };
            for ck in cks {
                let mut m = RowMutation {
                    pk: pk.clone(),
                    ck,
                    partition_delete: None,
                    row_delete: None,
                    marker: None,
                    cells: cells.clone(),
                };
                match w.kind {
                    // A static-only insert (no clustering key) creates no row.
                    WriteKind::Insert if m.ck.len() == schema.ck.len() => {
                        m.marker = Some(Liveness {
                            ts,
                            ttl,
                            expires_at,
                        });
                    }
                    WriteKind::Insert => {}
                    WriteKind::Update => {}
                    WriteKind::Delete => {
                        if w.delete_cols.is_empty() && w.coll_ops.is_empty() {
                            if schema.ck.is_empty() || w.ck.is_empty() {
                                if schema.ck.is_empty() {
                                    m.row_delete = Some(ts);
                                } else {
                                    m.partition_delete = Some(ts);
                                }
                            } else {
                                m.row_delete = Some(ts);
                            }
                        }
                    }
                }
                out.push((w.table.clone(), m, ops.clone()));
            }
        }
        Ok(())
    }

    pub(super) async fn run_conditional(
        &self,
        w: &WritePlan,
        muts: Vec<Built>,
        now_s: i64,
    ) -> Result<Outcome> {
        if muts.len() != 1 {
            return Err(CqlError::invalid(
                "IN on the primary key is not supported with conditional updates",
            ));
        }
        let Some((t, m, ops)) = muts.into_iter().next() else {
            return Err(CqlError::server("no mutation"));
        };
        if !ops.is_empty() {
            return Err(CqlError::invalid(
                "collection element operations are not supported with IF conditions by ember-cql",
            ));
        }
        let schema = &t.schema;
        let pkey = PKey::new(serialize_partition_key(&m.pk));
        let ck = t.ckey(m.ck.clone());
        let mut record = Vec::with_capacity(512);
        encode_mutation(
            &mut record,
            &schema.keyspace,
            &schema.name,
            &schema.id,
            m.as_row_ref(),
        );
        // Check and apply under the shard lock so concurrent IF NOT EXISTS see each other.
        let existing = {
            let mut shard = t.shard_for(pkey.token).write();
            let found = shard.partitions.get(&pkey).and_then(|p| {
                p.rows
                    .get(&ck)
                    .filter(|r| r.is_live(now_s))
                    .map(|r| (p.clone_key(), r.clone()))
            });
            let should_apply = match w.kind {
                WriteKind::Insert => found.is_none(),
                _ => found.is_some(),
            };
            if t.is_dropped() {
                return Err(CqlError::invalid(format!(
                    "table {}.{} was dropped or altered while writing; retry",
                    schema.keyspace, schema.name
                )));
            }
            if should_apply {
                t.apply_in(&mut shard, pkey.clone(), m);
                None
            } else {
                Some(found)
            }
        };
        let applied_spec = ColumnSpec {
            keyspace: schema.keyspace.clone(),
            table: schema.name.clone(),
            name: "[applied]".into(),
            ty: CqlType::Boolean,
        };
        match existing {
            None => {
                self.persist(vec![record]).await?;
                Ok(Outcome::RowsWithMetadata(Rows {
                    specs: vec![applied_spec],
                    rows: vec![vec![Some(Bytes::from_static(&[1]))]],
                    paging_state: None,
                }))
            }
            Some(None) => Ok(Outcome::RowsWithMetadata(Rows {
                specs: vec![applied_spec],
                rows: vec![vec![Some(Bytes::from_static(&[0]))]],
                paging_state: None,
            })),
            Some(Some((part, row))) => {
                let mut specs = vec![applied_spec];
                let mut vals = vec![Some(Bytes::from_static(&[0]))];
                for &i in &schema.star {
                    let c = &schema.columns[i];
                    specs.push(ColumnSpec {
                        keyspace: schema.keyspace.clone(),
                        table: schema.name.clone(),
                        name: c.name.clone(),
                        ty: c.ty.clone(),
                    });
                    vals.push(column_value(&t, &part, &ck, &row, i, now_s).cloned());
                }
                Ok(Outcome::RowsWithMetadata(Rows {
                    specs,
                    rows: vec![vals],
                    paging_state: None,
                }))
            }
        }
    }
}

/// Cassandra's default cap on the cartesian product of IN restrictions.
/// A mutation ready to apply, with collection operations still to be computed against the
/// stored row.
pub(super) type Built = (Arc<Table>, RowMutation, Vec<ResolvedOp>);

#[derive(Debug, Clone)]
pub(super) struct ResolvedOp {
    col: u32,
    op: ElemOp,
    /// None: a null operand.
    a: Option<Bytes>,
    b: Option<Option<Bytes>>,
    ts: i64,
    ttl: i32,
    expires_at: i64,
}

fn encode_items(items: &[types::CollectionItem], map: bool) -> Bytes {
    let mut out = BytesMut::new();
    out.put_i32(items.len() as i32);
    for (k, v) in items {
        out.put_i32(k.len() as i32);
        out.put_slice(k);
        if map {
            let v = v.as_deref().unwrap_or(&[]);
            out.put_i32(v.len() as i32);
            out.put_slice(v);
        }
    }
    out.freeze()
}

fn list_index(a: &Option<Bytes>, len: usize) -> Result<usize> {
    let idx = match a.as_deref() {
        Some([a, b, c, d]) => i32::from_be_bytes([*a, *b, *c, *d]),
        _ => return Err(CqlError::invalid("Invalid null or malformed list index")),
    };
    if idx < 0 || idx as usize >= len {
        return Err(CqlError::invalid(format!(
            "List index {idx} out of bound, list has size {len}"
        )));
    }
    Ok(idx as usize)
}

/// Computes new whole values for collection columns from their stored values and appends them
/// to `m` as cells (an empty collection becomes a tombstone, as in Cassandra).
fn compute_collection_ops(
    t: &Table,
    row: &Row,
    static_row: &Row,
    ops: &[ResolvedOp],
    m: &mut RowMutation,
    now_s: i64,
) -> Result<()> {
    let mut current: Vec<(u32, Vec<types::CollectionItem>)> = Vec::new();
    for o in ops {
        let cd = &t.schema.columns[o.col as usize];
        let (map, elem_ty) = match cd.ty.base() {
            CqlType::List(e) | CqlType::Set(e) => (false, (**e).clone()),
            CqlType::Map(k, _) => (true, (**k).clone()),
            other => {
                return Err(CqlError::invalid(format!(
                    "column {} of type {other} is not a collection",
                    cd.name
                )));
            }
        };
        let pos = match current.iter().position(|(c, _)| *c == o.col) {
            Some(p) => p,
            None => {
                let base = if cd.is_static { static_row } else { row };
                let stored = base
                    .cells
                    .get(o.col as usize)
                    .and_then(|c| c.as_ref())
                    .filter(|c| c.is_live(now_s))
                    .and_then(|c| c.value.as_ref())
                    .and_then(|v| types::decode_collection(v, map))
                    .unwrap_or_default();
                current.push((o.col, stored));
                current.len() - 1
            }
        };
        let items = &mut current[pos].1;
        let decode = |b: &Option<Bytes>, pairs: bool| -> Vec<types::CollectionItem> {
            b.as_deref()
                .and_then(|b| types::decode_collection(b, pairs))
                .unwrap_or_default()
        };
        let sort = |items: &mut Vec<types::CollectionItem>| {
            items.sort_by(|x, y| elem_ty.compare(&x.0, &y.0));
            items.dedup_by(|x, y| elem_ty.compare(&x.0, &y.0) == std::cmp::Ordering::Equal);
        };
        let is_list = matches!(cd.ty.base(), CqlType::List(_));
        match o.op {
            ElemOp::Coll(CollOp::Append) if is_list => items.extend(decode(&o.a, false)),
            ElemOp::Coll(CollOp::Prepend) => {
                let mut new = decode(&o.a, false);
                new.append(items);
                *items = new;
            }
            ElemOp::Coll(CollOp::Append) if map => {
                // New entries replace existing keys: stable sort keeps the first, so put them first.
                let mut new = decode(&o.a, true);
                new.append(items);
                *items = new;
                sort(items);
            }
            ElemOp::Coll(CollOp::Append) => {
                items.extend(decode(&o.a, false));
                sort(items);
            }
            ElemOp::Coll(CollOp::Remove) => {
                let rm = decode(&o.a, false);
                items.retain(|(k, _)| !rm.iter().any(|(r, _)| elem_ty.compare(k, r).is_eq()));
            }
            ElemOp::Put if map => {
                let Some(k) = &o.a else {
                    return Err(CqlError::invalid(format!(
                        "Invalid null map key for {}",
                        cd.name
                    )));
                };
                items.retain(|(x, _)| !elem_ty.compare(x, k).is_eq());
                if let Some(Some(v)) = &o.b {
                    items.push((k.to_vec(), Some(v.to_vec())));
                    sort(items);
                }
            }
            ElemOp::Put => {
                let i = list_index(&o.a, items.len())?;
                match &o.b {
                    Some(Some(v)) => items[i].0 = v.to_vec(),
                    _ => {
                        items.remove(i);
                    }
                }
            }
            ElemOp::Delete if map => {
                if let Some(k) = &o.a {
                    items.retain(|(x, _)| !elem_ty.compare(x, k).is_eq());
                }
            }
            ElemOp::Delete => {
                let i = list_index(&o.a, items.len())?;
                items.remove(i);
            }
        }
    }
    for (col, items) in current {
        let Some(o) = ops.iter().find(|o| o.col == col) else {
            continue;
        };
        let map = matches!(t.schema.columns[col as usize].ty.base(), CqlType::Map(..));
        m.cells.retain(|(c, _)| *c != col);
        m.cells.push((
            col,
            if items.is_empty() {
                Cell {
                    value: None,
                    ts: o.ts,
                    ttl: 0,
                    local_deletion: now_s,
                }
            } else {
                Cell {
                    value: Some(encode_items(&items, map)),
                    ts: o.ts,
                    ttl: o.ttl,
                    local_deletion: o.expires_at,
                }
            },
        ));
    }
    Ok(())
}

pub(super) const MAX_CARTESIAN: usize = 100;

pub(super) fn check_cartesian(cands: &[Vec<Bytes>]) -> Result<()> {
    let n = cands
        .iter()
        .fold(1usize, |acc, c| acc.saturating_mul(c.len()));
    if n > MAX_CARTESIAN {
        return Err(CqlError::invalid(format!(
            "IN restrictions combine into {n} keys, more than the maximum of {MAX_CARTESIAN}"
        )));
    }
    Ok(())
}

pub(super) fn cartesian(cands: &[Vec<Bytes>]) -> Vec<Vec<Bytes>> {
    let mut out: Vec<Vec<Bytes>> = vec![Vec::with_capacity(cands.len())];
    for c in cands {
        let mut next = Vec::with_capacity(out.len() * c.len());
        for prefix in &out {
            for v in c {
                let mut p = prefix.clone();
                p.push(v.clone());
                next.push(p);
            }
        }
        out = next;
    }
    out
}

impl Partition {
    pub(super) fn clone_key(&self) -> Partition {
        Partition {
            key_parts: self.key_parts.clone(),
            deleted_at: self.deleted_at,
            static_row: self.static_row.clone(),
            rows: Default::default(),
        }
    }
}
