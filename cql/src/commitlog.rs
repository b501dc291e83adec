//! Append-only commit log with Cassandra-like sync policies, plus the snapshot file it is
//! compacted into.
//!
//! Record framing: `u32 length | u32 crc32(payload) | payload`. A torn or corrupt record ends
//! replay of its segment (it can only be the unacknowledged tail after a crash).

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SyncMode {
    /// Acknowledge once the write is handed to the OS; fsync every period (a power loss may
    /// lose up to one period, a process crash loses nothing acknowledged).
    Periodic,
    /// Acknowledge after the fsync covering the write; fsyncs batched over a window.
    Group,
    /// Acknowledge after the fsync covering the write; fsync as soon as anything is pending.
    Batch,
}

pub const SNAPSHOT_FILE: &str = "snapshot.db";
const SEGMENT_PREFIX: &str = "commitlog-";
const SEGMENT_SUFFIX: &str = ".log";

pub fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{SEGMENT_PREFIX}{n:010}{SEGMENT_SUFFIX}"))
}

/// Existing segments, oldest first.
pub fn list_segments(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name();
        let name = name.to_string_lossy();
        if let Some(n) = name
            .strip_prefix(SEGMENT_PREFIX)
            .and_then(|r| r.strip_suffix(SEGMENT_SUFFIX))
            .and_then(|n| n.parse::<u64>().ok())
        {
            out.push((n, e.path()));
        }
    }
    out.sort();
    Ok(out)
}

pub fn frame_record(out: &mut Vec<u8>, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_be_bytes());
    out.extend_from_slice(payload);
}

/// Reads framed records until EOF or the first torn/corrupt record.
pub fn read_records(path: &Path, mut f: impl FnMut(&[u8])) -> io::Result<usize> {
    let mut r = BufReader::new(File::open(path)?);
    let mut n = 0;
    let mut hdr = [0u8; 8];
    loop {
        if read_full(&mut r, &mut hdr)? < 8 {
            break;
        }
        let len = u32::from_be_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]) as usize;
        let crc = u32::from_be_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]);
        if len > 1 << 30 {
            tracing::warn!(path = %path.display(), "implausible record length, ignoring the rest");
            break;
        }
        let mut payload = vec![0u8; len];
        if read_full(&mut r, &mut payload)? < len || crc32fast::hash(&payload) != crc {
            tracing::warn!(path = %path.display(), records = n, "torn or corrupt record at end of file, ignoring the rest");
            break;
        }
        f(&payload);
        n += 1;
    }
    Ok(n)
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Writes records to `dir/snapshot.db` atomically (temp file, fsync, rename, fsync dir).
pub fn write_snapshot(dir: &Path, records: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!("{SNAPSHOT_FILE}.tmp"));
    {
        let mut f = File::create(&tmp)?;
        f.write_all(records)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, dir.join(SNAPSHOT_FILE))?;
    File::open(dir)?.sync_all()?;
    Ok(())
}

struct Pending {
    buf: Vec<u8>,
    /// Sequence number of the last record appended to `buf`.
    seq: u64,
    shutdown: bool,
}

pub struct CommitLog {
    pending: Mutex<Pending>,
    wake: Condvar,
    durable: watch::Sender<u64>,
    mode: SyncMode,
}

/// Told by the log thread when a segment has been closed, so that a snapshot can be taken and
/// segments older than `first_live` deleted.
pub type RotateHook = Box<dyn Fn(u64) + Send + Sync>;

impl CommitLog {
    /// Opens a fresh segment numbered `segment` and starts the sync thread.
    pub fn open(
        dir: &Path,
        segment: u64,
        mode: SyncMode,
        period: Duration,
        max_segment_bytes: u64,
        on_rotate: RotateHook,
    ) -> io::Result<Arc<CommitLog>> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(segment_path(dir, segment))?;
        File::open(dir)?.sync_all()?;
        let (durable, _) = watch::channel(0u64);
        let log = Arc::new(CommitLog {
            pending: Mutex::new(Pending {
                buf: Vec::with_capacity(1 << 20),
                seq: 0,
                shutdown: false,
            }),
            wake: Condvar::new(),
            durable,
            mode,
        });
        let l2 = log.clone();
        let dir = dir.to_path_buf();
        std::thread::Builder::new()
            .name("ember-cql-commitlog".into())
            .spawn(move || {
                l2.sync_loop(dir, file, segment, period, max_segment_bytes, on_rotate)
            })?;
        Ok(log)
    }

    /// Appends an already-encoded record payload; returns its sequence number.
    pub fn append(&self, payload: &[u8]) -> u64 {
        let mut p = self.pending.lock();
        frame_record(&mut p.buf, payload);
        p.seq += 1;
        let seq = p.seq;
        drop(p);
        self.wake.notify_one();
        seq
    }

    /// Resolves when the record `seq` may be acknowledged under the sync policy.
    pub async fn wait_durable(&self, seq: u64) -> io::Result<()> {
        let mut rx = self.durable.subscribe();
        match rx.wait_for(|&d| d >= seq).await {
            Ok(_) => Ok(()),
            Err(_) => Err(io::Error::other("commit log stopped")),
        }
    }

    pub fn shutdown(&self) {
        self.pending.lock().shutdown = true;
        self.wake.notify_one();
    }

    fn sync_loop(
        &self,
        dir: PathBuf,
        mut file: File,
        mut segment: u64,
        period: Duration,
        max_segment_bytes: u64,
        on_rotate: RotateHook,
    ) {
        let mut size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let mut out = Vec::with_capacity(1 << 20);
        let mut last_sync = Instant::now()
            .checked_sub(period)
            .unwrap_or_else(Instant::now);
        let mut dirty = false;
        loop {
            let (seq, shutdown) = {
                let mut p = self.pending.lock();
                while p.buf.is_empty() && !p.shutdown {
                    if dirty && self.mode != SyncMode::Periodic {
                        break; // retry a failed fsync
                    }
                    let timed_out = self.wake.wait_for(&mut p, period).timed_out();
                    if timed_out && dirty {
                        break; // periodic fsync due
                    }
                }
                if self.mode == SyncMode::Group && !p.shutdown {
                    // At most one fsync per window: writes arriving meanwhile join the next
                    // one. After an idle spell the first write syncs at once.
                    let next = last_sync + period;
                    let now = Instant::now();
                    if next > now {
                        drop(p);
                        std::thread::sleep(next - now);
                        p = self.pending.lock();
                    }
                }
                std::mem::swap(&mut p.buf, &mut out);
                (p.seq, p.shutdown)
            };
            if !out.is_empty() {
                if let Err(e) = file.write_all(&out) {
                    // Acknowledging writes that are not in the log would be a lie: keep them
                    // pending (their writers keep waiting) and retry.
                    tracing::error!(error = %e, "commit log write failed; retrying");
                    std::thread::sleep(Duration::from_millis(100));
                    let mut p = self.pending.lock();
                    let mut rest = std::mem::take(&mut p.buf);
                    std::mem::swap(&mut p.buf, &mut out);
                    p.buf.append(&mut rest);
                    continue;
                }
                size += out.len() as u64;
                out.clear();
                dirty = true;
            }
            let sync_now = match self.mode {
                SyncMode::Periodic => {
                    // Periodic acknowledges once the OS has the bytes (survives a process
                    // crash, not a power loss) and fsyncs every period.
                    self.durable.send_replace(seq);
                    dirty
                        && (last_sync.elapsed() >= period || shutdown || size >= max_segment_bytes)
                }
                SyncMode::Group | SyncMode::Batch => dirty,
            };
            if sync_now {
                last_sync = Instant::now();
                match file.sync_data() {
                    Ok(()) => dirty = false,
                    Err(e) => {
                        tracing::error!(error = %e, "commit log fsync failed; retrying");
                        std::thread::sleep(Duration::from_millis(100));
                        continue;
                    }
                }
            }
            if self.mode != SyncMode::Periodic && !dirty {
                self.durable.send_replace(seq);
            }
            if shutdown {
                return;
            }
            if size >= max_segment_bytes && !dirty {
                match OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(segment_path(&dir, segment + 1))
                {
                    Ok(f) => {
                        file = f;
                        segment += 1;
                        size = 0;
                        on_rotate(segment);
                    }
                    Err(e) => tracing::error!(error = %e, "cannot open new commit log segment"),
                }
            }
        }
    }
}
