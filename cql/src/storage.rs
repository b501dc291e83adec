//! In-memory tables: partitions ordered by Murmur3 token, rows ordered by clustering key,
//! cells carrying write timestamps and TTL expiry, reconciled exactly like Cassandra.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};

use bytes::{BufMut, Bytes, BytesMut};
use parking_lot::RwLock;

use crate::types::CqlType;

/// Cassandra's Murmur3Partitioner token: first half of x64 128-bit murmur3 (seed 0), including
/// Cassandra's sign-extension of tail bytes, with i64::MIN mapped to i64::MAX.
pub fn murmur3_token(data: &[u8]) -> i64 {
    const C1: u64 = 0x87c3_7b91_1142_53d5;
    const C2: u64 = 0x4cf5_ad43_2745_937f;
    fn fmix(mut k: u64) -> u64 {
        k ^= k >> 33;
        k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
        k ^= k >> 33;
        k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        k ^= k >> 33;
        k
    }
    let len = data.len();
    let nblocks = len / 16;
    let mut h1: u64 = 0;
    let mut h2: u64 = 0;
    for i in 0..nblocks {
        let b = &data[i * 16..i * 16 + 16];
        let mut k1 = u64::from_le_bytes(b[0..8].try_into().unwrap_or([0; 8]));
        let mut k2 = u64::from_le_bytes(b[8..16].try_into().unwrap_or([0; 8]));
        k1 = k1.wrapping_mul(C1).rotate_left(31).wrapping_mul(C2);
        h1 ^= k1;
        h1 = h1
            .rotate_left(27)
            .wrapping_add(h2)
            .wrapping_mul(5)
            .wrapping_add(0x52dc_e729);
        k2 = k2.wrapping_mul(C2).rotate_left(33).wrapping_mul(C1);
        h2 ^= k2;
        h2 = h2
            .rotate_left(31)
            .wrapping_add(h1)
            .wrapping_mul(5)
            .wrapping_add(0x3849_5ab5);
    }
    let tail = &data[nblocks * 16..];
    let mut k1: u64 = 0;
    let mut k2: u64 = 0;
    // Java bytes are signed: Cassandra's tail loop sign-extends each byte.
    let sx = |b: u8| b as i8 as i64 as u64;
    for i in (8..tail.len()).rev() {
        k2 ^= sx(tail[i]) << ((i - 8) * 8);
    }
    if tail.len() > 8 {
        k2 = k2.wrapping_mul(C2).rotate_left(33).wrapping_mul(C1);
        h2 ^= k2;
    }
    for i in (0..tail.len().min(8)).rev() {
        k1 ^= sx(tail[i]) << (i * 8);
    }
    if !tail.is_empty() {
        k1 = k1.wrapping_mul(C1).rotate_left(31).wrapping_mul(C2);
        h1 ^= k1;
    }
    h1 ^= len as u64;
    h2 ^= len as u64;
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    h1 = fmix(h1);
    h2 = fmix(h2);
    h1 = h1.wrapping_add(h2);
    let t = h1 as i64;
    if t == i64::MIN { i64::MAX } else { t }
}

/// Serialized partition key: the value itself for one component, Cassandra's composite
/// encoding (u16 length, bytes, 0) for several.
pub fn serialize_partition_key(parts: &[Bytes]) -> Bytes {
    if parts.len() == 1 {
        return parts[0].clone();
    }
    let mut out = BytesMut::new();
    for p in parts {
        out.put_u16(p.len() as u16);
        out.put_slice(p);
        out.put_u8(0);
    }
    out.freeze()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    PartitionKey,
    Clustering,
    Regular,
}

impl ColumnKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ColumnKind::PartitionKey => "partition_key",
            ColumnKind::Clustering => "clustering",
            ColumnKind::Regular => "regular",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ColumnDef {
    pub name: String,
    pub ty: CqlType,
    pub kind: ColumnKind,
    /// Position within the partition key / clustering key; -1 for regular columns.
    pub position: i32,
    /// A static column (kind Regular): one value per partition, shared by all its rows.
    pub is_static: bool,
}

impl ColumnDef {
    /// The `kind` reported in system_schema.columns.
    pub fn kind_name(&self) -> &'static str {
        if self.is_static {
            "static"
        } else {
            self.kind.as_str()
        }
    }
}

#[derive(Debug)]
pub struct TableSchema {
    pub keyspace: String,
    pub name: String,
    pub id: uuid::Uuid,
    /// Column ids are indexes into this vector; they never change for a table's lifetime.
    pub columns: Vec<ColumnDef>,
    pub pk: Vec<usize>,
    pub ck: Vec<usize>,
    pub ck_desc: Vec<bool>,
    /// `SELECT *` order: partition key, clustering, then regular columns by name.
    pub star: Vec<usize>,
    pub options: Vec<(String, String)>,
    pub ck_order: Arc<[(CqlType, bool)]>,
}

impl TableSchema {
    pub fn new(
        keyspace: String,
        name: String,
        id: uuid::Uuid,
        columns: Vec<ColumnDef>,
        ck_desc: Vec<bool>,
        options: Vec<(String, String)>,
    ) -> TableSchema {
        let by_kind = |k: ColumnKind| {
            let mut v: Vec<usize> = (0..columns.len())
                .filter(|&i| columns[i].kind == k)
                .collect();
            v.sort_by_key(|&i| columns[i].position);
            v
        };
        let pk = by_kind(ColumnKind::PartitionKey);
        let ck = by_kind(ColumnKind::Clustering);
        let mut regular: Vec<usize> = (0..columns.len())
            .filter(|&i| columns[i].kind == ColumnKind::Regular)
            .collect();
        // Statics first, then regular columns, each by name (Cassandra's `SELECT *` order).
        regular.sort_by(|&a, &b| {
            (!columns[a].is_static, &columns[a].name)
                .cmp(&(!columns[b].is_static, &columns[b].name))
        });
        let star = pk
            .iter()
            .chain(ck.iter())
            .chain(regular.iter())
            .copied()
            .collect();
        let ck_order: Arc<[(CqlType, bool)]> = ck
            .iter()
            .zip(ck_desc.iter().chain(std::iter::repeat(&false)))
            .map(|(&i, &d)| (columns[i].ty.clone(), d))
            .collect();
        TableSchema {
            keyspace,
            name,
            id,
            columns,
            pk,
            ck,
            ck_desc,
            star,
            options,
            ck_order,
        }
    }

    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
}

/// Timestamps are microseconds; expiry is in seconds since the epoch, like Cassandra.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Liveness {
    pub ts: i64,
    pub ttl: i32,
    pub expires_at: i64,
}

impl Liveness {
    pub fn is_live(&self, now_s: i64) -> bool {
        self.ttl == 0 || self.expires_at > now_s
    }
    fn wins_over(&self, other: &Liveness) -> bool {
        if self.ts != other.ts {
            return self.ts > other.ts;
        }
        // Equal timestamps: expiring beats non-expiring, later expiry wins.
        match (self.ttl != 0, other.ttl != 0) {
            (true, false) => true,
            (false, true) => false,
            _ => self.expires_at > other.expires_at,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    /// `None` is a cell tombstone.
    pub value: Option<Bytes>,
    pub ts: i64,
    /// 0 for non-expiring cells.
    pub ttl: i32,
    /// For expiring cells: expiry time; for tombstones: deletion time (seconds).
    pub local_deletion: i64,
}

impl Cell {
    pub fn is_live(&self, now_s: i64) -> bool {
        self.value.is_some() && (self.ttl == 0 || self.local_deletion > now_s)
    }

    /// Cassandra's `Cells.reconcile`: does `self` win over `other`?
    pub fn wins_over(&self, other: &Cell) -> bool {
        if self.ts != other.ts {
            return self.ts > other.ts;
        }
        let a_del = self.value.is_none() || self.ttl != 0;
        let b_del = other.value.is_none() || other.ttl != 0;
        if a_del || b_del {
            // Tombstones and expiring cells beat regular cells with the same timestamp.
            if a_del != b_del {
                return a_del;
            }
            let a_tomb = self.value.is_none();
            let b_tomb = other.value.is_none();
            if a_tomb != b_tomb {
                return a_tomb;
            }
            if self.local_deletion != other.local_deletion {
                return self.local_deletion > other.local_deletion;
            }
        }
        // Same timestamp, same kind: the greater value (unsigned bytes) wins.
        let a = self.value.as_deref().unwrap_or(&[]);
        let b = other.value.as_deref().unwrap_or(&[]);
        a > b
    }
}

/// A clustering key with the ordering of its table (types and ASC/DESC).
#[derive(Clone, Debug)]
pub struct CKey {
    pub order: Arc<[(CqlType, bool)]>,
    pub values: Vec<Bytes>,
}

impl PartialEq for CKey {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for CKey {}
impl PartialOrd for CKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for CKey {
    fn cmp(&self, other: &Self) -> Ordering {
        for (i, (a, b)) in self.values.iter().zip(other.values.iter()).enumerate() {
            let (ty, desc) = match self.order.get(i) {
                Some((t, d)) => (t, *d),
                None => return a.cmp(b),
            };
            let o = ty.compare(a, b);
            let o = if desc { o.reverse() } else { o };
            if o != Ordering::Equal {
                return o;
            }
        }
        self.values.len().cmp(&other.values.len())
    }
}

#[derive(Debug, Clone, Default)]
pub struct Row {
    pub marker: Option<Liveness>,
    pub deleted_at: Option<i64>,
    /// Indexed by column id; key columns stay `None`.
    pub cells: Vec<Option<Cell>>,
}

impl Row {
    pub fn is_live(&self, now_s: i64) -> bool {
        self.marker.is_some_and(|m| m.is_live(now_s))
            || self.cells.iter().flatten().any(|c| c.is_live(now_s))
    }
}

#[derive(Debug, Clone)]
pub struct Partition {
    pub key_parts: Vec<Bytes>,
    pub deleted_at: Option<i64>,
    /// Cells of static columns (indexed by column id, like rows).
    pub static_row: Row,
    pub rows: RowMap,
}

/// A partition's rows by clustering key. Most partitions hold one row (every
/// table without clustering columns, like the reference job's): a B-tree
/// allocates a leaf node of ~1.2 KB even for one row, about the size of the
/// row's own data, and paging it in was ~7% of a pipeline's insert CPU.
#[derive(Debug, Clone, Default)]
pub enum RowMap {
    #[default]
    Empty,
    One(CKey, Row),
    Many(BTreeMap<CKey, Row>),
}

impl RowMap {
    pub fn get(&self, ck: &CKey) -> Option<&Row> {
        match self {
            RowMap::Empty => None,
            RowMap::One(k, r) => (k == ck).then_some(r),
            RowMap::Many(m) => m.get(ck),
        }
    }

    /// The row at `ck`, inserted empty if missing.
    pub fn get_or_default(&mut self, ck: CKey) -> &mut Row {
        // A second key turns the inline row into a tree.
        if let RowMap::One(k, _) = self
            && *k != ck
            && let RowMap::One(k, r) = std::mem::take(self)
        {
            *self = RowMap::Many(BTreeMap::from([(k, r)]));
        }
        match self {
            RowMap::Empty => {
                *self = RowMap::One(ck, Row::default());
                match self {
                    RowMap::One(_, r) => r,
                    _ => unreachable!("just set"),
                }
            }
            RowMap::One(_, r) => r,
            RowMap::Many(m) => m.entry(ck).or_default(),
        }
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&CKey, &mut Row) -> bool) {
        match self {
            RowMap::Empty => {}
            RowMap::One(k, r) => {
                if !keep(k, r) {
                    *self = RowMap::Empty;
                }
            }
            RowMap::Many(m) => m.retain(|k, r| keep(k, r)),
        }
    }

    /// The rows in clustering order whose keys are within `bounds`.
    pub fn range(&self, bounds: (Bound<CKey>, Bound<CKey>)) -> RowIter<'_> {
        match self {
            RowMap::Empty => RowIter::One(None),
            RowMap::One(k, r) => RowIter::One(bounds.contains(k).then_some((k, r))),
            RowMap::Many(m) => RowIter::Many(m.range(bounds)),
        }
    }

    pub fn iter(&self) -> RowIter<'_> {
        self.range((Bound::Unbounded, Bound::Unbounded))
    }

    pub fn values(&self) -> impl Iterator<Item = &Row> {
        self.iter().map(|(_, r)| r)
    }
}

pub enum RowIter<'a> {
    One(Option<(&'a CKey, &'a Row)>),
    Many(std::collections::btree_map::Range<'a, CKey, Row>),
}

impl<'a> Iterator for RowIter<'a> {
    type Item = (&'a CKey, &'a Row);
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            RowIter::One(r) => r.take(),
            RowIter::Many(i) => i.next(),
        }
    }
}

impl DoubleEndedIterator for RowIter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        match self {
            RowIter::One(r) => r.take(),
            RowIter::Many(i) => i.next_back(),
        }
    }
}

/// Partition position: ordered by token, then serialized key bytes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PKey {
    pub token: i64,
    pub key: Bytes,
}

impl PKey {
    pub fn new(key: Bytes) -> PKey {
        PKey {
            token: murmur3_token(&key),
            key,
        }
    }
}

/// One row-level change. Timestamps are already resolved; replaying it is idempotent.
#[derive(Debug, Clone)]
pub struct RowMutation {
    pub pk: Vec<Bytes>,
    pub ck: Vec<Bytes>,
    pub partition_delete: Option<i64>,
    pub row_delete: Option<i64>,
    pub marker: Option<Liveness>,
    pub cells: Vec<(u32, Cell)>,
}

const SHARDS: usize = 16;

fn shard_of(token: i64) -> usize {
    // Top bits of the token shifted to unsigned order: shards are contiguous token ranges,
    // so walking shards in index order walks tokens in order.
    (((token as u64) ^ (1 << 63)) >> 60) as usize
}

#[derive(Default)]
pub struct Shard {
    /// Boxed, so a B-tree node holds keys and pointers (~0.5 KB rather than
    /// ~2 KB) and an insert shifts less. Finding a key still misses the cache
    /// at each level of the tree: ~14% of ember-cql's CPU in `perf`.
    pub partitions: BTreeMap<PKey, Box<Partition>>,
}

pub struct Table {
    pub schema: TableSchema,
    pub shards: Vec<RwLock<Shard>>,
    /// Set when the table is dropped (or replaced by ALTER): prepared statements holding it
    /// must be re-prepared.
    pub dropped: AtomicBool,
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Table({}.{})", self.schema.keyspace, self.schema.name)
    }
}

impl Table {
    pub fn new(schema: TableSchema) -> Table {
        Table {
            schema,
            shards: (0..SHARDS).map(|_| RwLock::new(Shard::default())).collect(),
            dropped: AtomicBool::new(false),
        }
    }

    pub fn is_dropped(&self) -> bool {
        self.dropped.load(AtomicOrdering::Acquire)
    }

    pub fn ckey(&self, values: Vec<Bytes>) -> CKey {
        CKey {
            order: self.schema.ck_order.clone(),
            values,
        }
    }

    pub fn shard_for(&self, token: i64) -> &RwLock<Shard> {
        &self.shards[shard_of(token)]
    }

    pub fn truncate(&self) {
        for s in &self.shards {
            s.write().partitions.clear();
        }
    }

    /// Applies a mutation with Cassandra's reconciliation rules. Returns false (changing
    /// nothing) if the table was dropped or replaced by ALTER meanwhile.
    pub fn apply(&self, m: RowMutation) -> bool {
        let pkey = PKey::new(serialize_partition_key(&m.pk));
        let mut shard = self.shard_for(pkey.token).write();
        // Checked under the shard lock: `replace_into` sets the flag while holding all shards.
        if self.is_dropped() {
            return false;
        }
        self.apply_in(&mut shard, pkey, m);
        true
    }

    /// Like `apply`, but first lets `f` add cells computed from the current row and static
    /// row, all under the shard lock (collection element updates are read-modify-write).
    pub fn apply_computed<E>(
        &self,
        m: &mut RowMutation,
        f: impl FnOnce(&Row, &Row, &mut RowMutation) -> Result<(), E>,
    ) -> Result<bool, E> {
        let pkey = PKey::new(serialize_partition_key(&m.pk));
        let mut shard = self.shard_for(pkey.token).write();
        if self.is_dropped() {
            return Ok(false);
        }
        let empty = Row::default();
        let ck = self.ckey(m.ck.clone());
        let (row, static_row) = match shard.partitions.get(&pkey) {
            Some(p) => (p.rows.get(&ck).unwrap_or(&empty), &p.static_row),
            None => (&empty, &empty),
        };
        f(row, static_row, m)?;
        // The caller logs `m` after: collection operations are rare enough to copy.
        self.apply_in(&mut shard, pkey, m.clone());
        Ok(true)
    }

    /// Moves all data into `new` (same key columns) and retires this table; writers that
    /// still hold it then fail instead of writing into a table nobody reads.
    pub fn replace_into(&self, new: &Table) {
        let mut guards: Vec<_> = self.shards.iter().map(|s| s.write()).collect();
        self.dropped.store(true, AtomicOrdering::Release);
        for (g, ns) in guards.iter_mut().zip(&new.shards) {
            ns.write().partitions = std::mem::take(&mut g.partitions);
        }
    }

    /// Applies a mutation to the shard that owns `pkey` (the caller holds its lock). The
    /// mutation's values move into the row: cloning them cost an atomic count per cell on
    /// every insert, and as much again to drop the mutation after.
    pub fn apply_in(&self, shard: &mut Shard, pkey: PKey, m: RowMutation) {
        let RowMutation {
            pk,
            ck,
            partition_delete,
            row_delete,
            marker,
            cells,
        } = m;
        let ncols = self.schema.columns.len();
        let part = shard.partitions.entry(pkey).or_insert_with(|| {
            Box::new(Partition {
                key_parts: pk,
                deleted_at: None,
                static_row: Row::default(),
                rows: RowMap::Empty,
            })
        });
        if let Some(ts) = partition_delete
            && part.deleted_at.is_none_or(|d| ts > d)
        {
            part.deleted_at = Some(ts);
            purge_row(&mut part.static_row, ts);
            part.rows.retain(|_, r| {
                purge_row(r, ts);
                r.marker.is_some() || r.deleted_at.is_some() || r.cells.iter().any(|c| c.is_some())
            });
        }
        let cols = &self.schema.columns;
        let is_static = |c: u32| cols.get(c as usize).is_some_and(|d| d.is_static);
        let (statics, cells): (Vec<_>, Vec<_>) = if cells.iter().any(|(c, _)| is_static(*c)) {
            cells.into_iter().partition(|(c, _)| is_static(*c))
        } else {
            (Vec::new(), cells)
        };
        if !statics.is_empty() {
            let row = &mut part.static_row;
            if row.cells.len() < ncols {
                row.cells.resize(ncols, None);
            }
            let shadow = part.deleted_at;
            for (col, cell) in statics {
                merge_cell(&mut row.cells[col as usize], cell, shadow);
            }
        }
        let has_row_change = row_delete.is_some() || marker.is_some() || !cells.is_empty();
        if !has_row_change {
            return;
        }
        let pdel = part.deleted_at;
        let ck = CKey {
            order: self.schema.ck_order.clone(),
            values: ck,
        };
        let row = part.rows.get_or_default(ck);
        if row.cells.len() < ncols {
            row.cells.resize(ncols, None);
        }
        if let Some(ts) = row_delete
            && row.deleted_at.is_none_or(|d| ts > d)
        {
            row.deleted_at = Some(ts);
            purge_row(row, ts);
        }
        let shadow = match (pdel, row.deleted_at) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        if let Some(mk) = marker
            && shadow.is_none_or(|d| mk.ts > d)
            && row.marker.is_none_or(|cur| mk.wins_over(&cur))
        {
            row.marker = Some(mk);
        }
        for (col, cell) in cells {
            if let Some(slot) = row.cells.get_mut(col as usize) {
                merge_cell(slot, cell, shadow);
            }
        }
    }

    /// Every partition/row in storage order (used for snapshots): `encode`
    /// appends each row to a chunk under the shard's read lock, and `write`
    /// takes the chunk after the lock is released.
    ///
    /// A shard is read [`DUMP_CHUNK`] partitions at a time: holding a shard
    /// for the whole walk stalled every write to it for the length of a
    /// compaction, seconds at a million rows. Rows are encoded from where
    /// they are stored, with nothing copied: copying every cell out first
    /// took about a quarter of a compaction's CPU. A partition written between two
    /// chunks is dumped as it stands then; the commit log replays the rest.
    pub fn dump<E>(
        &self,
        mut encode: impl FnMut(&mut Vec<u8>, RowRef<'_>),
        mut write: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut chunk = Vec::new();
        for shard in &self.shards {
            let mut after: Option<PKey> = None;
            loop {
                let last = {
                    let s = shard.read();
                    let from = match &after {
                        Some(k) => Bound::Excluded(k),
                        None => Bound::Unbounded,
                    };
                    let mut last = None;
                    for (k, part) in s
                        .partitions
                        .range::<PKey, _>((from, Bound::Unbounded))
                        .take(DUMP_CHUNK)
                    {
                        part.dump(&mut |row| encode(&mut chunk, row));
                        last = Some(k);
                    }
                    last.cloned()
                };
                if !chunk.is_empty() {
                    write(&chunk)?;
                    chunk.clear();
                }
                match last {
                    Some(k) => after = Some(k),
                    None => break,
                }
            }
        }
        Ok(())
    }
}

/// Partitions [`Table::dump`] reads under one shard lock.
const DUMP_CHUNK: usize = 256;

/// A row-level change or a stored row, borrowed: what the commit log and
/// snapshots encode.
#[derive(Clone, Copy)]
pub struct RowRef<'a> {
    pub pk: &'a [Bytes],
    pub ck: &'a [Bytes],
    pub partition_delete: Option<i64>,
    pub row_delete: Option<i64>,
    pub marker: Option<Liveness>,
    pub cells: CellsRef<'a>,
}

/// A mutation's cells, listed with their column ids, or a stored row's,
/// indexed by column id.
#[derive(Clone, Copy)]
pub enum CellsRef<'a> {
    Listed(&'a [(u32, Cell)]),
    Indexed(&'a [Option<Cell>]),
}

impl<'a> CellsRef<'a> {
    pub fn iter(self) -> impl Iterator<Item = (u32, &'a Cell)> {
        let (listed, indexed): (&[(u32, Cell)], &[Option<Cell>]) = match self {
            CellsRef::Listed(l) => (l, &[]),
            CellsRef::Indexed(i) => (&[], i),
        };
        listed.iter().map(|(c, cell)| (*c, cell)).chain(
            indexed
                .iter()
                .enumerate()
                .filter_map(|(i, c)| c.as_ref().map(|c| (i as u32, c))),
        )
    }
}

impl RowMutation {
    pub fn as_row_ref(&self) -> RowRef<'_> {
        RowRef {
            pk: &self.pk,
            ck: &self.ck,
            partition_delete: self.partition_delete,
            row_delete: self.row_delete,
            marker: self.marker,
            cells: CellsRef::Listed(&self.cells),
        }
    }
}

impl Partition {
    /// This partition's static row, tombstone and rows, as the mutations
    /// that rebuild them.
    fn dump(&self, f: &mut impl FnMut(RowRef<'_>)) {
        let only_pk = RowRef {
            pk: &self.key_parts,
            ck: &[],
            partition_delete: None,
            row_delete: None,
            marker: None,
            cells: CellsRef::Listed(&[]),
        };
        if self.static_row.cells.iter().any(|c| c.is_some()) {
            f(RowRef {
                cells: CellsRef::Indexed(&self.static_row.cells),
                ..only_pk
            });
        }
        if self.deleted_at.is_some() {
            f(RowRef {
                partition_delete: self.deleted_at,
                ..only_pk
            });
        }
        for (ck, row) in self.rows.iter() {
            f(RowRef {
                ck: &ck.values,
                row_delete: row.deleted_at,
                marker: row.marker,
                cells: CellsRef::Indexed(&row.cells),
                ..only_pk
            });
        }
    }
}

/// Stores `cell` in `slot` if it is not shadowed by a tombstone at `shadow` and wins
/// reconciliation against what is there.
fn merge_cell(slot: &mut Option<Cell>, cell: Cell, shadow: Option<i64>) {
    if shadow.is_some_and(|d| cell.ts <= d) {
        return;
    }
    match slot {
        Some(cur) if !cell.wins_over(cur) => {}
        _ => *slot = Some(cell),
    }
}

fn purge_row(r: &mut Row, ts: i64) {
    if r.marker.is_some_and(|m| m.ts <= ts) {
        r.marker = None;
    }
    for c in r.cells.iter_mut() {
        if c.as_ref().is_some_and(|c| c.ts <= ts) {
            *c = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur3_matches_cassandra() {
        // token(1) for an int partition key as Cassandra reports it.
        assert_eq!(murmur3_token(&1i32.to_be_bytes()), -4069959284402364209);
    }

    /// A row map starts with one row inline, becomes a B-tree at the second
    /// clustering key, and reads the same either way: lookups, ranges in
    /// both directions, and removal.
    #[test]
    fn row_map_holds_one_row_inline_and_grows_into_a_tree() {
        let order: Arc<[(CqlType, bool)]> = Arc::from(vec![(CqlType::Int, false)]);
        let ck = |i: i32| CKey {
            order: order.clone(),
            values: vec![Bytes::copy_from_slice(&i.to_be_bytes())],
        };
        fn keys<'a>(it: impl Iterator<Item = (&'a CKey, &'a Row)>) -> Vec<(u8, Option<i64>)> {
            it.map(|(k, r)| (k.values[0][3], r.deleted_at)).collect()
        }
        let mut m = RowMap::default();
        assert!(m.get(&ck(1)).is_none() && m.iter().next().is_none());
        m.get_or_default(ck(2)).deleted_at = Some(20);
        assert!(matches!(m, RowMap::One(..)));
        m.get_or_default(ck(2)).marker = None; // the same key stays inline
        assert!(matches!(m, RowMap::One(..)));
        assert_eq!(m.get(&ck(2)).and_then(|r| r.deleted_at), Some(20));
        assert!(m.get(&ck(3)).is_none());
        let above = |i| (Bound::Excluded(ck(i)), Bound::Unbounded);
        assert_eq!(keys(m.range(above(1))), [(2, Some(20))]);
        assert_eq!(keys(m.range(above(2))), []);
        m.get_or_default(ck(1)).deleted_at = Some(10);
        m.get_or_default(ck(3));
        assert!(matches!(m, RowMap::Many(_)));
        assert_eq!(keys(m.iter()), [(1, Some(10)), (2, Some(20)), (3, None)]);
        assert_eq!(
            keys(m.iter().rev()),
            [(3, None), (2, Some(20)), (1, Some(10))]
        );
        assert_eq!(keys(m.range(above(1))), [(2, Some(20)), (3, None)]);
        assert_eq!(m.get(&ck(2)).and_then(|r| r.deleted_at), Some(20));
        m.retain(|k, _| k.values[0][3] != 2);
        assert_eq!(keys(m.iter()), [(1, Some(10)), (3, None)]);
        let mut one = RowMap::default();
        one.get_or_default(ck(5));
        one.retain(|_, _| false);
        assert!(matches!(one, RowMap::Empty));
    }

    /// More partitions per shard than one dump chunk: every row comes out
    /// once, with its cell, and no shard stays locked while `f` runs.
    #[test]
    fn dump_yields_every_row_across_chunks() {
        let col = |name: &str, ty, kind, position| ColumnDef {
            name: name.into(),
            ty,
            kind,
            position,
            is_static: false,
        };
        let t = Table::new(TableSchema::new(
            "ks".into(),
            "t".into(),
            uuid::Uuid::new_v4(),
            vec![
                col("id", CqlType::Int, ColumnKind::PartitionKey, 0),
                col("v", CqlType::Int, ColumnKind::Regular, -1),
            ],
            vec![],
            vec![],
        ));
        let row = |id: i32, v: i32| RowMutation {
            pk: vec![Bytes::copy_from_slice(&id.to_be_bytes())],
            ck: Vec::new(),
            partition_delete: None,
            row_delete: None,
            marker: Some(Liveness {
                ts: 1,
                ttl: 0,
                expires_at: 0,
            }),
            cells: vec![(
                1,
                Cell {
                    value: Some(Bytes::copy_from_slice(&v.to_be_bytes())),
                    ts: 1,
                    ttl: 0,
                    local_deletion: 0,
                },
            )],
        };
        let n = (SHARDS * DUMP_CHUNK * 3) as i32;
        for id in 0..n {
            assert!(t.apply(row(id, id * 2)));
        }
        let mut seen = std::collections::HashMap::new();
        let mut chunks = 0;
        let encode = |out: &mut Vec<u8>, row: RowRef<'_>| {
            out.extend_from_slice(&row.pk[0]);
            let cells: Vec<_> = row.cells.iter().collect();
            assert_eq!(cells.len(), 1);
            out.extend_from_slice(cells[0].1.value.as_ref().unwrap());
        };
        t.dump(encode, |chunk| {
            chunks += 1;
            for rec in chunk.chunks(8) {
                let id = i32::from_be_bytes(rec[..4].try_into().unwrap());
                let v = i32::from_be_bytes(rec[4..].try_into().unwrap());
                assert!(seen.insert(id, v).is_none(), "row {id} dumped twice");
            }
            // `write` runs with no shard locked: writers are not held up by it.
            assert!(t.shards.iter().all(|s| s.try_write().is_some()));
            Ok::<(), ()>(())
        })
        .unwrap();
        assert!(
            chunks >= SHARDS * 2,
            "{chunks} chunks: the shards were not read in chunks"
        );
        assert_eq!(seen.len(), n as usize);
        for id in 0..n {
            assert_eq!(seen.get(&id), Some(&(id * 2)), "row {id}");
        }
    }

    #[test]
    fn reconcile() {
        let c = |v: &[u8], ts| Cell {
            value: Some(Bytes::copy_from_slice(v)),
            ts,
            ttl: 0,
            local_deletion: 0,
        };
        assert!(c(b"a", 2).wins_over(&c(b"b", 1)));
        assert!(!c(b"a", 1).wins_over(&c(b"b", 2)));
        assert!(c(b"b", 1).wins_over(&c(b"a", 1)));
        let tomb = Cell {
            value: None,
            ts: 1,
            ttl: 0,
            local_deletion: 5,
        };
        assert!(tomb.wins_over(&c(b"z", 1)));
    }
}
