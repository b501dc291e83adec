//! Reads: partition lookup or token-ordered scan, filtering, projection and paging.

use super::write::{cartesian, check_cartesian};
use super::*;

pub(super) fn encode_paging(pkey: &PKey, ck: Option<&[Bytes]>, emitted: u64) -> Bytes {
    let mut out = BytesMut::new();
    out.put_i64(pkey.token);
    out.put_u32(pkey.key.len() as u32);
    out.put_slice(&pkey.key);
    match ck {
        Some(ck) => {
            out.put_u8(1);
            out.put_u16(ck.len() as u16);
            for c in ck {
                out.put_u32(c.len() as u32);
                out.put_slice(c);
            }
        }
        None => out.put_u8(0),
    }
    out.put_u64(emitted);
    out.freeze()
}

pub(super) struct Resume {
    pkey: PKey,
    ck: Option<Vec<Bytes>>,
    emitted: u64,
}

pub(super) fn decode_paging(b: &[u8]) -> Result<Resume> {
    let bad = || CqlError::protocol("Invalid value for the paging state");
    let mut r = crate::protocol::Reader::new(Bytes::copy_from_slice(b));
    let token = r.i64().map_err(|_| bad())?;
    let n = r.i32().map_err(|_| bad())? as u32 as usize;
    let mut key = Vec::with_capacity(n.min(1 << 16));
    for _ in 0..n {
        key.push(r.u8().map_err(|_| bad())?);
    }
    let ck = if r.u8().map_err(|_| bad())? == 1 {
        let n = r.u16().map_err(|_| bad())?;
        let mut v = Vec::new();
        for _ in 0..n {
            let l = r.i32().map_err(|_| bad())? as u32 as usize;
            let mut c = Vec::with_capacity(l.min(1 << 16));
            for _ in 0..l {
                c.push(r.u8().map_err(|_| bad())?);
            }
            v.push(Bytes::from(c));
        }
        Some(v)
    } else {
        None
    };
    let emitted = r.i64().map_err(|_| bad())? as u64;
    Ok(Resume {
        pkey: PKey {
            token,
            key: Bytes::from(key),
        },
        ck,
        emitted,
    })
}

pub(super) fn matches(ty: &CqlType, v: Option<&[u8]>, op: Op, cands: &[Bytes]) -> bool {
    let Some(v) = v else {
        return false;
    };
    use std::cmp::Ordering::*;
    match op {
        Op::Eq => cands.iter().any(|c| ty.compare(v, c) == Equal),
        Op::In => cands.iter().any(|c| ty.compare(v, c) == Equal),
        Op::Ne => cands.iter().all(|c| ty.compare(v, c) != Equal),
        Op::Lt => cands.iter().all(|c| ty.compare(v, c) == Less),
        Op::Le => cands.iter().all(|c| ty.compare(v, c) != Greater),
        Op::Gt => cands.iter().all(|c| ty.compare(v, c) == Greater),
        Op::Ge => cands.iter().all(|c| ty.compare(v, c) != Less),
        Op::Contains => {
            let map = matches!(ty.base(), CqlType::Map(..));
            let Some(items) = types::decode_collection(v, map) else {
                return false;
            };
            let elem_ty = match ty.base() {
                CqlType::List(t) | CqlType::Set(t) | CqlType::Map(_, t) => t,
                _ => return false,
            };
            cands.iter().all(|c| {
                items.iter().any(|(k, val)| {
                    let e = if map {
                        val.as_deref().unwrap_or(&[])
                    } else {
                        &k[..]
                    };
                    elem_ty.compare(e, c) == Equal
                })
            })
        }
        Op::ContainsKey => {
            let (CqlType::Map(kt, _), Some(items)) = (ty.base(), types::decode_collection(v, true))
            else {
                return false;
            };
            cands
                .iter()
                .all(|c| items.iter().any(|(k, _)| kt.compare(k, c) == Equal))
        }
    }
}

pub(super) fn column_value<'a>(
    t: &Table,
    part: &'a Partition,
    ck: &'a CKey,
    row: &'a Row,
    col: usize,
    now: i64,
) -> Option<&'a Bytes> {
    let c = &t.schema.columns[col];
    match c.kind {
        ColumnKind::PartitionKey => part.key_parts.get(c.position as usize),
        ColumnKind::Clustering => ck.values.get(c.position as usize),
        ColumnKind::Regular => live_cell(t, part, row, col, now).and_then(|c| c.value.as_ref()),
    }
}

/// The live cell of a regular or static column for this row.
pub(super) fn live_cell<'a>(
    t: &Table,
    part: &'a Partition,
    row: &'a Row,
    col: usize,
    now: i64,
) -> Option<&'a Cell> {
    let row = if t.schema.columns[col].is_static {
        &part.static_row
    } else {
        row
    };
    row.cells
        .get(col)
        .and_then(|c| c.as_ref())
        .filter(|c| c.is_live(now))
}

pub(super) fn bigint(v: i64) -> Option<Bytes> {
    Some(Bytes::copy_from_slice(&v.to_be_bytes()))
}

impl Engine {
    pub(super) fn run_select(
        &self,
        s: &SelectPlan,
        t: &Table,
        vals: &[Value],
        params: &QueryParams,
    ) -> Result<Rows> {
        let now = now_secs();
        let positive = |v: &Option<Val>, what: &str| -> Result<Option<u64>> {
            match v {
                None => Ok(None),
                Some(v) => match v.resolve(vals)? {
                    Resolved::Some(b) if b.len() == 4 => {
                        let n = i32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                        if n <= 0 {
                            return Err(CqlError::invalid(format!(
                                "{what} must be strictly positive"
                            )));
                        }
                        Ok(Some(n as u64))
                    }
                    Resolved::Unset => Ok(None),
                    _ => Err(CqlError::invalid(format!("Invalid {what} value"))),
                },
            }
        };
        // LIMIT bounds the rows returned; COUNT(*) returns one row, so it counts everything.
        let limit = if s.count {
            None
        } else {
            positive(&s.limit, "LIMIT")?
        };
        let ppl = positive(&s.per_partition_limit, "PER PARTITION LIMIT")?;
        let mut filters = Vec::with_capacity(s.filters.len());
        for f in &s.filters {
            let c = &t.schema.columns[f.col];
            filters.push((f.col, f.op, f.vals.resolve(vals, &c.name)?));
        }
        let (mut tok_lo, mut tok_hi) = (i64::MIN, i64::MAX);
        for (op, v) in &s.token_filters {
            let t = match v.resolve(vals)? {
                Resolved::Some(b) if b.len() == 8 => {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(&b);
                    i64::from_be_bytes(a)
                }
                _ => return Err(CqlError::invalid("Invalid token value")),
            };
            // Out-of-range bounds (token > MAX, token < MIN) select nothing.
            let (lo, hi) = match op {
                Op::Eq => (t, t),
                Op::Gt => (
                    t.saturating_add(1),
                    if t == i64::MAX { i64::MIN } else { i64::MAX },
                ),
                Op::Ge => (t, i64::MAX),
                Op::Le => (i64::MIN, t),
                Op::Lt => (
                    if t == i64::MIN { i64::MAX } else { i64::MIN },
                    t.saturating_sub(1),
                ),
                _ => {
                    return Err(CqlError::invalid(
                        "token() supports only =, <, <=, > and >=",
                    ));
                }
            };
            tok_lo = tok_lo.max(lo);
            tok_hi = tok_hi.min(hi);
        }
        let token_ok = |t: i64| t >= tok_lo && t <= tok_hi;
        let pkeys: Option<Vec<(PKey, Vec<Bytes>)>> = match &s.pk {
            None => None,
            Some(pk) => {
                let mut cands = Vec::with_capacity(pk.len());
                for (k, v) in pk.iter().enumerate() {
                    cands.push(v.resolve(vals, &t.schema.columns[t.schema.pk[k]].name)?);
                }
                check_cartesian(&cands)?;
                let mut keys: Vec<(PKey, Vec<Bytes>)> = cartesian(&cands)
                    .into_iter()
                    .map(|parts| (PKey::new(serialize_partition_key(&parts)), parts))
                    .collect();
                keys.sort_by(|a, b| a.0.cmp(&b.0));
                keys.dedup_by(|a, b| a.0 == b.0);
                Some(keys)
            }
        };
        let page_size = if s.count {
            None
        } else {
            params.page_size.filter(|&p| p > 0).map(|p| p as u64)
        };
        let resume = match &params.paging_state {
            Some(b) if !s.count => Some(decode_paging(b)?),
            _ => None,
        };
        let mut emitted = resume.as_ref().map_or(0, |r| r.emitted);
        let mut in_page = 0u64;
        let mut rows_out: Vec<Vec<Option<Bytes>>> = Vec::new();
        let mut count: i64 = 0;
        let mut paging_state = None;
        let mut done = limit.is_some_and(|l| emitted >= l);

        // Visits one partition; returns false to stop the scan.
        let empty_ck = t.ckey(Vec::new());
        let static_rows_ok = t.schema.columns.iter().any(|c| c.is_static)
            && filters.iter().all(|(c, _, _)| {
                let c = &t.schema.columns[*c];
                c.is_static || c.kind == ColumnKind::PartitionKey
            });
        let mut visit = |pkey: &PKey, part: &Partition, resume_ck: Option<&Vec<Bytes>>| -> bool {
            if done {
                return false;
            }
            if !token_ok(pkey.token) {
                // Partitions are in token order: past the upper bound nothing more matches.
                return pkey.token < tok_lo;
            }
            let rows: Box<dyn Iterator<Item = (&CKey, &Row)>> = match (resume_ck, s.reversed) {
                (Some(ck), false) => Box::new(
                    part.rows
                        .range((Bound::Excluded(t.ckey(ck.clone())), Bound::Unbounded)),
                ),
                (Some(ck), true) => Box::new(
                    part.rows
                        .range((Bound::Unbounded, Bound::Excluded(t.ckey(ck.clone()))))
                        .rev(),
                ),
                (None, false) => Box::new(part.rows.iter()),
                (None, true) => Box::new(part.rows.iter().rev()),
            };
            // A partition with static values but no rows reads as one row with null
            // clustering and regular columns, as in Cassandra.
            let static_only = resume_ck.is_none()
                && static_rows_ok
                && part.static_row.is_live(now)
                && !part.rows.values().any(|r| r.is_live(now));
            let rows = rows.chain(static_only.then_some((&empty_ck, &part.static_row)));
            let mut in_partition = 0u64;
            for (ck, row) in rows {
                if !row.is_live(now) {
                    continue;
                }
                let ok = filters.iter().all(|(col, op, cands)| {
                    matches(
                        &t.schema.columns[*col].ty,
                        column_value(t, part, ck, row, *col, now).map(|b| &b[..]),
                        *op,
                        cands,
                    )
                });
                if !ok {
                    continue;
                }
                if s.count {
                    count += 1;
                } else {
                    let mut r = Vec::with_capacity(s.out.len());
                    for o in &s.out {
                        r.push(match o {
                            OutExpr::Column(i) => column_value(t, part, ck, row, *i, now).cloned(),
                            OutExpr::Token => bigint(pkey.token),
                            OutExpr::WriteTime(i) => {
                                live_cell(t, part, row, *i, now).and_then(|c| bigint(c.ts))
                            }
                            OutExpr::Ttl(i) => live_cell(t, part, row, *i, now)
                                .filter(|c| c.ttl > 0)
                                .map(|c| {
                                    Bytes::copy_from_slice(
                                        &((c.local_deletion - now) as i32).to_be_bytes(),
                                    )
                                }),
                        });
                    }
                    rows_out.push(r);
                }
                emitted += 1;
                in_page += 1;
                in_partition += 1;
                if limit.is_some_and(|l| emitted >= l) {
                    done = true;
                    return false;
                }
                let partition_done = s.distinct || ppl.is_some_and(|p| in_partition >= p);
                if page_size.is_some_and(|p| in_page >= p) {
                    paging_state = Some(encode_paging(
                        pkey,
                        if partition_done {
                            None
                        } else {
                            Some(&ck.values)
                        },
                        emitted,
                    ));
                    done = true;
                    return false;
                }
                if partition_done {
                    break;
                }
            }
            true
        };

        match &pkeys {
            Some(keys) => {
                for (pkey, _) in keys {
                    let resume_ck = match &resume {
                        Some(r) if *pkey < r.pkey => continue,
                        Some(r) if *pkey == r.pkey => match &r.ck {
                            None => continue,
                            Some(ck) => Some(ck),
                        },
                        _ => None,
                    };
                    let shard = t.shard_for(pkey.token).read();
                    if let Some(part) = shard.partitions.get(pkey)
                        && !visit(pkey, part, resume_ck)
                    {
                        break;
                    }
                }
            }
            None => {
                let start_token = resume.as_ref().map_or(tok_lo, |r| r.pkey.token.max(tok_lo));
                let start_shard = t
                    .shards
                    .iter()
                    .position(|s| std::ptr::eq(s, t.shard_for(start_token)))
                    .unwrap_or(0);
                'outer: for shard in &t.shards[start_shard..] {
                    let shard = shard.read();
                    let lower = match &resume {
                        Some(r) if r.pkey.token < tok_lo => Bound::Included(PKey {
                            token: tok_lo,
                            key: Bytes::new(),
                        }),
                        Some(r) if r.ck.is_some() => Bound::Included(r.pkey.clone()),
                        Some(r) => Bound::Excluded(r.pkey.clone()),
                        None => Bound::Included(PKey {
                            token: tok_lo,
                            key: Bytes::new(),
                        }),
                    };
                    for (pkey, part) in shard.partitions.range((lower, Bound::Unbounded)) {
                        let resume_ck = match &resume {
                            Some(r) if *pkey == r.pkey => r.ck.as_ref(),
                            _ => None,
                        };
                        if !visit(pkey, part, resume_ck) {
                            break 'outer;
                        }
                    }
                }
            }
        }
        if s.count {
            return Ok(Rows {
                specs: s.specs.clone(),
                rows: vec![vec![bigint(count)]],
                paging_state: None,
            });
        }
        Ok(Rows {
            specs: s.specs.clone(),
            rows: rows_out,
            paging_state,
        })
    }
}
