//! Rows this process staged, kept in memory for its own relay, so that it
//! sends them without reading them back from Postgres: that read cost
//! Postgres ~0.8 of its ~6 µs per record in the ingest benchmark
//! (BENCHMARKS.md, run 30), load that a database shared with Airflow is
//! spared.
//!
//! Only an optimisation: the queue in Postgres still says what is pending and
//! who claimed it. A relay takes a claimed range from here only if every row
//! of it is here, and reads it from the staging table otherwise (after a
//! restart, rows another process staged, rows staged while the handoff
//! was full, or rows put back on the queue after a failed delivery).

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::outbox::StagedRow;

/// Most rows kept: while the relay cannot produce (a broker outage), staging
/// goes on and its rows are read back later instead of piling up here.
pub const MAX_ROWS: usize = 50_000;

#[derive(Default)]
pub struct Handoff {
    rows: Mutex<BTreeMap<i64, StagedRow>>,
}

impl Handoff {
    fn rows(&self) -> std::sync::MutexGuard<'_, BTreeMap<i64, StagedRow>> {
        // A panic while holding the lock leaves a usable map: at worst some
        // rows are missing, and their ranges are read back.
        self.rows.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps a staged page's rows, unless that would exceed [`MAX_ROWS`].
    /// May be called before the page's commit: seqs are never reused, so a
    /// rolled-back page's rows are never claimed, and are evicted by
    /// [`Handoff::evict_below`] like rows another relay claimed.
    pub fn put(&self, page: Vec<StagedRow>) {
        let mut rows = self.rows();
        if rows.len() + page.len() > MAX_ROWS {
            return;
        }
        rows.extend(page.into_iter().map(|r| (r.seq, r)));
    }

    /// The rows `lo..=hi`, removed, if all of them are here; else None and
    /// nothing is removed.
    pub fn take(&self, lo: i64, hi: i64) -> Option<Vec<StagedRow>> {
        let mut rows = self.rows();
        let n = usize::try_from(hi - lo + 1).ok()?;
        if rows.range(lo..=hi).count() != n {
            return None;
        }
        Some((lo..=hi).filter_map(|seq| rows.remove(&seq)).collect())
    }

    /// Drops the rows below `seq`. Relays claim the queue's lowest ranges
    /// first, so once this process's relay has claimed ranges from `seq`
    /// on, rows below it were claimed by another relay (or never committed).
    pub fn evict_below(&self, seq: i64) {
        let mut rows = self.rows();
        while let Some(first) = rows.first_entry()
            && *first.key() < seq
        {
            first.remove();
        }
    }

    pub fn len(&self) -> usize {
        self.rows().len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn row(seq: i64) -> StagedRow {
        StagedRow {
            seq,
            batch_id: Uuid::nil(),
            record_id: Uuid::nil(),
            payload: seq.to_string().into_bytes(),
        }
    }

    #[test]
    fn takes_a_range_only_when_all_of_it_is_here() {
        let h = Handoff::default();
        h.put((1..=10).map(row).collect());
        h.put((12..=20).map(row).collect());
        assert!(h.take(9, 12).is_none(), "11 is missing");
        assert_eq!(h.len(), 19, "a miss removes nothing");
        let got: Vec<i64> = h.take(3, 5).expect("3..=5").iter().map(|r| r.seq).collect();
        assert_eq!(got, vec![3, 4, 5]);
        assert_eq!(h.len(), 16);
        assert!(h.take(3, 3).is_none(), "taken once");
        h.evict_below(12);
        assert_eq!(h.len(), 9);
        assert_eq!(h.take(12, 20).map(|r| r.len()), Some(9));
        assert!(h.is_empty());
    }

    #[test]
    fn keeps_at_most_max_rows() {
        let h = Handoff::default();
        let n = i64::try_from(MAX_ROWS).expect("fits");
        h.put((1..=n).map(row).collect());
        h.put(vec![row(n + 1)]);
        assert_eq!(h.len(), MAX_ROWS);
        assert!(h.take(n + 1, n + 1).is_none());
    }
}
