//! Fixing a micro-batch's offset ranges, as Spark's Kafka source does: from
//! where the last batch ended to the latest offset, capped by
//! `maxOffsetsPerTrigger` split across partitions in proportion to backlog.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A topic-partition.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

/// Offsets per topic-partition.
pub type PartitionOffsets = BTreeMap<TopicPartition, i64>;

/// One task's work: `[from, until)` of one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetRange {
    pub topic: String,
    pub partition: i32,
    pub from: i64,
    pub until: i64,
}

impl OffsetRange {
    pub fn len(&self) -> u64 {
        (self.until - self.from).max(0) as u64
    }
    pub fn is_empty(&self) -> bool {
        self.until <= self.from
    }
}

/// (partition, start, records) for each partition with records between
/// `start` and `latest`.
fn partition_backlogs<'a>(
    start: &'a PartitionOffsets,
    latest: &'a PartitionOffsets,
) -> impl Iterator<Item = (&'a TopicPartition, i64, u64)> {
    latest.iter().filter_map(|(tp, &end)| {
        let from = *start.get(tp)?;
        (end > from).then(|| (tp, from, (end - from) as u64))
    })
}

/// Records between `start` and `latest`, over all partitions.
pub fn backlog(start: &PartitionOffsets, latest: &PartitionOffsets) -> u64 {
    partition_backlogs(start, latest).map(|b| b.2).sum()
}

/// The ranges of the next batch: for every partition with data between
/// `start` and `latest`, at most `max_offsets` records in all.
///
/// With a cap, each partition gets `cap × its backlog / total backlog`
/// (rounded down, at least 1 while it has backlog), then the remainder goes
/// to the largest backlogs, so the sum is exactly the cap.
pub fn plan_ranges(
    start: &PartitionOffsets,
    latest: &PartitionOffsets,
    max_offsets: Option<u64>,
) -> Vec<OffsetRange> {
    let backlog: Vec<(&TopicPartition, i64, u64)> = partition_backlogs(start, latest).collect();
    let total: u64 = backlog.iter().map(|b| b.2).sum();
    let take: Vec<u64> = match max_offsets {
        Some(cap) if total > cap => {
            let mut shares: Vec<u64> = backlog
                .iter()
                .map(|b| ((cap as u128 * b.2 as u128) / total as u128) as u64)
                .map(|s| s.max(1))
                .collect();
            let mut assigned: u64 = shares.iter().sum();
            // Give the remainder (or take back the excess of the max(1)s)
            // by backlog order, deterministically.
            let mut order: Vec<usize> = (0..backlog.len()).collect();
            order.sort_by(|&a, &b| backlog[b].2.cmp(&backlog[a].2).then(a.cmp(&b)));
            while assigned < cap {
                let mut progressed = false;
                for &i in &order {
                    if assigned == cap {
                        break;
                    }
                    if shares[i] < backlog[i].2 {
                        shares[i] += 1;
                        assigned += 1;
                        progressed = true;
                    }
                }
                if !progressed {
                    break;
                }
            }
            while assigned > cap {
                let mut progressed = false;
                for &i in order.iter().rev() {
                    if assigned == cap {
                        break;
                    }
                    if shares[i] > 1 {
                        shares[i] -= 1;
                        assigned -= 1;
                        progressed = true;
                    }
                }
                if !progressed {
                    break;
                }
            }
            shares
        }
        _ => backlog.iter().map(|b| b.2).collect(),
    };
    backlog
        .iter()
        .zip(take)
        .filter(|(_, n)| *n > 0)
        .map(|((tp, from, _), n)| OffsetRange {
            topic: tp.topic.clone(),
            partition: tp.partition,
            from: *from,
            until: from + n as i64,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offs(v: &[(i32, i64)]) -> PartitionOffsets {
        v.iter()
            .map(|&(p, o)| {
                (
                    TopicPartition {
                        topic: "t".into(),
                        partition: p,
                    },
                    o,
                )
            })
            .collect()
    }

    #[test]
    fn uncapped_takes_everything() {
        let r = plan_ranges(&offs(&[(0, 5), (1, 0)]), &offs(&[(0, 10), (1, 0)]), None);
        assert_eq!(
            r,
            vec![OffsetRange {
                topic: "t".into(),
                partition: 0,
                from: 5,
                until: 10
            }]
        );
    }

    #[test]
    fn cap_is_split_by_backlog_and_exact() {
        let r = plan_ranges(
            &offs(&[(0, 0), (1, 0), (2, 0)]),
            &offs(&[(0, 600), (1, 300), (2, 100)]),
            Some(100),
        );
        let lens: Vec<u64> = r.iter().map(|r| r.len()).collect();
        assert_eq!(lens, vec![60, 30, 10]);
        let r = plan_ranges(
            &offs(&[(0, 0), (1, 0), (2, 0)]),
            &offs(&[(0, 7), (1, 7), (2, 7)]),
            Some(10),
        );
        assert_eq!(r.iter().map(|r| r.len()).sum::<u64>(), 10);
        assert!(r.iter().all(|r| r.len() >= 3));
    }

    #[test]
    fn tiny_backlogs_still_progress() {
        let r = plan_ranges(
            &offs(&[(0, 0), (1, 0)]),
            &offs(&[(0, 1_000_000), (1, 1)]),
            Some(10),
        );
        assert_eq!(r.iter().map(|r| r.len()).sum::<u64>(), 10);
        assert_eq!(r[1].len(), 1);
    }

    #[test]
    fn unknown_partitions_are_skipped() {
        // A partition with no start offset is resolved by the caller first.
        let r = plan_ranges(&offs(&[(0, 0)]), &offs(&[(0, 3), (1, 3)]), None);
        assert_eq!(r.len(), 1);
    }
}
