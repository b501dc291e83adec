//! A job's checkpoint, laid out as Spark's: under `<state>/jobs/<name>/`,
//! `offsets/<batch>` (the batch's ranges, written before it runs) and
//! `commits/<batch>` (written after the sink succeeded), plus the spec and
//! the job's own metadata. Every file is written to a temporary name, synced
//! and renamed, so a crash leaves either the old or the new file.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use ember_api::BatchInfo;
use ember_jobs::kafka::{OffsetRange, PartitionOffsets, TopicPartition};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobMeta {
    pub name: String,
    /// running | stopped | finished | failed
    pub state: String,
    pub created_at: String,
    /// Where the job started, resolved once (so `latest` means the latest at
    /// the first submission, not at every restart), advanced past batches
    /// whose logs were purged.
    pub start_offsets: Vec<(TopicPartition, i64)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OffsetsEntry {
    pub batch_id: u64,
    pub ranges: Vec<OffsetRange>,
    pub planned_at: String,
}

#[derive(Debug, Clone)]
pub struct Checkpoint {
    dir: PathBuf,
}

pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f =
            fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    if let Some(parent) = path.parent()
        && let Ok(d) = fs::File::open(parent)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

fn batch_ids(dir: &Path) -> Vec<u64> {
    let mut ids: Vec<u64> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    ids.sort_unstable();
    ids
}

impl Checkpoint {
    pub fn open(root: &Path, name: &str) -> Result<Self> {
        let dir = root.join("jobs").join(name);
        fs::create_dir_all(dir.join("offsets"))?;
        fs::create_dir_all(dir.join("commits"))?;
        Ok(Self { dir })
    }

    /// Names of every job with a checkpoint under `root`.
    pub fn list(root: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(root.join("jobs"))
            .map(|rd| {
                rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    pub fn exists(root: &Path, name: &str) -> bool {
        root.join("jobs").join(name).join("job.json").exists()
    }

    /// Forgets offsets and commits (for `submit --reset`).
    pub fn reset(&self) -> Result<()> {
        for sub in ["offsets", "commits"] {
            let d = self.dir.join(sub);
            let _ = fs::remove_dir_all(&d);
            fs::create_dir_all(&d)?;
        }
        Ok(())
    }

    pub fn read_meta(&self) -> Result<Option<JobMeta>> {
        let p = self.dir.join("job.json");
        if !p.exists() {
            return Ok(None);
        }
        Ok(Some(
            serde_json::from_slice(&fs::read(&p)?)
                .with_context(|| format!("reading {}", p.display()))?,
        ))
    }
    pub fn write_meta(&self, m: &JobMeta) -> Result<()> {
        write_atomic(&self.dir.join("job.json"), &serde_json::to_vec_pretty(m)?)
    }
    pub fn read_spec(&self) -> Result<String> {
        Ok(fs::read_to_string(self.dir.join("spec.toml"))?)
    }
    pub fn write_spec(&self, text: &str) -> Result<()> {
        write_atomic(&self.dir.join("spec.toml"), text.as_bytes())
    }

    pub fn write_offsets(&self, e: &OffsetsEntry) -> Result<()> {
        write_atomic(
            &self.dir.join("offsets").join(e.batch_id.to_string()),
            &serde_json::to_vec_pretty(e)?,
        )
    }
    pub fn write_commit(&self, b: &BatchInfo) -> Result<()> {
        write_atomic(
            &self.dir.join("commits").join(b.batch_id.to_string()),
            &serde_json::to_vec_pretty(b)?,
        )
    }

    pub fn read_offsets(&self, id: u64) -> Result<OffsetsEntry> {
        let p = self.dir.join("offsets").join(id.to_string());
        serde_json::from_slice(&fs::read(&p)?).with_context(|| format!("reading {}", p.display()))
    }
    pub fn read_commit(&self, id: u64) -> Result<BatchInfo> {
        let p = self.dir.join("commits").join(id.to_string());
        serde_json::from_slice(&fs::read(&p)?).with_context(|| format!("reading {}", p.display()))
    }

    /// The last batch with offsets but no commit: it must be re-run with
    /// exactly the same ranges.
    pub fn pending(&self) -> Result<Option<OffsetsEntry>> {
        let offs = batch_ids(&self.dir.join("offsets"));
        let Some(&last) = offs.last() else {
            return Ok(None);
        };
        if self.dir.join("commits").join(last.to_string()).exists() {
            return Ok(None);
        }
        Ok(Some(self.read_offsets(last)?))
    }

    pub fn next_batch_id(&self) -> u64 {
        batch_ids(&self.dir.join("offsets"))
            .last()
            .map_or(0, |l| l + 1)
    }

    /// The committed batches, oldest first.
    pub fn committed_ids(&self) -> Vec<u64> {
        batch_ids(&self.dir.join("commits"))
    }

    /// Keeps the last `keep` committed batches, as Spark's
    /// `minBatchesToRetain`. The ends of the purged batches are folded into
    /// the job's base offsets first, so a crash between the two steps leaves
    /// a checkpoint that still resolves to the same offsets.
    pub fn purge(&self, meta: &mut JobMeta, keep: usize) -> Result<usize> {
        let ids = self.committed_ids();
        if ids.len() <= keep {
            return Ok(0);
        }
        let old = &ids[..ids.len() - keep];
        let mut base: PartitionOffsets = meta.start_offsets.iter().cloned().collect();
        for id in old {
            for r in self.read_offsets(*id)?.ranges {
                let e = base
                    .entry(TopicPartition {
                        topic: r.topic,
                        partition: r.partition,
                    })
                    .or_insert(r.until);
                *e = (*e).max(r.until);
            }
        }
        meta.start_offsets = base.into_iter().collect();
        self.write_meta(meta)?;
        for id in old {
            let _ = fs::remove_file(self.dir.join("commits").join(id.to_string()));
            let _ = fs::remove_file(self.dir.join("offsets").join(id.to_string()));
        }
        Ok(old.len())
    }

    /// Where the next batch starts: the end of every committed range over
    /// the job's start offsets.
    pub fn committed_offsets(&self, meta: &JobMeta) -> Result<PartitionOffsets> {
        let mut offs: PartitionOffsets = meta.start_offsets.iter().cloned().collect();
        for id in self.committed_ids() {
            let e = self.read_offsets(id)?;
            for r in e.ranges {
                let tp = TopicPartition {
                    topic: r.topic,
                    partition: r.partition,
                };
                let cur = offs.entry(tp).or_insert(r.until);
                *cur = (*cur).max(r.until);
            }
        }
        Ok(offs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(p: i32, from: i64, until: i64) -> OffsetRange {
        OffsetRange {
            topic: "t".into(),
            partition: p,
            from,
            until,
        }
    }

    #[test]
    fn purge_keeps_the_resolved_offsets_and_the_last_batches() {
        let dir = std::env::temp_dir().join(format!("ember-cp-{}", std::process::id()));
        let cp = Checkpoint::open(&dir, "j").unwrap();
        let tp = |p| TopicPartition {
            topic: "t".into(),
            partition: p,
        };
        let mut meta = JobMeta {
            name: "j".into(),
            state: "running".into(),
            created_at: String::new(),
            start_offsets: vec![(tp(0), 0), (tp(1), 0)],
        };
        // Partition 1 only has data in the first batch.
        for id in 0..10u64 {
            let mut ranges = vec![range(0, id as i64 * 10, id as i64 * 10 + 10)];
            if id == 0 {
                ranges.push(range(1, 0, 7));
            }
            cp.write_offsets(&OffsetsEntry {
                batch_id: id,
                ranges,
                planned_at: String::new(),
            })
            .unwrap();
            cp.write_commit(&BatchInfo {
                batch_id: id,
                ..Default::default()
            })
            .unwrap();
        }
        let before = cp.committed_offsets(&meta).unwrap();
        assert_eq!(cp.purge(&mut meta, 3).unwrap(), 7);
        assert_eq!(cp.committed_ids(), vec![7, 8, 9]);
        assert_eq!(cp.committed_offsets(&meta).unwrap(), before);
        assert_eq!(before[&tp(1)], 7);
        assert_eq!(before[&tp(0)], 100);
        assert_eq!(cp.next_batch_id(), 10);
        let _ = fs::remove_dir_all(&dir);
    }
}
