//! Planning: resolving names, types and bind markers against the schema.

use super::*;
use crate::parser::{Assignment, CollOp};

/// Cassandra's exact wording; tools match on it.
pub(super) const FILTERING_MSG: &str = "Cannot execute this query as it might involve data filtering and thus may have unpredictable performance. If you want to execute this query despite the performance unpredictability, use ALLOW FILTERING";

/// Converts a literal for column `name`, naming the column in the error like Cassandra does
/// (`Invalid STRING constant (x) for "k" of type int`).
fn literal_for(ty: &CqlType, lit: &Literal, name: &str) -> Result<Option<Bytes>> {
    types::literal_to_value(ty, lit).map_err(|mut e| {
        e.message = e
            .message
            .replacen(" for type ", &format!(" for \"{name}\" of type "), 1);
        e
    })
}

/// Collects the column spec of each bind marker while planning.
#[derive(Default)]
pub(super) struct Binder {
    binds: Vec<Option<ColumnSpec>>,
}

impl Binder {
    pub(super) fn spec(&mut self, i: usize, name: &str, ty: CqlType) {
        if self.binds.len() <= i {
            self.binds.resize(i + 1, None);
        }
        // Keyspace and table are filled in once the statement is planned.
        self.binds[i] = Some(ColumnSpec {
            keyspace: String::new(),
            table: String::new(),
            name: name.to_string(),
            ty,
        });
    }

    pub(super) fn val(&mut self, t: &Term, name: &str, ty: &CqlType) -> Result<Val> {
        match t {
            Term::Marker(i) => {
                self.spec(*i, name, ty.clone());
                Ok(Val::Bind(*i))
            }
            Term::Lit(l) => Ok(Val::Const(literal_for(ty, l, name)?)),
        }
    }

    pub(super) fn rel_vals(&mut self, r: &Relation, ty: &CqlType) -> Result<Vals> {
        let elem_ty = match r.op {
            Op::Contains => match ty.base() {
                CqlType::List(t) | CqlType::Set(t) | CqlType::Map(_, t) => (**t).clone(),
                _ => {
                    return Err(CqlError::invalid(format!(
                        "Cannot use CONTAINS on non-collection column {}",
                        r.column
                    )));
                }
            },
            Op::ContainsKey => match ty.base() {
                CqlType::Map(k, _) => (**k).clone(),
                _ => {
                    return Err(CqlError::invalid(format!(
                        "Cannot use CONTAINS KEY on non-map column {}",
                        r.column
                    )));
                }
            },
            _ => ty.clone(),
        };
        match (&r.value, r.op) {
            (RelValue::List(items), Op::In) => Ok(Vals::List(
                items
                    .iter()
                    .map(|t| self.val(t, &r.column, &elem_ty))
                    .collect::<Result<Vec<_>>>()?,
            )),
            (RelValue::One(Term::Marker(i)), Op::In) => {
                self.spec(
                    *i,
                    &format!("in({})", r.column),
                    CqlType::List(Box::new(elem_ty)),
                );
                Ok(Vals::InBind(*i))
            }
            (RelValue::One(Term::Lit(Literal::List(items))), Op::In) => Ok(Vals::List(
                items
                    .iter()
                    .map(|l| Ok(Val::Const(literal_for(&elem_ty, l, &r.column)?)))
                    .collect::<Result<Vec<_>>>()?,
            )),
            (RelValue::One(t), op) if op != Op::In => {
                Ok(Vals::List(vec![self.val(t, &r.column, &elem_ty)?]))
            }
            _ => Err(CqlError::invalid(format!(
                "Invalid IN relation on column {}",
                r.column
            ))),
        }
    }

    pub(super) fn finish(self, count: usize) -> Result<Vec<ColumnSpec>> {
        let mut out = Vec::with_capacity(count);
        for i in 0..count {
            match self.binds.get(i).cloned().flatten() {
                Some(s) => out.push(s),
                None => {
                    return Err(CqlError::invalid(format!(
                        "bind marker {i} is not in a supported position"
                    )));
                }
            }
        }
        Ok(out)
    }
}

impl Engine {
    pub(super) fn plan(&self, query: &str, ctx: &Ctx, id: Bytes) -> Result<Prepared> {
        let parsed = parser::parse(query)?;
        let n = parsed.marker_names.len();
        let (plan, binds, result) = match parsed.statement {
            Statement::Select(s) => {
                let (p, b) = self.plan_select(&s, ctx)?;
                let specs = p.specs.clone();
                (Plan::Select(Box::new(p)), b.finish(n)?, Some(specs))
            }
            Statement::Insert(_) | Statement::Update(_) | Statement::Delete(_) => {
                let (w, b) = self.plan_write(&parsed.statement, ctx, None)?;
                (Plan::Write(Box::new(w)), b.finish(n)?, None)
            }
            Statement::Batch {
                kind,
                using,
                statements,
            } => {
                if kind == BatchKind::Counter {
                    return Err(CqlError::invalid(
                        "counter batches are not supported by ember-cql",
                    ));
                }
                let mut plans = Vec::new();
                let mut binds: Vec<Option<ColumnSpec>> = vec![None; n];
                for st in &statements {
                    let (w, b) = self.plan_write(st, ctx, Some(&using))?;
                    if w.conditional {
                        return Err(CqlError::invalid(
                            "conditional statements in batches are not supported by ember-cql",
                        ));
                    }
                    for (i, s) in b.binds.into_iter().enumerate() {
                        if s.is_some() {
                            binds[i] = s;
                        }
                    }
                    plans.push(w);
                }
                let binds = Binder { binds }.finish(n)?;
                (Plan::Batch(plans), binds, None)
            }
            other => {
                if n > 0 {
                    return Err(CqlError::invalid(
                        "bind markers are not allowed in this statement",
                    ));
                }
                (Plan::Other(other), Vec::new(), None)
            }
        };
        let binds_result = binds;
        let pk_indexes = match &plan {
            Plan::Write(w) => pk_bind_indexes(&w.pk, &w.table),
            Plan::Select(s) => {
                s.pk.as_ref()
                    .map(|pk| pk_bind_indexes(pk, &s.template))
                    .unwrap_or_default()
            }
            _ => Vec::new(),
        };
        Ok(Prepared {
            id,
            plan,
            binds: binds_result,
            marker_names: parsed.marker_names,
            pk_indexes,
            result,
        })
    }

    pub(super) fn plan_select(
        &self,
        s: &parser::Select,
        ctx: &Ctx,
    ) -> Result<(SelectPlan, Binder)> {
        let ks = self.resolve_ks(&s.table, ctx)?;
        let (source, t) = self.source(&ks, &s.table.name, ctx)?;
        let schema = &t.schema;
        let mut binder = Binder::default();
        let spec = |name: &str, ty: CqlType| ColumnSpec {
            keyspace: ks.clone(),
            table: schema.name.clone(),
            name: name.to_string(),
            ty,
        };
        let col = |name: &str| {
            schema.column(name).ok_or_else(|| {
                CqlError::invalid(format!(
                    "Undefined column name {name} in table {ks}.{}",
                    schema.name
                ))
            })
        };
        let mut out = Vec::new();
        let mut specs = Vec::new();
        let mut count = false;
        if s.selectors.is_empty() {
            for &i in &schema.star {
                out.push(OutExpr::Column(i));
                specs.push(spec(&schema.columns[i].name, schema.columns[i].ty.clone()));
            }
        } else {
            for sel in &s.selectors {
                match &sel.expr {
                    SelectorExpr::CountStar => {
                        count = true;
                        specs.push(spec(
                            sel.alias.as_deref().unwrap_or("count"),
                            CqlType::Bigint,
                        ));
                    }
                    SelectorExpr::Column(c) => {
                        let i = col(c)?;
                        out.push(OutExpr::Column(i));
                        specs.push(spec(
                            sel.alias.as_deref().unwrap_or(c),
                            schema.columns[i].ty.clone(),
                        ));
                    }
                    SelectorExpr::Token(cols) => {
                        let pk_names: Vec<&str> = schema
                            .pk
                            .iter()
                            .map(|&i| schema.columns[i].name.as_str())
                            .collect();
                        if cols.iter().map(|c| c.as_str()).ne(pk_names.iter().copied()) {
                            return Err(CqlError::invalid(format!(
                                "token() takes the partition key columns in order: {}",
                                pk_names.join(", ")
                            )));
                        }
                        let default = format!("system.token({})", cols.join(", "));
                        out.push(OutExpr::Token);
                        specs.push(spec(
                            sel.alias.as_deref().unwrap_or(&default),
                            CqlType::Bigint,
                        ));
                    }
                    SelectorExpr::WriteTime(c) | SelectorExpr::Ttl(c) => {
                        let i = col(c)?;
                        if schema.columns[i].kind != ColumnKind::Regular {
                            return Err(CqlError::invalid(format!(
                                "Cannot use selection function writetime/ttl on PRIMARY KEY part {c}"
                            )));
                        }
                        let wt = matches!(sel.expr, SelectorExpr::WriteTime(_));
                        let default = if wt {
                            format!("writetime({c})")
                        } else {
                            format!("ttl({c})")
                        };
                        out.push(if wt {
                            OutExpr::WriteTime(i)
                        } else {
                            OutExpr::Ttl(i)
                        });
                        specs.push(spec(
                            sel.alias.as_deref().unwrap_or(&default),
                            if wt { CqlType::Bigint } else { CqlType::Int },
                        ));
                    }
                }
            }
            if count && !out.is_empty() {
                return Err(CqlError::invalid(
                    "mixing COUNT(*) with other selectors is not supported by ember-cql",
                ));
            }
        }
        if s.distinct {
            for o in &out {
                if !matches!(o, OutExpr::Column(i) if schema.columns[*i].kind == ColumnKind::PartitionKey)
                {
                    return Err(CqlError::invalid(
                        "SELECT DISTINCT queries must only request partition key columns",
                    ));
                }
            }
        }
        // WHERE analysis.
        let mut pk_vals: Vec<Option<Vals>> = vec![None; schema.pk.len()];
        let mut pk_non_eq = false;
        let mut filters = Vec::new();
        let mut ck_restricted: Vec<Option<Op>> = vec![None; schema.ck.len()];
        let mut regular_restricted = false;
        let mut token_filters = Vec::new();
        for r in &s.where_ {
            if let Some(cols) = &r.token_of {
                let pk_names: Vec<&str> = schema
                    .pk
                    .iter()
                    .map(|&i| schema.columns[i].name.as_str())
                    .collect();
                if cols.iter().map(|c| c.as_str()).ne(pk_names.iter().copied()) {
                    return Err(CqlError::invalid(format!(
                        "The token function arguments must be in the partition key order: {}",
                        pk_names.join(", ")
                    )));
                }
                let RelValue::One(t) = &r.value else {
                    return Err(CqlError::invalid("IN is not supported on token()"));
                };
                token_filters.push((
                    r.op,
                    binder.val(t, "partition key token", &CqlType::Bigint)?,
                ));
                continue;
            }
            let i = col(&r.column)?;
            let c = &schema.columns[i];
            if r.op == Op::Ne {
                return Err(CqlError::invalid(format!(
                    "Unsupported \"!=\" relation: {} != ...",
                    r.column
                )));
            }
            let vals = binder.rel_vals(r, &c.ty)?;
            match c.kind {
                ColumnKind::PartitionKey if matches!(r.op, Op::Eq | Op::In) => {
                    if pk_vals[c.position as usize].is_some() {
                        return Err(CqlError::invalid(format!(
                            "{} cannot be restricted by more than one relation if it includes an Equal",
                            r.column
                        )));
                    }
                    pk_vals[c.position as usize] = Some(vals.clone());
                }
                ColumnKind::PartitionKey => pk_non_eq = true,
                ColumnKind::Clustering => {
                    let p = c.position as usize;
                    if ck_restricted[p].is_some()
                        && (r.op == Op::Eq || ck_restricted[p] == Some(Op::Eq))
                    {
                        return Err(CqlError::invalid(format!(
                            "{} cannot be restricted by more than one relation if it includes an Equal",
                            r.column
                        )));
                    }
                    ck_restricted[p] = Some(r.op);
                }
                ColumnKind::Regular => regular_restricted = true,
            }
            filters.push(Filter {
                col: i,
                op: r.op,
                vals,
            });
        }
        let pk_restricted = pk_vals.iter().filter(|v| v.is_some()).count();
        let full_pk = pk_restricted == schema.pk.len() && !pk_non_eq;
        let mut needs_filtering = regular_restricted;
        if !full_pk && (pk_restricted > 0 || pk_non_eq) {
            if !s.allow_filtering {
                if pk_non_eq {
                    return Err(CqlError::invalid(
                        "Only EQ and IN relation are supported on the partition key (unless you use the token() function or ALLOW FILTERING)",
                    ));
                }
                let missing: Vec<&str> = schema
                    .pk
                    .iter()
                    .zip(&pk_vals)
                    .filter(|(_, v)| v.is_none())
                    .map(|(&i, _)| schema.columns[i].name.as_str())
                    .collect();
                return Err(CqlError::invalid(format!(
                    "Partition key parts: {} must be restricted as other parts are",
                    missing.join(", ")
                )));
            }
            needs_filtering = true;
        }
        // Clustering restrictions must be a prefix with only the last one non-EQ.
        let mut seen_gap = false;
        let mut seen_non_eq = false;
        for r in &ck_restricted {
            match r {
                None => seen_gap = true,
                Some(op) => {
                    if seen_gap || seen_non_eq {
                        needs_filtering = true;
                    }
                    if *op != Op::Eq {
                        seen_non_eq = true;
                    }
                    if matches!(op, Op::Contains | Op::ContainsKey) {
                        needs_filtering = true;
                    }
                }
            }
        }
        if !full_pk && ck_restricted.iter().any(|r| r.is_some()) {
            needs_filtering = true;
        }
        if needs_filtering && !s.allow_filtering {
            return Err(CqlError::invalid(FILTERING_MSG));
        }
        // Key-only filters for the fully restricted partition key are handled by lookup.
        let pk = if full_pk {
            filters.retain(|f| schema.columns[f.col].kind != ColumnKind::PartitionKey);
            Some(
                pk_vals
                    .into_iter()
                    .map(|v| v.unwrap_or(Vals::List(Vec::new())))
                    .collect(),
            )
        } else {
            None
        };
        let mut reversed = false;
        if !s.order_by.is_empty() {
            if !full_pk {
                return Err(CqlError::invalid(
                    "ORDER BY is only supported when the partition key is restricted by an EQ or an IN.",
                ));
            }
            for (k, (c, desc)) in s.order_by.iter().enumerate() {
                let i = col(c)?;
                let cd = &schema.columns[i];
                if cd.kind != ColumnKind::Clustering || cd.position as usize != k {
                    return Err(CqlError::invalid(format!(
                        "Order by currently only supports the ordering of columns following their declared order in the PRIMARY KEY ({c})"
                    )));
                }
                let rev = *desc != schema.ck_desc[k];
                if k == 0 {
                    reversed = rev;
                } else if rev != reversed {
                    return Err(CqlError::invalid("Unsupported order by relation"));
                }
            }
        }
        let limit = match &s.limit {
            Some(t) => Some(binder.val(t, "[limit]", &CqlType::Int)?),
            None => None,
        };
        let per_partition_limit = match &s.per_partition_limit {
            Some(t) => Some(binder.val(t, "[per_partition_limit]", &CqlType::Int)?),
            None => None,
        };
        // Fill keyspace/table on bind specs.
        for b in binder.binds.iter_mut().flatten() {
            b.keyspace = ks.clone();
            b.table = schema.name.clone();
        }
        Ok((
            SelectPlan {
                source,
                template: t.clone(),
                out,
                count,
                distinct: s.distinct,
                pk,
                filters,
                token_filters,
                limit,
                per_partition_limit,
                reversed,
                specs,
            },
            binder,
        ))
    }

    pub(super) fn plan_write(
        &self,
        st: &Statement,
        ctx: &Ctx,
        batch_using: Option<&Using>,
    ) -> Result<(WritePlan, Binder)> {
        let (qname, kind) = match st {
            Statement::Insert(i) => (&i.table, WriteKind::Insert),
            Statement::Update(u) => (&u.table, WriteKind::Update),
            Statement::Delete(d) => (&d.table, WriteKind::Delete),
            _ => {
                return Err(CqlError::invalid(
                    "only INSERT, UPDATE and DELETE are allowed here",
                ));
            }
        };
        let ks = self.resolve_ks(qname, ctx)?;
        if is_system_keyspace(&ks) {
            return Err(CqlError::new(
                crate::error::UNAUTHORIZED,
                format!("{ks} keyspace is not user-modifiable."),
            ));
        }
        let t = self.user_table(&ks, &qname.name)?;
        let schema = &t.schema;
        let mut binder = Binder::default();
        let col = |name: &str| {
            schema.column(name).ok_or_else(|| {
                CqlError::invalid(format!(
                    "Undefined column name {name} in table {ks}.{}",
                    schema.name
                ))
            })
        };
        let mut pk: Vec<Option<Vals>> = vec![None; schema.pk.len()];
        let mut ck: Vec<Option<Vals>> = vec![None; schema.ck.len()];
        let mut sets = Vec::new();
        let mut coll_ops: Vec<CollectionOp> = Vec::new();
        let mut delete_cols = Vec::new();
        let mut where_keys = |binder: &mut Binder, where_: &[Relation]| -> Result<()> {
            for r in where_ {
                if r.token_of.is_some() {
                    return Err(CqlError::invalid(
                        "token() relations are only supported in SELECT",
                    ));
                }
                let i = col(&r.column)?;
                let c = &schema.columns[i];
                if !matches!(r.op, Op::Eq | Op::In) {
                    return Err(CqlError::invalid(format!(
                        "Invalid operator {:?} for PRIMARY KEY part {} in a modification (only = and IN)",
                        r.op, r.column
                    )));
                }
                let slot = match c.kind {
                    ColumnKind::PartitionKey => &mut pk[c.position as usize],
                    ColumnKind::Clustering => &mut ck[c.position as usize],
                    ColumnKind::Regular => {
                        return Err(CqlError::invalid(format!(
                            "Non PRIMARY KEY columns found in where clause: {}",
                            r.column
                        )));
                    }
                };
                if slot.is_some() {
                    return Err(CqlError::invalid(format!(
                        "{} cannot be restricted by more than one relation if it includes an Equal",
                        r.column
                    )));
                }
                *slot = Some(binder.rel_vals(r, &c.ty)?);
            }
            Ok(())
        };
        let (using, conditional) = match st {
            Statement::Insert(ins) => {
                for (c, term) in ins.columns.iter().zip(&ins.values) {
                    let i = col(c)?;
                    let cd = &schema.columns[i];
                    let v = binder.val(term, c, &cd.ty)?;
                    match cd.kind {
                        ColumnKind::PartitionKey => {
                            pk[cd.position as usize] = Some(Vals::List(vec![v]))
                        }
                        ColumnKind::Clustering => {
                            ck[cd.position as usize] = Some(Vals::List(vec![v]))
                        }
                        ColumnKind::Regular => {
                            if sets.iter().any(|(x, _)| *x == i as u32) {
                                return Err(CqlError::invalid(format!(
                                    "Multiple definitions found for column {c}"
                                )));
                            }
                            sets.push((i as u32, v))
                        }
                    }
                }
                (&ins.using, ins.if_not_exists)
            }
            Statement::Update(u) => {
                for a in &u.assignments {
                    let c = match a {
                        Assignment::Set(c, _)
                        | Assignment::Collection(c, _, _)
                        | Assignment::Element(c, _, _) => c,
                    };
                    let i = col(c)?;
                    let cd = &schema.columns[i];
                    if cd.kind != ColumnKind::Regular {
                        return Err(CqlError::invalid(format!(
                            "PRIMARY KEY part {c} found in SET part"
                        )));
                    }
                    match a {
                        Assignment::Set(_, term) => {
                            sets.push((i as u32, binder.val(term, c, &cd.ty)?))
                        }
                        Assignment::Collection(_, op, term) => {
                            let operand_ty = collection_operand_type(&cd.ty, *op, c)?;
                            coll_ops.push(CollectionOp {
                                col: i as u32,
                                op: ElemOp::Coll(*op),
                                a: binder.val(term, c, &operand_ty)?,
                                b: None,
                            });
                        }
                        Assignment::Element(_, key, value) => {
                            let (kt, vt) = element_types(&cd.ty, c)?;
                            coll_ops.push(CollectionOp {
                                col: i as u32,
                                op: ElemOp::Put,
                                a: binder.val(key, &format!("key({c})"), &kt)?,
                                b: Some(binder.val(value, &format!("value({c})"), &vt)?),
                            });
                        }
                    }
                }
                where_keys(&mut binder, &u.where_)?;
                (&u.using, u.condition == Condition::IfExists)
            }
            Statement::Delete(d) => {
                for c in &d.columns {
                    let i = col(c)?;
                    if schema.columns[i].kind != ColumnKind::Regular {
                        return Err(CqlError::invalid(format!(
                            "Invalid identifier {c} for deletion (should not be a PRIMARY KEY part)"
                        )));
                    }
                    delete_cols.push(i as u32);
                }
                for (c, key) in &d.elements {
                    let i = col(c)?;
                    let (kt, _) = element_types(&schema.columns[i].ty, c)?;
                    coll_ops.push(CollectionOp {
                        col: i as u32,
                        op: ElemOp::Delete,
                        a: binder.val(key, &format!("key({c})"), &kt)?,
                        b: None,
                    });
                }
                where_keys(&mut binder, &d.where_)?;
                (&d.using, d.condition == Condition::IfExists)
            }
            _ => unreachable!("checked above"),
        };
        // Values positions are in textual order, so bind USING after the values for INSERT.
        let ttl = match using
            .ttl
            .as_ref()
            .or(batch_using.and_then(|u| u.ttl.as_ref()))
        {
            Some(t) => Some(binder.val(t, "[ttl]", &CqlType::Int)?),
            None => None,
        };
        let ts = match using
            .timestamp
            .as_ref()
            .or(batch_using.and_then(|u| u.timestamp.as_ref()))
        {
            Some(t) => Some(binder.val(t, "[timestamp]", &CqlType::Bigint)?),
            None => None,
        };
        for (k, v) in pk.iter().enumerate() {
            if v.is_none() {
                return Err(CqlError::invalid(format!(
                    "Some partition key parts are missing: {}",
                    schema.columns[schema.pk[k]].name
                )));
            }
        }
        let ck_given = ck.iter().filter(|v| v.is_some()).count();
        let full_ck = ck_given == schema.ck.len();
        let all_static = |cols: &mut dyn Iterator<Item = u32>| {
            let mut any = false;
            for c in cols {
                if !schema.columns[c as usize].is_static {
                    return false;
                }
                any = true;
            }
            any
        };
        let static_only = ck_given == 0
            && match kind {
                WriteKind::Delete => all_static(
                    &mut delete_cols
                        .iter()
                        .copied()
                        .chain(coll_ops.iter().map(|o| o.col)),
                ),
                _ => all_static(
                    &mut sets
                        .iter()
                        .map(|(c, _)| *c)
                        .chain(coll_ops.iter().map(|o| o.col)),
                ),
            };
        if !full_ck && !static_only {
            let missing = schema.columns
                [schema.ck[ck.iter().position(|v| v.is_none()).unwrap_or(0)]]
            .name
            .clone();
            match kind {
                WriteKind::Delete
                    if ck_given == 0 && delete_cols.is_empty() && coll_ops.is_empty() => {}
                WriteKind::Delete if ck_given == 0 => {
                    return Err(CqlError::invalid(format!(
                        "Some clustering keys are missing: {missing}"
                    )));
                }
                WriteKind::Delete => {
                    return Err(CqlError::invalid(
                        "range deletions (DELETE with a partial clustering key) are not supported by ember-cql",
                    ));
                }
                _ => {
                    return Err(CqlError::invalid(format!(
                        "Some clustering keys are missing: {missing}"
                    )));
                }
            }
        }
        for b in binder.binds.iter_mut().flatten() {
            b.keyspace = ks.clone();
            b.table = schema.name.clone();
        }
        let plan = WritePlan {
            table: t.clone(),
            kind,
            pk: pk.into_iter().flatten().collect(),
            ck: ck.into_iter().flatten().collect(),
            sets,
            delete_cols,
            ttl,
            ts,
            conditional,
            coll_ops,
        };
        Ok((plan, binder))
    }

    // ------------------------------------------------------------------ execution
}

/// The bound type of `c = c + x` / `c = c - x` for a collection column.
fn collection_operand_type(ty: &CqlType, op: CollOp, c: &str) -> Result<CqlType> {
    if matches!(ty, CqlType::Frozen(_)) {
        return Err(CqlError::invalid(format!(
            "Invalid operation ({c} = {c} {} ...) for frozen collection column {c}",
            if op == CollOp::Remove { "-" } else { "+" }
        )));
    }
    match (ty, op) {
        (CqlType::List(_), _) => Ok(ty.clone()),
        (CqlType::Set(_), CollOp::Append | CollOp::Remove) => Ok(ty.clone()),
        (CqlType::Map(..), CollOp::Append) => Ok(ty.clone()),
        (CqlType::Map(k, _), CollOp::Remove) => Ok(CqlType::Set(k.clone())),
        _ => Err(CqlError::invalid(format!(
            "Invalid operation ({c} = {c} {} ...) for column {c} of type {ty}",
            if op == CollOp::Remove { "-" } else { "+" }
        ))),
    }
}

/// Key (or index) and value types for `c[k]` on a map or list column.
fn element_types(ty: &CqlType, c: &str) -> Result<(CqlType, CqlType)> {
    match ty {
        CqlType::Map(k, v) => Ok(((**k).clone(), (**v).clone())),
        CqlType::List(v) => Ok((CqlType::Int, (**v).clone())),
        CqlType::Frozen(_) => Err(CqlError::invalid(format!(
            "Invalid operation {c}[...] for frozen collection column {c}"
        ))),
        _ => Err(CqlError::invalid(format!(
            "Invalid element access {c}[...]: column {c} of type {ty} is not a non-frozen map or list"
        ))),
    }
}

pub(super) fn pk_bind_indexes(pk: &[Vals], t: &Table) -> Vec<u16> {
    let mut out = Vec::with_capacity(pk.len());
    for v in pk {
        match v {
            Vals::List(l) if l.len() == 1 => match l[0] {
                Val::Bind(i) => out.push(i as u16),
                _ => return Vec::new(),
            },
            _ => return Vec::new(),
        }
    }
    if out.len() == t.schema.pk.len() {
        out
    } else {
        Vec::new()
    }
}
