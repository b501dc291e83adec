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
    frame_with(out, |p| p.extend_from_slice(payload));
}

/// Frames the record `encode` appends to `out`, in place.
pub fn frame_with(out: &mut Vec<u8>, encode: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; 8]);
    encode(out);
    let payload = &out[start + 8..];
    let len = (payload.len() as u32).to_be_bytes();
    let crc = crc32fast::hash(payload).to_be_bytes();
    out[start..start + 4].copy_from_slice(&len);
    out[start + 4..start + 8].copy_from_slice(&crc);
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

/// Writes the records `fill` streams out to `dir/snapshot.db` atomically
/// (temp file, fsync, rename, fsync dir); returns the snapshot's size.
/// `fill` writes in chunks of many records, so the file is not buffered.
pub fn write_snapshot(
    dir: &Path,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<u64> {
    let tmp = dir.join(format!("{SNAPSHOT_FILE}.tmp"));
    let size = {
        let mut f = File::create(&tmp)?;
        fill(&mut f)?;
        f.sync_all()?;
        f.metadata()?.len()
    };
    fs::rename(&tmp, dir.join(SNAPSHOT_FILE))?;
    File::open(dir)?.sync_all()?;
    Ok(size)
}

struct Pending {
    buf: Vec<u8>,
    /// Sequence number of the last record appended to `buf`.
    seq: u64,
    /// Periodic mode: an appender is writing `buf` out and keeps going until it is empty (so
    /// whenever this is false, `buf` is empty).
    writing: bool,
    /// An empty buffer to swap with `buf` (keeps its capacity between writes).
    spare: Vec<u8>,
    shutdown: bool,
}

/// The segment being written.
struct Active {
    file: File,
    segment: u64,
    size: u64,
    /// Written since the last fsync.
    dirty: bool,
}

pub struct CommitLog {
    pending: Mutex<Pending>,
    wake: Condvar,
    active: Mutex<Active>,
    durable: watch::Sender<u64>,
    mode: SyncMode,
    max_segment_bytes: u64,
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
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let (durable, _) = watch::channel(0u64);
        let log = Arc::new(CommitLog {
            pending: Mutex::new(Pending {
                buf: Vec::with_capacity(1 << 20),
                seq: 0,
                writing: false,
                spare: Vec::with_capacity(1 << 20),
                shutdown: false,
            }),
            wake: Condvar::new(),
            active: Mutex::new(Active {
                file,
                segment,
                size,
                dirty: false,
            }),
            durable,
            mode,
            max_segment_bytes,
        });
        let l2 = log.clone();
        let dir = dir.to_path_buf();
        std::thread::Builder::new()
            .name("ember-cql-commitlog".into())
            .spawn(move || l2.sync_loop(dir, period, on_rotate))?;
        Ok(log)
    }

    /// Appends an already-encoded record payload; returns its sequence number.
    ///
    /// In periodic mode the write(2) happens here, on the appender's thread, instead of a hop
    /// to the log thread and back: the first appender to find no write in progress writes
    /// everything pending (its own record and whatever others append meanwhile), the others
    /// just wait for the watermark. Writes are small and go to the page cache.
    pub fn append(&self, payload: &[u8]) -> u64 {
        let mut p = self.pending.lock();
        frame_record(&mut p.buf, payload);
        p.seq += 1;
        let seq = p.seq;
        if self.mode == SyncMode::Periodic {
            if !p.writing {
                p.writing = true;
                let out = std::mem::take(&mut p.spare);
                drop(p);
                self.write_pending(out);
            }
            return seq;
        }
        drop(p);
        self.wake.notify_one();
        seq
    }

    /// Periodic mode, holding `writing`: writes `buf` until it is empty, publishing the
    /// watermark after each write(2).
    fn write_pending(&self, mut out: Vec<u8>) {
        out.clear();
        loop {
            let mut p = self.pending.lock();
            if p.buf.is_empty() {
                p.writing = false;
                p.spare = out;
                return;
            }
            std::mem::swap(&mut p.buf, &mut out);
            let seq = p.seq;
            drop(p);
            match self.write_out(&out) {
                Ok(full) => {
                    out.clear();
                    self.durable.send_replace(seq);
                    if full {
                        self.wake.notify_one(); // the log thread rotates
                    }
                }
                Err(e) => {
                    // Acknowledging writes that are not in the log would be a lie: keep them
                    // pending (their writers keep waiting) and retry.
                    tracing::error!(error = %e, "commit log write failed; retrying");
                    std::thread::sleep(Duration::from_millis(100));
                    let mut p = self.pending.lock();
                    let mut rest = std::mem::take(&mut p.buf);
                    std::mem::swap(&mut p.buf, &mut out);
                    p.buf.append(&mut rest);
                }
            }
        }
    }

    /// Writes to the active segment; returns whether it has reached its size limit.
    fn write_out(&self, data: &[u8]) -> io::Result<bool> {
        let mut a = self.active.lock();
        a.file.write_all(data)?;
        a.size += data.len() as u64;
        a.dirty = true;
        Ok(a.size >= self.max_segment_bytes)
    }

    /// fsyncs the active segment if anything was written since the last fsync. The fsync runs
    /// on a duplicate handle, outside the lock, so appenders are not held up.
    fn sync_active(&self) -> io::Result<()> {
        let f = {
            let mut a = self.active.lock();
            if !a.dirty {
                return Ok(());
            }
            let f = a.file.try_clone()?;
            a.dirty = false;
            f
        };
        f.sync_data()
            .inspect_err(|_| self.active.lock().dirty = true)
    }

    /// Closes a full segment (after an fsync) and opens the next one.
    fn rotate_if_full(&self, dir: &Path, on_rotate: &RotateHook) {
        let mut a = self.active.lock();
        if a.size < self.max_segment_bytes {
            return;
        }
        if let Err(e) = a.file.sync_data() {
            tracing::error!(error = %e, "commit log fsync before rotation failed; retrying later");
            return;
        }
        a.dirty = false;
        match OpenOptions::new()
            .create(true)
            .append(true)
            .open(segment_path(dir, a.segment + 1))
        {
            Ok(f) => {
                a.file = f;
                a.segment += 1;
                a.size = 0;
                let first_live = a.segment;
                drop(a);
                on_rotate(first_live);
            }
            Err(e) => tracing::error!(error = %e, "cannot open new commit log segment"),
        }
    }

    /// Resolves when the record `seq` may be acknowledged under the sync policy.
    pub async fn wait_durable(&self, seq: u64) -> io::Result<()> {
        if *self.durable.borrow() >= seq {
            return Ok(());
        }
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

    fn sync_loop(&self, dir: PathBuf, period: Duration, on_rotate: RotateHook) {
        if self.mode == SyncMode::Periodic {
            return self.periodic_loop(&dir, period, &on_rotate);
        }
        let mut out = Vec::with_capacity(1 << 20);
        let mut last_sync = Instant::now()
            .checked_sub(period)
            .unwrap_or_else(Instant::now);
        let mut dirty = false;
        loop {
            let (seq, shutdown) = {
                let mut p = self.pending.lock();
                while p.buf.is_empty() && !p.shutdown {
                    if dirty {
                        break; // retry a failed fsync
                    }
                    self.wake.wait_for(&mut p, period);
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
                if let Err(e) = self.write_out(&out) {
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
                out.clear();
                dirty = true;
            }
            if dirty {
                last_sync = Instant::now();
                match self.active.lock().file.sync_data() {
                    Ok(()) => dirty = false,
                    Err(e) => {
                        tracing::error!(error = %e, "commit log fsync failed; retrying");
                        std::thread::sleep(Duration::from_millis(100));
                        continue;
                    }
                }
                self.active.lock().dirty = false;
            }
            self.durable.send_replace(seq);
            if shutdown {
                return;
            }
            self.rotate_if_full(&dir, &on_rotate);
        }
    }

    /// Periodic mode: appenders write; this thread fsyncs every period, rotates full segments
    /// and does a last fsync at shutdown.
    fn periodic_loop(&self, dir: &Path, period: Duration, on_rotate: &RotateHook) {
        let mut last_sync = Instant::now();
        loop {
            let shutdown = {
                let mut p = self.pending.lock();
                if !p.shutdown {
                    let due = (last_sync + period).saturating_duration_since(Instant::now());
                    self.wake.wait_for(&mut p, due);
                }
                p.shutdown
            };
            if shutdown {
                // Let a write in progress finish, then make everything durable.
                while self.pending.lock().writing {
                    std::thread::sleep(Duration::from_millis(1));
                }
                if let Err(e) = self.sync_active() {
                    tracing::error!(error = %e, "final commit log fsync failed");
                }
                return;
            }
            if last_sync.elapsed() >= period {
                last_sync = Instant::now();
                if let Err(e) = self.sync_active() {
                    tracing::error!(error = %e, "commit log fsync failed; retrying");
                }
            }
            self.rotate_if_full(dir, on_rotate);
        }
    }
}
