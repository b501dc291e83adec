//! Virtual system tables (system.local, system.peers, system_schema.*), generated on demand
//! from the live schema so they are always in step with DDL.

use std::net::IpAddr;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use crate::parser::{self, Statement};
use crate::schema::{Db, columns_from_ast};
use crate::storage::{Cell, ColumnKind, RowMutation, Table, TableSchema};

pub const RELEASE_VERSION: &str = "4.1.0";
pub const CQL_VERSION: &str = "3.4.6";

/// CREATE TABLE statements with the real column sets Cassandra 4.1 uses.
const DEFS: &[(&str, &str)] = &[
    (
        "system",
        "CREATE TABLE local (key text PRIMARY KEY, bootstrapped text, broadcast_address inet, broadcast_port int, \
         cluster_name text, cql_version text, data_center text, gossip_generation int, host_id uuid, \
         listen_address inet, listen_port int, native_protocol_version text, partitioner text, rack text, \
         release_version text, rpc_address inet, rpc_port int, schema_version uuid, tokens set<text>, \
         truncated_at map<uuid, blob>)",
    ),
    (
        "system",
        "CREATE TABLE peers (peer inet PRIMARY KEY, data_center text, host_id uuid, preferred_ip inet, rack text, \
         release_version text, rpc_address inet, schema_version uuid, tokens set<text>)",
    ),
    (
        "system",
        "CREATE TABLE peers_v2 (peer inet, peer_port int, data_center text, host_id uuid, native_address inet, \
         native_port int, preferred_ip inet, preferred_port int, rack text, release_version text, \
         schema_version uuid, tokens set<text>, PRIMARY KEY ((peer), peer_port))",
    ),
    (
        "system_schema",
        "CREATE TABLE keyspaces (keyspace_name text PRIMARY KEY, durable_writes boolean, \
         replication frozen<map<text, text>>)",
    ),
    (
        "system_schema",
        "CREATE TABLE tables (keyspace_name text, table_name text, additional_write_policy text, \
         bloom_filter_fp_chance double, caching frozen<map<text, text>>, cdc boolean, comment text, \
         compaction frozen<map<text, text>>, compression frozen<map<text, text>>, crc_check_chance double, \
         dclocal_read_repair_chance double, default_time_to_live int, extensions frozen<map<text, blob>>, \
         flags frozen<set<text>>, gc_grace_seconds int, id uuid, max_index_interval int, \
         memtable_flush_period_in_ms int, min_index_interval int, read_repair text, read_repair_chance double, \
         speculative_retry text, PRIMARY KEY ((keyspace_name), table_name))",
    ),
    (
        "system_schema",
        "CREATE TABLE columns (keyspace_name text, table_name text, column_name text, clustering_order text, \
         column_name_bytes blob, kind text, position int, type text, \
         PRIMARY KEY ((keyspace_name), table_name, column_name))",
    ),
    (
        "system_schema",
        "CREATE TABLE types (keyspace_name text, type_name text, field_names frozen<list<text>>, \
         field_types frozen<list<text>>, PRIMARY KEY ((keyspace_name), type_name))",
    ),
    (
        "system_schema",
        "CREATE TABLE functions (keyspace_name text, function_name text, argument_types frozen<list<text>>, \
         argument_names frozen<list<text>>, body text, called_on_null_input boolean, language text, \
         return_type text, PRIMARY KEY ((keyspace_name), function_name, argument_types))",
    ),
    (
        "system_schema",
        "CREATE TABLE aggregates (keyspace_name text, aggregate_name text, argument_types frozen<list<text>>, \
         final_func text, initcond text, return_type text, state_func text, state_type text, \
         PRIMARY KEY ((keyspace_name), aggregate_name, argument_types))",
    ),
    (
        "system_schema",
        "CREATE TABLE views (keyspace_name text, view_name text, additional_write_policy text, base_table_id uuid, \
         base_table_name text, bloom_filter_fp_chance double, caching frozen<map<text, text>>, cdc boolean, \
         comment text, compaction frozen<map<text, text>>, compression frozen<map<text, text>>, \
         crc_check_chance double, dclocal_read_repair_chance double, default_time_to_live int, \
         extensions frozen<map<text, blob>>, gc_grace_seconds int, id uuid, include_all_columns boolean, \
         max_index_interval int, memtable_flush_period_in_ms int, min_index_interval int, read_repair text, \
         read_repair_chance double, speculative_retry text, where_clause text, \
         PRIMARY KEY ((keyspace_name), view_name))",
    ),
    (
        "system_schema",
        "CREATE TABLE indexes (keyspace_name text, table_name text, index_name text, kind text, \
         options frozen<map<text, text>>, PRIMARY KEY ((keyspace_name), table_name, index_name))",
    ),
    (
        "system_schema",
        "CREATE TABLE triggers (keyspace_name text, table_name text, trigger_name text, \
         options frozen<map<text, text>>, PRIMARY KEY ((keyspace_name), table_name, trigger_name))",
    ),
    (
        "system_schema",
        "CREATE TABLE dropped_columns (keyspace_name text, table_name text, column_name text, dropped_time timestamp, \
         kind text, type text, PRIMARY KEY ((keyspace_name), table_name, column_name))",
    ),
];

/// Node facts reported in system.local.
pub struct NodeInfo {
    pub cluster_name: String,
    pub host_id: uuid::Uuid,
    pub listen: std::net::SocketAddr,
}

fn schema_of(ks: &str, cql: &str) -> Option<TableSchema> {
    let parsed = parser::parse(cql).ok()?;
    let Statement::CreateTable(ct) = parsed.statement else {
        return None;
    };
    let (columns, ck_desc) = columns_from_ast(&ct, ks).ok()?;
    // A fixed id per system table so prepared statements and metadata stay stable.
    let id = {
        use md5::{Digest, Md5};
        let d: [u8; 16] = Md5::digest(format!("{ks}.{}", ct.name.name).as_bytes()).into();
        uuid::Uuid::from_bytes(d)
    };
    Some(TableSchema::new(
        ks.to_string(),
        ct.name.name.clone(),
        id,
        columns,
        ck_desc,
        Vec::new(),
    ))
}

pub fn is_system_table(ks: &str, name: &str) -> bool {
    DEFS.iter()
        .any(|(k, cql)| *k == ks && table_name_of(cql) == name)
}

fn table_name_of(cql: &str) -> &str {
    cql.trim_start_matches("CREATE TABLE ")
        .split([' ', '('])
        .next()
        .unwrap_or("")
}

/// All system tables (empty), for schema listings.
pub fn all_schemas() -> Vec<TableSchema> {
    DEFS.iter()
        .filter_map(|(ks, cql)| schema_of(ks, cql))
        .collect()
}

pub fn text(s: &str) -> Option<Bytes> {
    Some(Bytes::copy_from_slice(s.as_bytes()))
}

pub fn inet(ip: IpAddr) -> Option<Bytes> {
    Some(match ip {
        IpAddr::V4(a) => Bytes::copy_from_slice(&a.octets()),
        IpAddr::V6(a) => Bytes::copy_from_slice(&a.octets()),
    })
}

fn int(v: i32) -> Option<Bytes> {
    Some(Bytes::copy_from_slice(&v.to_be_bytes()))
}

fn double(v: f64) -> Option<Bytes> {
    Some(Bytes::copy_from_slice(&v.to_be_bytes()))
}

fn boolean(v: bool) -> Option<Bytes> {
    Some(Bytes::copy_from_slice(&[u8::from(v)]))
}

fn uuid_v(u: uuid::Uuid) -> Option<Bytes> {
    Some(Bytes::copy_from_slice(u.as_bytes()))
}

fn coll(items: &[&[u8]]) -> Option<Bytes> {
    let mut out = BytesMut::new();
    out.put_i32(items.len() as i32);
    for i in items {
        out.put_i32(i.len() as i32);
        out.put_slice(i);
    }
    Some(out.freeze())
}

fn text_set(items: &[&str]) -> Option<Bytes> {
    let mut v: Vec<&str> = items.to_vec();
    v.sort();
    coll(&v.iter().map(|s| s.as_bytes()).collect::<Vec<_>>())
}

fn text_map(pairs: &[(String, String)]) -> Option<Bytes> {
    let mut v: Vec<&(String, String)> = pairs.iter().collect();
    v.sort();
    let mut out = BytesMut::new();
    out.put_i32(v.len() as i32);
    for (k, val) in v {
        out.put_i32(k.len() as i32);
        out.put_slice(k.as_bytes());
        out.put_i32(val.len() as i32);
        out.put_slice(val.as_bytes());
    }
    Some(out.freeze())
}

fn add_row(t: &Table, values: &[(&str, Option<Bytes>)]) {
    let s = &t.schema;
    let mut pk = vec![Bytes::new(); s.pk.len()];
    let mut ck = vec![Bytes::new(); s.ck.len()];
    let mut cells = Vec::new();
    for (name, v) in values {
        let Some(id) = s.column(name) else {
            debug_assert!(false, "unknown system column {name}");
            continue;
        };
        let c = &s.columns[id];
        match (c.kind, v) {
            (ColumnKind::PartitionKey, Some(v)) => pk[c.position as usize] = v.clone(),
            (ColumnKind::Clustering, Some(v)) => ck[c.position as usize] = v.clone(),
            (ColumnKind::Regular, Some(v)) => cells.push((
                id as u32,
                Cell {
                    value: Some(v.clone()),
                    ts: 0,
                    ttl: 0,
                    local_deletion: 0,
                },
            )),
            _ => {}
        }
    }
    t.apply(RowMutation {
        pk,
        ck,
        partition_delete: None,
        row_delete: None,
        marker: Some(crate::storage::Liveness {
            ts: 0,
            ttl: 0,
            expires_at: 0,
        }),
        cells,
    });
}

fn replication_full(r: &[(String, String)]) -> Vec<(String, String)> {
    r.iter()
        .map(|(k, v)| {
            if k == "class" && !v.contains('.') {
                (k.clone(), format!("org.apache.cassandra.locator.{v}"))
            } else {
                (k.clone(), v.clone())
            }
        })
        .collect()
}

/// Builds a system table filled with current data; `None` if there is no such table.
pub fn build(
    db: &Db,
    node: &NodeInfo,
    local: std::net::SocketAddr,
    ks: &str,
    name: &str,
) -> Option<Arc<Table>> {
    let cql = DEFS
        .iter()
        .find(|(k, cql)| *k == ks && table_name_of(cql) == name)
        .map(|(_, c)| *c)?;
    let t = Table::new(schema_of(ks, cql)?);
    let rpc_ip = if node.listen.ip().is_unspecified() {
        local.ip()
    } else {
        node.listen.ip()
    };
    match (ks, name) {
        ("system", "local") => {
            let sv = *db.schema_version.read();
            add_row(
                &t,
                &[
                    ("key", text("local")),
                    ("bootstrapped", text("COMPLETED")),
                    ("broadcast_address", inet(rpc_ip)),
                    ("broadcast_port", int(7000)),
                    ("cluster_name", text(&node.cluster_name)),
                    ("cql_version", text(CQL_VERSION)),
                    ("data_center", text("datacenter1")),
                    ("gossip_generation", int(1)),
                    ("host_id", uuid_v(node.host_id)),
                    ("listen_address", inet(rpc_ip)),
                    ("listen_port", int(7000)),
                    ("native_protocol_version", text("4")),
                    (
                        "partitioner",
                        text("org.apache.cassandra.dht.Murmur3Partitioner"),
                    ),
                    ("rack", text("rack1")),
                    ("release_version", text(RELEASE_VERSION)),
                    ("rpc_address", inet(rpc_ip)),
                    ("rpc_port", int(i32::from(node.listen.port()))),
                    ("schema_version", uuid_v(sv)),
                    // One node owns the whole ring; a single token is enough for token-aware drivers.
                    ("tokens", text_set(&["0"])),
                ],
            );
        }
        ("system_schema", "keyspaces") => {
            for ks in crate::schema::SYSTEM_KEYSPACES {
                let repl: Vec<(String, String)> = if matches!(*ks, "system" | "system_schema") {
                    vec![(
                        "class".into(),
                        "org.apache.cassandra.locator.LocalStrategy".into(),
                    )]
                } else {
                    vec![
                        (
                            "class".into(),
                            "org.apache.cassandra.locator.SimpleStrategy".into(),
                        ),
                        ("replication_factor".into(), "1".into()),
                    ]
                };
                add_row(
                    &t,
                    &[
                        ("keyspace_name", text(ks)),
                        ("durable_writes", boolean(true)),
                        ("replication", text_map(&repl)),
                    ],
                );
            }
            for k in db.keyspaces.read().values() {
                add_row(
                    &t,
                    &[
                        ("keyspace_name", text(&k.name)),
                        ("durable_writes", boolean(k.durable_writes)),
                        ("replication", text_map(&replication_full(&k.replication))),
                    ],
                );
            }
        }
        ("system_schema", "tables") | ("system_schema", "columns") => {
            let mut schemas: Vec<Arc<Table>> = Vec::new();
            for s in all_schemas() {
                schemas.push(Arc::new(Table::new(s)));
            }
            for k in db.keyspaces.read().values() {
                schemas.extend(k.tables.values().cloned());
            }
            for tb in schemas {
                let s = &tb.schema;
                if name == "tables" {
                    table_row(&t, s);
                } else {
                    for c in &s.columns {
                        let order = match c.kind {
                            ColumnKind::Clustering => {
                                if s.ck_desc.get(c.position as usize).copied().unwrap_or(false) {
                                    "desc"
                                } else {
                                    "asc"
                                }
                            }
                            _ => "none",
                        };
                        add_row(
                            &t,
                            &[
                                ("keyspace_name", text(&s.keyspace)),
                                ("table_name", text(&s.name)),
                                ("column_name", text(&c.name)),
                                ("clustering_order", text(order)),
                                (
                                    "column_name_bytes",
                                    Some(Bytes::copy_from_slice(c.name.as_bytes())),
                                ),
                                ("kind", text(c.kind_name())),
                                ("position", int(c.position)),
                                ("type", text(&c.ty.schema_name())),
                            ],
                        );
                    }
                }
            }
        }
        // peers, peers_v2 and the remaining schema tables are empty on a single node.
        _ => {}
    }
    Some(Arc::new(t))
}

fn table_row(t: &Table, s: &TableSchema) {
    let opt = |k: &str| {
        s.options
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
    };
    let ttl: i32 = opt("default_time_to_live")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let gc: i32 = opt("gc_grace_seconds")
        .and_then(|v| v.parse().ok())
        .unwrap_or(864000);
    let comment = opt("comment").unwrap_or_default();
    let m = |p: &[(&str, &str)]| {
        text_map(
            &p.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect::<Vec<_>>(),
        )
    };
    add_row(
        t,
        &[
            ("keyspace_name", text(&s.keyspace)),
            ("table_name", text(&s.name)),
            ("additional_write_policy", text("99p")),
            ("bloom_filter_fp_chance", double(0.01)),
            (
                "caching",
                m(&[("keys", "ALL"), ("rows_per_partition", "NONE")]),
            ),
            ("cdc", boolean(false)),
            ("comment", text(&comment)),
            (
                "compaction",
                m(&[
                    (
                        "class",
                        "org.apache.cassandra.db.compaction.SizeTieredCompactionStrategy",
                    ),
                    ("max_threshold", "32"),
                    ("min_threshold", "4"),
                ]),
            ),
            (
                "compression",
                m(&[
                    ("chunk_length_in_kb", "16"),
                    ("class", "org.apache.cassandra.io.compress.LZ4Compressor"),
                ]),
            ),
            ("crc_check_chance", double(1.0)),
            ("dclocal_read_repair_chance", double(0.0)),
            ("default_time_to_live", int(ttl)),
            ("extensions", coll(&[])),
            ("flags", text_set(&["compound"])),
            ("gc_grace_seconds", int(gc)),
            ("id", uuid_v(s.id)),
            ("max_index_interval", int(2048)),
            ("memtable_flush_period_in_ms", int(0)),
            ("min_index_interval", int(128)),
            ("read_repair", text("BLOCKING")),
            ("read_repair_chance", double(0.0)),
            ("speculative_retry", text("99p")),
        ],
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_system_tables_parse() {
        assert_eq!(all_schemas().len(), DEFS.len());
        assert!(is_system_table("system", "local"));
        assert!(is_system_table("system_schema", "columns"));
        assert!(!is_system_table("system_schema", "scylla_tables"));
    }
}
