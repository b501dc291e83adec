//! The Postgres staging table (transactional outbox). Every fetched page is
//! written in one transaction, with its rows queued as pending; the relay
//! takes rows off the queue and records their Kafka partition/offset in the
//! transaction that saw the broker acknowledge them, so a crash or a broker
//! outage leaves unsent rows pending.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::{Client, NoTls, Statement};
use tracing::error;
use uuid::Uuid;

use crate::handoff::Handoff;
use crate::record::User;

/// The stack's private Postgres (`scripts/stack`), ember-ingest's default.
pub const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:55432/ember";

/// `EMBER_PG`, else [`DEFAULT_PG_URL`] (what the `--postgres` flag defaults to).
pub fn pg_url_from_env() -> String {
    std::env::var("EMBER_PG").unwrap_or_else(|_| DEFAULT_PG_URL.to_string())
}

/// Connects and drives the connection on a background task. JIT is off for
/// the session: ember-ingest's statements are short, and Postgres compiled
/// the relay's claims with LLVM once the staging table grew (its cost
/// estimate passed `jit_above_cost`), which took ~20% of the relay's
/// backend CPU in `perf`.
pub async fn connect(url: &str) -> Result<Client, tokio_postgres::Error> {
    let mut config: tokio_postgres::Config = url.parse()?;
    let options = match config.get_options() {
        Some(o) => format!("{o} -c jit=off"),
        None => "-c jit=off".to_string(),
    };
    config.options(&options);
    let (client, conn) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            error!(error = %e, "postgres connection closed");
        }
    });
    Ok(client)
}

/// Names of the staging table and the tables beside it. The name is
/// validated as a plain identifier (`cli::sql_ident`) before it gets here.
#[derive(Debug, Clone)]
pub struct Tables {
    /// The staged records; written once.
    pub staging: String,
    /// One row per batch, with its fetched and produced counts.
    pub batches: String,
    /// The relay's queue: ranges `[lo, hi]` of consecutive `seq`s not yet
    /// produced, at most [`RANGE_ROWS`] each.
    pub queue: String,
    /// Where each produced row went (seq, topic, kafka_partition,
    /// kafka_offset, produced_at): a view over `produced_runs`.
    pub produced: String,
    /// What the view reads: one row per run of consecutive seqs marked
    /// together (at most [`RANGE_ROWS`]), their partitions and offsets in
    /// arrays.
    pub produced_runs: String,
}

/// The most rows one queue range holds. The relay claims whole ranges, so
/// this bounds how far a claim can run past its size.
pub const RANGE_ROWS: i64 = 500;

/// SQL that queues the seqs of `seqs` (a query with one bigint column,
/// `seq`) as ranges of consecutive seqs of at most [`RANGE_ROWS`]. A range
/// holds only seqs it was given: when another session's insert took seqs
/// in the middle of a page, the page gets one range per unbroken run.
fn queue_ranges(queue: &str, seqs: &str) -> String {
    format!(
        "INSERT INTO {queue} (lo, hi)
         SELECT min(seq), max(seq) FROM (
             SELECT seq, seq - n AS run, (n - 1) / {RANGE_ROWS} AS chunk
             FROM (SELECT seq, row_number() OVER (ORDER BY seq) AS n FROM ({seqs}) AS s) AS r
         ) AS c GROUP BY run, chunk"
    )
}

/// SQL that records the rows of `rows` (a query with columns seq, topic,
/// kafka_partition, kafka_offset, produced_at) in `runs`: one row per run of
/// consecutive seqs with the same topic and time, at most [`RANGE_ROWS`].
fn produced_runs_from(runs: &str, rows: &str) -> String {
    format!(
        "INSERT INTO {runs} (lo, hi, topic, partitions, offsets, produced_at)
         SELECT min(seq), max(seq), topic, array_agg(kafka_partition ORDER BY seq),
                array_agg(kafka_offset ORDER BY seq), produced_at
         FROM (
             SELECT r.*, seq - n AS run, (n - 1) / {RANGE_ROWS} AS chunk
             FROM (SELECT d.*, row_number() OVER (PARTITION BY topic, produced_at ORDER BY seq) AS n
                   FROM ({rows}) AS d) AS r
         ) AS c GROUP BY topic, produced_at, run, chunk"
    )
}

/// Puts `seqs` (staged rows whose delivery failed) back on the queue.
pub async fn requeue(c: &Client, t: &Tables, seqs: &[i64]) -> Result<u64, tokio_postgres::Error> {
    c.execute(
        &queue_ranges(&t.queue, "SELECT unnest($1::bigint[]) AS seq"),
        &[&seqs],
    )
    .await
}

impl Tables {
    pub fn new(staging: &str) -> Self {
        Tables {
            staging: staging.to_string(),
            batches: format!("{staging}_batches"),
            queue: format!("{staging}_queue"),
            produced: format!("{staging}_produced"),
            produced_runs: format!("{staging}_produced_runs"),
        }
    }

    /// The previous version's queue, one seq per row: moved to ranges at
    /// start, dropped with the rest.
    fn seq_queue(&self) -> String {
        format!("{}_pending", self.staging)
    }
}

/// Creates the schema if missing, and moves a staging table of an earlier
/// version (delivery columns on the record's row) to this one. Serialised
/// with an advisory lock because concurrent `CREATE TABLE IF NOT EXISTS` can
/// still collide in Postgres.
pub async fn ensure_schema(client: &mut Client, t: &Tables) -> Result<(), tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext($1))",
        &[&format!("ember_ingest:{}", t.staging)],
    )
    .await?;
    let (s, b, q, p) = (&t.staging, &t.batches, &t.queue, &t.produced);
    // The record's row is written once. Its delivery goes to two narrow
    // tables: a queue of pending seq ranges, which the relay deletes from as
    // it claims, and the produced results. An earlier version kept both on
    // the record's row, so marking a row produced rewrote its whole ~1 KB
    // (and could not be a HOT update): that cost Postgres more than staging
    // it. The next one queued each seq on its own row, which cost Postgres
    // ~5 µs a row to insert, claim and vacuum; a range costs that per page.
    //
    // `record` is json, not jsonb: Postgres validates it and keeps the text
    // as staged, so the relay sends it without parsing it again, fields in
    // the record's order. (A table an earlier version created as jsonb still
    // works; its records come back with jsonb's key order.)
    tx.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS {b} (
            id uuid PRIMARY KEY,
            source text NOT NULL,
            requested integer NOT NULL,
            seed bigint,
            fetched integer NOT NULL DEFAULT 0,
            state text NOT NULL,
            error text,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            produced bigint DEFAULT 0);
        -- Rows produced, kept by the relay's marks so a status poll reads one
        -- row instead of counting the batch's. NULL: a batch staged before
        -- the column existed, whose rows are counted instead.
        ALTER TABLE {b} ADD COLUMN IF NOT EXISTS produced bigint;
        ALTER TABLE {b} ALTER COLUMN produced SET DEFAULT 0;
        CREATE TABLE IF NOT EXISTS {s} (
            seq bigserial PRIMARY KEY,
            batch_id uuid NOT NULL,
            record_id uuid NOT NULL,
            record json NOT NULL,
            fetched_at timestamptz NOT NULL,
            staged_at timestamptz NOT NULL DEFAULT now(),
            replay_count integer NOT NULL DEFAULT 0,
            replayed_at timestamptz);"
    ))
    .await?;
    let legacy = tx
        .query_opt(
            "SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass($1)
             AND attname = 'produced_at' AND NOT attisdropped",
            &[&s.as_str()],
        )
        .await?
        .is_some();
    let seq_queue = t.seq_queue();
    let seq_queue_exists = tx
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&seq_queue])
        .await?
        .get::<_, bool>(0);
    // No foreign keys to the record's row: each would cost a lookup per
    // write, and only ember-ingest writes these tables.
    //
    // Where each row went is kept per run of seqs marked together, with the
    // partitions and offsets in arrays, and shown per seq by the view `{p}`.
    // One row per record (the previous version) cost Postgres a heap tuple,
    // an index entry and their WAL per record: runs took ~10% off its CPU in
    // the ingest benchmark (BENCHMARKS.md, run 26). The view expands every
    // run; to find one seq fast, read the run with the greatest `lo` ≤ seq.
    let r = &t.produced_runs;
    let per_seq_table = tx
        .query_one(
            "SELECT coalesce((SELECT relkind = 'r' FROM pg_class WHERE oid = to_regclass($1)), false)",
            &[&p.as_str()],
        )
        .await?
        .get::<_, bool>(0);
    tx.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS {q} (lo bigint PRIMARY KEY, hi bigint NOT NULL);
        CREATE TABLE IF NOT EXISTS {r} (
            lo bigint PRIMARY KEY,
            hi bigint NOT NULL,
            topic text NOT NULL,
            partitions integer[] NOT NULL,
            offsets bigint[] NOT NULL,
            produced_at timestamptz NOT NULL DEFAULT now());"
    ))
    .await?;
    // A run (~6 KB at RANGE_ROWS) stays inline and uncompressed: by default
    // Postgres compressed its arrays with pglz and moved them, or else the
    // topic, to the TOAST table at every mark: ~10% of its CPU in the
    // ingest benchmark (BENCHMARKS.md, run 30).
    let toasted = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass($1)
             AND attname IN ('topic', 'partitions', 'offsets') AND attstorage <> 'p')",
            &[&r.as_str()],
        )
        .await?
        .get::<_, bool>(0);
    if toasted {
        tx.batch_execute(&format!(
            "ALTER TABLE {r} ALTER COLUMN topic SET STORAGE PLAIN,
                ALTER COLUMN partitions SET STORAGE PLAIN, ALTER COLUMN offsets SET STORAGE PLAIN;"
        ))
        .await?;
    }
    if per_seq_table {
        tx.batch_execute(&format!(
            "{};
            DROP TABLE {p};",
            produced_runs_from(
                r,
                &format!("SELECT seq, topic, kafka_partition, kafka_offset, produced_at FROM {p}")
            )
        ))
        .await?;
    }
    tx.batch_execute(&format!(
        "CREATE OR REPLACE VIEW {p} AS
            SELECT r.lo + i - 1 AS seq, r.topic, r.partitions[i] AS kafka_partition,
                   r.offsets[i] AS kafka_offset, r.produced_at
            FROM {r} r, generate_subscripts(r.offsets, 1) AS i;"
    ))
    .await?;
    if seq_queue_exists {
        tx.batch_execute(&format!(
            "{};
            DROP TABLE {seq_queue};",
            queue_ranges(q, &format!("SELECT seq FROM {seq_queue}"))
        ))
        .await?;
    }
    if legacy {
        tx.batch_execute(&format!(
            "{};
            {};
            DROP INDEX IF EXISTS {s}_unproduced;
            ALTER TABLE {s} DROP COLUMN produced_at, DROP COLUMN topic,
                DROP COLUMN kafka_partition, DROP COLUMN kafka_offset;",
            queue_ranges(q, &format!("SELECT seq FROM {s} WHERE produced_at IS NULL")),
            produced_runs_from(
                r,
                &format!(
                    "SELECT seq, topic, kafka_partition, kafka_offset, produced_at
                     FROM {s} WHERE produced_at IS NOT NULL"
                )
            )
        ))
        .await?;
    }
    tx.commit().await
}

/// Drops the staging table and the tables beside it (and an earlier
/// version's queue and per-seq produced table, if they are still there).
pub async fn drop_tables(client: &Client, t: &Tables) -> Result<(), tokio_postgres::Error> {
    // `produced` is a view over `produced_runs` (dropped with it), or still
    // the previous version's table.
    client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS {}, {}, {}, {}, {} CASCADE;",
            t.staging,
            t.batches,
            t.queue,
            t.produced_runs,
            t.seq_queue()
        ))
        .await?;
    let table_left = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&t.produced])
        .await?
        .get::<_, bool>(0);
    if table_left {
        client
            .batch_execute(&format!("DROP TABLE {}", t.produced))
            .await?;
    }
    Ok(())
}

pub async fn create_batch(
    client: &Client,
    t: &Tables,
    id: Uuid,
    source: &str,
    requested: i32,
    seed: Option<i64>,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            &format!(
                "INSERT INTO {} (id, source, requested, seed, state) VALUES ($1, $2, $3, $4, 'fetching')",
                t.batches
            ),
            &[&id, &source, &requested, &seed],
        )
        .await?;
    Ok(())
}

/// Stages pages into one staging table over one connection, with its three
/// statements prepared once: sent as text, each page's were parsed and
/// planned again (~10% of the stager's Postgres CPU in `perf`).
pub struct Stager {
    lock_key: String,
    lock: Statement,
    stage: Statement,
    fetched: Statement,
}

impl Stager {
    pub async fn prepare(client: &Client, t: &Tables) -> Result<Stager, tokio_postgres::Error> {
        Ok(Stager {
            lock_key: format!("ember_ingest_stage:{}", t.staging),
            lock: client
                .prepare("SELECT pg_advisory_xact_lock(hashtext($1))")
                .await?,
            // Returns each row's seq with its id, which says which record
            // got which seq (for the handoff to this process's relay).
            stage: client
                .prepare(&format!(
                    "WITH staged AS (
                        INSERT INTO {} (batch_id, record_id, record, fetched_at)
                        SELECT $1, r.id, r.rec::json, $4 FROM unnest($2::uuid[], $3::text[]) AS r(id, rec)
                        RETURNING seq, record_id),
                     queued AS ({})
                     SELECT seq, record_id FROM staged",
                    t.staging,
                    queue_ranges(&t.queue, "SELECT seq FROM staged")
                ))
                .await?,
            fetched: client
                .prepare(&format!(
                    "UPDATE {} SET fetched = fetched + $2, updated_at = now() WHERE id = $1",
                    t.batches
                ))
                .await?,
        })
    }

    /// Stages one fetched page and bumps the batch's fetched count,
    /// atomically, on the connection the statements were prepared on; hands
    /// the rows to `handoff` (this process's relay), if given.
    pub async fn stage_page(
        &self,
        client: &mut Client,
        batch: Uuid,
        users: &[User],
        fetched_at: DateTime<Utc>,
        handoff: Option<&Handoff>,
    ) -> Result<u64, anyhow::Error> {
        let mut ids = Vec::with_capacity(users.len());
        let mut records = Vec::with_capacity(users.len());
        for u in users {
            ids.push(Uuid::parse_str(&u.id)?);
            records.push(serde_json::to_string(u)?);
        }
        let tx = client.transaction().await?;
        // One stager at a time per table, so a page's seqs are consecutive
        // and it is queued as one range: interleaved with another batch's
        // inserts, pages split into runs of a few rows, and claims of whole
        // ranges shrink with them. The lock is held for one page.
        tx.execute(&self.lock, &[&self.lock_key]).await?;
        let seqs = tx
            .query(&self.stage, &[&batch, &ids, &records, &fetched_at])
            .await?;
        tx.execute(&self.fetched, &[&batch, &i32::try_from(users.len())?])
            .await?;
        if let Some(handoff) = handoff {
            // Before the commit, so the relay finds the rows as soon as it
            // can claim them (see `Handoff::put`). Only if the rows came
            // back in the order given, which pairs each seq with its record
            // even when the API repeats an id.
            let in_order = seqs.len() == ids.len()
                && seqs
                    .iter()
                    .zip(&ids)
                    .all(|(r, id)| r.get::<_, Uuid>(1) == *id);
            if in_order {
                handoff.put(
                    seqs.iter()
                        .zip(ids)
                        .zip(records)
                        .map(|((r, record_id), record)| StagedRow {
                            seq: r.get(0),
                            batch_id: batch,
                            record_id,
                            payload: record.into_bytes(),
                        })
                        .collect(),
                );
            }
        }
        tx.commit().await?;
        Ok(users.len() as u64)
    }
}

pub async fn finish_batch(
    client: &Client,
    t: &Tables,
    batch: Uuid,
    error: Option<&str>,
) -> Result<(), tokio_postgres::Error> {
    let state = if error.is_some() { "failed" } else { "staged" };
    client
        .execute(
            &format!(
                "UPDATE {} SET state = $2, error = $3, updated_at = now() WHERE id = $1",
                t.batches
            ),
            &[&batch, &state, &error],
        )
        .await?;
    Ok(())
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BatchStatus {
    pub batch_id: Uuid,
    pub source: String,
    pub requested: i32,
    pub fetched: i32,
    pub staged: i64,
    pub produced: i64,
    /// fetching | staged (some rows not yet produced) | produced | failed
    pub state: String,
    pub error: Option<String>,
}

pub async fn batch_status(
    client: &Client,
    t: &Tables,
    batch: Uuid,
) -> Result<Option<BatchStatus>, tokio_postgres::Error> {
    let Some(b) = client
        .query_opt(
            &format!(
                "SELECT source, requested, fetched, state, error, produced FROM {} WHERE id = $1",
                t.batches
            ),
            &[&batch],
        )
        .await?
    else {
        return Ok(None);
    };
    let fetched: i32 = b.get(2);
    // A page's rows and its `fetched` bump commit together, so `fetched` is
    // the staged count; only batches from before the counter are counted.
    let (staged, produced) = match b.get::<_, Option<i64>>(5) {
        Some(produced) => (i64::from(fetched), produced),
        None => {
            let c = client
                .query_one(
                    &format!(
                        "SELECT count(*), count(p.seq) FROM {} s LEFT JOIN {} p USING (seq)
                         WHERE s.batch_id = $1",
                        t.staging, t.produced
                    ),
                    &[&batch],
                )
                .await?;
            (c.get(0), c.get(1))
        }
    };
    let stored: String = b.get(3);
    // A failed fetch still has its staged rows produced; report "failed"
    // so callers retry, but only once nothing it staged is pending.
    let state = match stored.as_str() {
        "staged" if produced == staged => "produced".to_string(),
        _ => stored,
    };
    Ok(Some(BatchStatus {
        batch_id: batch,
        source: b.get(0),
        requested: b.get(1),
        fetched,
        staged,
        produced,
        state,
        error: b.get(4),
    }))
}

/// Polls the batch every 100 ms on one connection (opened again if it
/// drops) until all it staged is produced (state "produced", or "failed"
/// with every staged row produced), or `timeout` passes.
pub async fn wait_produced(
    pg_url: &str,
    t: &Tables,
    batch: Uuid,
    timeout: Duration,
) -> anyhow::Result<BatchStatus> {
    let deadline = Instant::now() + timeout;
    let mut client = connect(pg_url).await?;
    loop {
        if client.is_closed() {
            client = connect(pg_url).await?;
        }
        if let Some(s) = batch_status(&client, t, batch).await?
            && (s.state == "produced" || (s.state == "failed" && s.produced == s.staged))
        {
            return Ok(s);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "batch {batch} not produced within {timeout:?}; its rows stay staged and will be sent later"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The batch's `produced` counter (None: no such batch, or a batch staged
/// before the counter existed).
pub async fn batch_produced(
    client: &Client,
    t: &Tables,
    batch: Uuid,
) -> Result<Option<i64>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            &format!("SELECT produced FROM {} WHERE id = $1", t.batches),
            &[&batch],
        )
        .await?;
    Ok(row.and_then(|r| r.get(0)))
}

/// Rows not yet produced (the queue's ranges hold consecutive seqs, so a
/// range's size is its row count).
pub async fn backlog(client: &Client, t: &Tables) -> Result<i64, tokio_postgres::Error> {
    let r = client
        .query_one(
            &format!(
                "SELECT coalesce(sum(hi - lo + 1), 0)::bigint FROM {}",
                t.queue
            ),
            &[],
        )
        .await?;
    Ok(r.get(0))
}

/// A staged row as the producer sends it.
#[derive(Debug, Clone)]
pub struct StagedRow {
    pub seq: i64,
    pub batch_id: Uuid,
    pub record_id: Uuid,
    pub payload: Vec<u8>,
}
