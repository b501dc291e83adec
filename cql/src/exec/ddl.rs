//! Schema statements and USE.

use super::*;

impl Engine {
    pub(super) async fn run_other(&self, st: &Statement, ctx: &Ctx) -> Result<Outcome> {
        match st {
            Statement::Use(ks) => {
                if !self.db.keyspaces.read().contains_key(ks) && !is_system_keyspace(ks) {
                    return Err(CqlError::invalid(format!("Keyspace '{ks}' does not exist")));
                }
                Ok(Outcome::SetKeyspace(ks.clone()))
            }
            Statement::CreateKeyspace {
                name,
                if_not_exists,
                replication,
                durable_writes,
            } => {
                validate_replication(name, replication)?;
                if is_system_keyspace(name) {
                    return Err(CqlError::already_exists(name, ""));
                }
                let rec = LogRecord::PutKeyspace {
                    name: name.clone(),
                    replication: replication.clone(),
                    durable_writes: *durable_writes,
                };
                {
                    let exists = self.db.keyspaces.read().contains_key(name);
                    if exists {
                        if *if_not_exists {
                            return Ok(Outcome::Void);
                        }
                        return Err(CqlError::already_exists(name, ""));
                    }
                }
                self.ddl(rec, |db| !db.keyspaces.read().contains_key(name))
                    .await?;
                Ok(self.schema_change("CREATED", "KEYSPACE", name, None))
            }
            Statement::AlterKeyspace {
                name,
                replication,
                durable_writes,
            } => {
                let (cur_r, cur_d) = {
                    let kss = self.db.keyspaces.read();
                    let k = kss.get(name).ok_or_else(|| {
                        CqlError::invalid(format!("Keyspace {name} does not exist"))
                    })?;
                    (k.replication.clone(), k.durable_writes)
                };
                let replication = replication.clone().unwrap_or(cur_r);
                validate_replication(name, &replication)?;
                let rec = LogRecord::PutKeyspace {
                    name: name.clone(),
                    replication,
                    durable_writes: durable_writes.unwrap_or(cur_d),
                };
                self.ddl(rec, |_| true).await?;
                Ok(self.schema_change("UPDATED", "KEYSPACE", name, None))
            }
            Statement::DropKeyspace { name, if_exists } => {
                if is_system_keyspace(name) {
                    return Err(CqlError::new(
                        crate::error::UNAUTHORIZED,
                        format!("{name} keyspace is not user-modifiable"),
                    ));
                }
                if !self.db.keyspaces.read().contains_key(name) {
                    if *if_exists {
                        return Ok(Outcome::Void);
                    }
                    return Err(CqlError::new(
                        crate::error::CONFIG_ERROR,
                        format!("Cannot drop non existing keyspace '{name}'."),
                    ));
                }
                self.ddl(LogRecord::DropKeyspace { name: name.clone() }, |db| {
                    db.keyspaces.read().contains_key(name)
                })
                .await?;
                Ok(self.schema_change("DROPPED", "KEYSPACE", name, None))
            }
            Statement::CreateTable(ct) => {
                let ks = self.resolve_ks(&ct.name, ctx)?;
                if is_system_keyspace(&ks) {
                    return Err(CqlError::new(
                        crate::error::UNAUTHORIZED,
                        format!("{ks} keyspace is not user-modifiable"),
                    ));
                }
                let (columns, ck_desc) = columns_from_ast(ct, &ks)?;
                for (k, _) in &ct.options {
                    if !matches!(
                        k.as_str(),
                        "default_time_to_live" | "comment" | "gc_grace_seconds"
                    ) {
                        tracing::info!(table = %format!("{ks}.{}", ct.name.name), option = %k, "table option accepted but has no effect in ember-cql");
                    }
                }
                for (k, v) in &ct.options {
                    if k == "default_time_to_live" && v.parse::<i32>().map_or(true, |n| n < 0) {
                        return Err(CqlError::new(
                            crate::error::CONFIG_ERROR,
                            format!("Invalid value for default_time_to_live: {v}"),
                        ));
                    }
                }
                {
                    let kss = self.db.keyspaces.read();
                    let k = kss
                        .get(&ks)
                        .ok_or_else(|| CqlError::invalid(format!("Keyspace {ks} doesn't exist")))?;
                    if k.tables.contains_key(&ct.name.name) {
                        if ct.if_not_exists {
                            return Ok(Outcome::Void);
                        }
                        return Err(CqlError::already_exists(&ks, &ct.name.name));
                    }
                }
                let name = ct.name.name.clone();
                let rec = LogRecord::CreateTable {
                    keyspace: ks.clone(),
                    name: name.clone(),
                    id: uuid::Uuid::new_v4(),
                    columns,
                    ck_desc,
                    options: ct.options.clone(),
                };
                let created = self
                    .ddl(rec, |db| {
                        db.keyspaces
                            .read()
                            .get(&ks)
                            .is_some_and(|k| !k.tables.contains_key(&name))
                    })
                    .await?;
                if !created {
                    if ct.if_not_exists {
                        return Ok(Outcome::Void);
                    }
                    return Err(CqlError::already_exists(&ks, &name));
                }
                Ok(self.schema_change("CREATED", "TABLE", &ks, Some(&name)))
            }
            Statement::AlterTableAdd {
                table,
                columns: added,
            } => {
                let ks = self.resolve_ks(table, ctx)?;
                if is_system_keyspace(&ks) {
                    return Err(CqlError::new(
                        crate::error::UNAUTHORIZED,
                        format!("{ks} keyspace is not user-modifiable"),
                    ));
                }
                let t = self.user_table(&ks, &table.name)?;
                let mut columns = t.schema.columns.clone();
                for c in added {
                    if columns.iter().any(|x| x.name == c.name) {
                        return Err(CqlError::invalid(format!(
                            "Column with name '{}' already exists in {ks}.{}",
                            c.name, table.name
                        )));
                    }
                    if matches!(c.ty.base(), CqlType::Counter) {
                        return Err(CqlError::invalid(format!(
                            "counter columns ({}) are not supported by ember-cql",
                            c.name
                        )));
                    }
                    if c.is_static && t.schema.ck.is_empty() {
                        return Err(CqlError::invalid(format!(
                            "Static column {} cannot be added to a table without clustering columns",
                            c.name
                        )));
                    }
                    columns.push(crate::storage::ColumnDef {
                        name: c.name.clone(),
                        ty: c.ty.clone(),
                        kind: ColumnKind::Regular,
                        position: -1,
                        is_static: c.is_static,
                    });
                }
                let id = t.schema.id;
                let rec = LogRecord::AlterTable {
                    keyspace: ks.clone(),
                    name: table.name.clone(),
                    id,
                    columns,
                    ck_desc: t.schema.ck_desc.clone(),
                    options: t.schema.options.clone(),
                };
                let done = self
                    .ddl(rec, |db| {
                        db.table(&ks, &table.name)
                            .is_ok_and(|x| x.schema.id == id && !x.is_dropped())
                    })
                    .await?;
                if !done {
                    return Err(CqlError::invalid(format!(
                        "table {ks}.{} changed concurrently; retry",
                        table.name
                    )));
                }
                Ok(self.schema_change("UPDATED", "TABLE", &ks, Some(&table.name)))
            }
            Statement::DropTable { name, if_exists } => {
                let ks = self.resolve_ks(name, ctx)?;
                if is_system_keyspace(&ks) {
                    return Err(CqlError::new(
                        crate::error::UNAUTHORIZED,
                        format!("{ks} keyspace is not user-modifiable"),
                    ));
                }
                let exists = self
                    .db
                    .keyspaces
                    .read()
                    .get(&ks)
                    .is_some_and(|k| k.tables.contains_key(&name.name));
                if !exists {
                    if *if_exists {
                        return Ok(Outcome::Void);
                    }
                    return Err(CqlError::invalid(format!(
                        "table {ks}.{} does not exist",
                        name.name
                    )));
                }
                self.ddl(
                    LogRecord::DropTable {
                        keyspace: ks.clone(),
                        name: name.name.clone(),
                    },
                    |_| true,
                )
                .await?;
                Ok(self.schema_change("DROPPED", "TABLE", &ks, Some(&name.name)))
            }
            Statement::Truncate(name) => {
                let ks = self.resolve_ks(name, ctx)?;
                if is_system_keyspace(&ks) {
                    return Err(CqlError::new(
                        crate::error::UNAUTHORIZED,
                        format!("{ks} keyspace is not user-modifiable"),
                    ));
                }
                self.user_table(&ks, &name.name)?;
                self.ddl(
                    LogRecord::Truncate {
                        keyspace: ks,
                        name: name.name.clone(),
                    },
                    |_| true,
                )
                .await?;
                Ok(Outcome::Void)
            }
            Statement::Select(_)
            | Statement::Insert(_)
            | Statement::Update(_)
            | Statement::Delete(_)
            | Statement::Batch { .. } => {
                Err(CqlError::server("statement routed to the wrong executor"))
            }
        }
    }

    /// Logs and applies a schema record under the schema lock (so log order matches apply
    /// order) if `check` still holds, then waits for the log.
    pub(super) async fn ddl(&self, rec: LogRecord, check: impl Fn(&Db) -> bool) -> Result<bool> {
        let seq = {
            let _guard = DDL_LOCK.lock();
            if !check(&self.db) {
                return Ok(false);
            }
            let seq = self.db.log_append(&rec);
            self.db.apply_record(rec);
            seq
        };
        if let Some((log, seq)) = seq {
            log.wait_durable(seq)
                .await
                .map_err(|e| CqlError::server(format!("commit log failure: {e}")))?;
        }
        Ok(true)
    }

    pub(super) fn schema_change(
        &self,
        change: &'static str,
        target: &'static str,
        ks: &str,
        name: Option<&str>,
    ) -> Outcome {
        let sc = SchemaChange {
            change,
            target,
            keyspace: ks.to_string(),
            name: name.map(|s| s.to_string()),
        };
        let _ = self.events.send(sc.clone());
        Outcome::SchemaChange(sc)
    }
}

pub(super) static DDL_LOCK: parking_lot::Mutex<()> = parking_lot::Mutex::new(());

pub(super) fn validate_replication(ks: &str, r: &[(String, String)]) -> Result<()> {
    let class = r
        .iter()
        .find(|(k, _)| k == "class")
        .map(|(_, v)| v.as_str())
        .ok_or_else(|| {
            CqlError::new(
                crate::error::CONFIG_ERROR,
                "Missing replication strategy class",
            )
        })?;
    let short = class.rsplit('.').next().unwrap_or(class);
    match short {
        "SimpleStrategy" => {
            let rf = r
                .iter()
                .find(|(k, _)| k == "replication_factor")
                .ok_or_else(|| {
                    CqlError::new(
                        crate::error::CONFIG_ERROR,
                        "SimpleStrategy requires a replication_factor strategy option.",
                    )
                })?;
            if rf.1.parse::<u32>().is_err() {
                return Err(CqlError::new(
                    crate::error::CONFIG_ERROR,
                    format!(
                        "Replication factor must be non-negative; found {} (keyspace {ks})",
                        rf.1
                    ),
                ));
            }
            Ok(())
        }
        "NetworkTopologyStrategy" => Ok(()),
        other => Err(CqlError::new(
            crate::error::CONFIG_ERROR,
            format!("Unable to find replication strategy class '{other}' for keyspace {ks}"),
        )),
    }
}
