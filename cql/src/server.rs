//! TCP server: one reader and one writer task per connection. A request that finishes at once
//! is answered on the reader task; one that waits (a write under group commit) goes on in a
//! task of its own, so many streams are served concurrently.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::RwLock;
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use crate::commitlog::{self, CommitLog, SyncMode};
use crate::error::{CqlError, Result};
use crate::exec::{Ctx, Engine, Outcome};
use crate::frame::{self, Frame, ReadOutcome, opcode};
use crate::protocol::{self, BatchStatement, Reader};
use crate::schema::Db;
use crate::system::{CQL_VERSION, NodeInfo};

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// `None` keeps everything in memory (nothing survives a restart).
    pub data_dir: Option<PathBuf>,
    pub commitlog_sync: SyncMode,
    pub commitlog_sync_period: Duration,
    /// Segment size after which the log is compacted into the snapshot.
    pub commitlog_segment_bytes: u64,
    /// Enables PasswordAuthenticator with this single user.
    pub credentials: Option<(String, String)>,
    pub cluster_name: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 9042)),
            data_dir: None,
            commitlog_sync: SyncMode::Group,
            commitlog_sync_period: Duration::from_millis(10),
            commitlog_segment_bytes: 64 << 20,
            credentials: None,
            cluster_name: "ember".into(),
        }
    }
}

pub struct Server;

/// A running server; dropping it does not stop it, call [`ServerHandle::shutdown`].
pub struct ServerHandle {
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    engine: Arc<Engine>,
}

impl ServerHandle {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The store behind the server, for embedding and tests.
    pub fn db(&self) -> &Arc<crate::schema::Db> {
        &self.engine.db
    }

    /// Stops accepting connections, stops the commit log (after a final sync) and waits for
    /// the accept loop to end. Open connections are closed.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        if let Some(log) = self.engine.db.log.read().clone() {
            log.shutdown();
        }
    }

    /// Resolves when the server stops (it only stops via `shutdown`).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

impl Server {
    pub async fn start(config: Config) -> anyhow::Result<ServerHandle> {
        let db = Arc::new(Db::new(config.data_dir.clone()));
        if let Some(dir) = &config.data_dir {
            std::fs::create_dir_all(dir)?;
            let started = std::time::Instant::now();
            let db2 = db.clone();
            let dir2 = dir.clone();
            let next_segment = tokio::task::spawn_blocking(move || db2.recover(&dir2)).await??;
            let weak = Arc::downgrade(&db);
            let dir3 = dir.clone();
            let compacting = Arc::new(parking_lot::Mutex::new(()));
            let log = CommitLog::open(
                dir,
                next_segment,
                config.commitlog_sync,
                config.commitlog_sync_period,
                config.commitlog_segment_bytes,
                Box::new(move |first_live| {
                    // Compact in the background so the log thread keeps syncing.
                    let weak = weak.clone();
                    let dir = dir3.clone();
                    let compacting = compacting.clone();
                    std::thread::spawn(move || {
                        let _one_at_a_time = compacting.lock();
                        let Some(db) = weak.upgrade() else { return };
                        if !log_outgrew_snapshot(&dir, first_live) {
                            return;
                        }
                        if let Err(e) = compact(&db, &dir, first_live) {
                            tracing::error!(error = %e, "commit log compaction failed");
                        }
                    });
                }),
            )?;
            *db.log.write() = Some(log);
            tracing::info!(dir = %dir.display(), elapsed_ms = started.elapsed().as_millis() as u64, sync = ?config.commitlog_sync, "storage ready");
        } else {
            tracing::info!("in-memory mode: nothing is persisted");
        }
        let listener = TcpListener::bind(config.listen).await?;
        let local_addr = listener.local_addr()?;
        let engine = Arc::new(Engine::new(
            db,
            NodeInfo {
                cluster_name: config.cluster_name.clone(),
                host_id: match &config.data_dir {
                    Some(dir) => stable_host_id(dir)?,
                    None => uuid::Uuid::new_v4(),
                },
                listen: local_addr,
            },
        ));
        let (stop, stop_rx) = watch::channel(false);
        let e2 = engine.clone();
        let creds = config.credentials.clone().map(Arc::new);
        let task = tokio::spawn(accept_loop(listener, e2, creds, stop_rx));
        tracing::info!(%local_addr, "ember-cql listening (CQL native protocol v4)");
        Ok(ServerHandle {
            local_addr,
            stop,
            task,
            engine,
        })
    }
}

/// Keeps the node's host_id across restarts (drivers key their node maps by it).
fn stable_host_id(dir: &std::path::Path) -> std::io::Result<uuid::Uuid> {
    let path = dir.join("host_id");
    if let Ok(s) = std::fs::read_to_string(&path)
        && let Ok(id) = uuid::Uuid::parse_str(s.trim())
    {
        return Ok(id);
    }
    let id = uuid::Uuid::new_v4();
    std::fs::write(&path, id.to_string())?;
    Ok(id)
}

/// Whether the closed segments (those before `first_live`) hold at least as
/// many bytes as the snapshot. Rewriting the whole snapshot at every rotation
/// made compaction quadratic in the data: at 1 GB each one took ~10 s of a
/// core while clients waited. Compacting only when the log has doubled what
/// the snapshot holds (like Redis's AOF rewrite at 100% growth) keeps the
/// total rewrite work linear, and replay at start at most twice the data.
fn log_outgrew_snapshot(dir: &std::path::Path, first_live: u64) -> bool {
    let snapshot = std::fs::metadata(dir.join(commitlog::SNAPSHOT_FILE)).map_or(0, |m| m.len());
    let log: u64 = commitlog::list_segments(dir)
        .unwrap_or_default()
        .iter()
        .filter(|(n, _)| *n < first_live)
        .filter_map(|(_, p)| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    log > 0 && log >= snapshot
}

fn compact(db: &Db, dir: &std::path::Path, first_live: u64) -> std::io::Result<()> {
    let started = std::time::Instant::now();
    let bytes = commitlog::write_snapshot(dir, |out| db.write_snapshot(out))?;
    for (n, path) in commitlog::list_segments(dir)? {
        if n < first_live {
            std::fs::remove_file(path)?;
        }
    }
    tracing::info!(
        bytes,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "compacted commit log into snapshot"
    );
    Ok(())
}

async fn accept_loop(
    listener: TcpListener,
    engine: Arc<Engine>,
    creds: Option<Arc<(String, String)>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            res = listener.accept() => match res {
                Ok((sock, peer)) => {
                    let _ = sock.set_nodelay(true);
                    let engine = engine.clone();
                    let creds = creds.clone();
                    conns.spawn(async move {
                        if let Err(e) = serve_connection(sock, peer, engine, creds).await {
                            tracing::debug!(%peer, error = %e, "connection closed with error");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    conns.abort_all();
}

struct Conn {
    engine: Arc<Engine>,
    local_addr: SocketAddr,
    keyspace: RwLock<Option<String>>,
    compress: AtomicBool,
    tx: mpsc::UnboundedSender<Bytes>,
}

impl Conn {
    fn send(&self, stream: i16, op: u8, body: &[u8]) {
        let compress = self.compress.load(Ordering::Relaxed);
        let _ = self
            .tx
            .send(frame::encode_response(stream, op, body, compress, 0));
    }
    fn send_error(&self, stream: i16, e: &CqlError) {
        self.send(stream, opcode::ERROR, &protocol::encode_error(e));
    }
    fn ctx(&self) -> Ctx {
        Ctx {
            keyspace: self.keyspace.read().clone(),
            local_addr: self.local_addr,
        }
    }
}

#[derive(PartialEq)]
enum Phase {
    /// Before STARTUP.
    New,
    /// STARTUP done, waiting for AUTH_RESPONSE.
    Authenticating,
    Ready,
}

async fn serve_connection(
    sock: TcpStream,
    peer: SocketAddr,
    engine: Arc<Engine>,
    creds: Option<Arc<(String, String)>>,
) -> std::io::Result<()> {
    let local_addr = sock.local_addr()?;
    let (rd, wr) = sock.into_split();
    // Buffered: drivers pipeline many requests per connection, so one read(2) usually brings
    // several frames (unbuffered, every frame cost two syscalls: header, then body).
    let mut rd = tokio::io::BufReader::with_capacity(64 << 10, rd);
    let (tx, mut rx) = mpsc::unbounded_channel::<Bytes>();
    let (close_tx, mut close_rx) = watch::channel(false);
    // Writer: drains everything queued before each flush so pipelined responses share
    // syscalls.
    let writer = tokio::spawn(async move {
        let mut w = BufWriter::with_capacity(64 << 10, wr);
        while let Some(b) = rx.recv().await {
            if w.write_all(&b).await.is_err() {
                return;
            }
            while let Ok(b) = rx.try_recv() {
                if w.write_all(&b).await.is_err() {
                    return;
                }
            }
            if w.flush().await.is_err() {
                return;
            }
        }
        let _ = w.shutdown().await;
    });
    let conn = Arc::new(Conn {
        engine,
        local_addr,
        keyspace: RwLock::new(None),
        compress: AtomicBool::new(false),
        tx,
    });
    let mut phase = Phase::New;
    tracing::debug!(%peer, "connection opened");
    let result = loop {
        let outcome = tokio::select! {
            r = frame::read_frame(&mut rd) => r,
            _ = close_rx.changed() => break Ok(()),
        };
        let f = match outcome {
            Ok(ReadOutcome::Frame(f)) => f,
            Ok(ReadOutcome::Eof) => break Ok(()),
            Ok(ReadOutcome::Reject {
                stream,
                error,
                fatal,
            }) => {
                tracing::debug!(%peer, error = %error.message, "rejected frame");
                // Version errors go out uncompressed: the client does not know our state.
                let _ = conn.tx.send(frame::encode_response(
                    stream,
                    opcode::ERROR,
                    &protocol::encode_error(&error),
                    false,
                    0,
                ));
                if fatal {
                    break Ok(());
                }
                continue;
            }
            Err(e) => break Err(e),
        };
        let f = if f.flags & frame::FLAG_COMPRESSION != 0 {
            if !conn.compress.load(Ordering::Relaxed) {
                conn.send_error(
                    f.stream,
                    &CqlError::protocol(
                        "Received a compressed frame but compression was not negotiated",
                    ),
                );
                continue;
            }
            match frame::decompress(&f.body) {
                Ok(body) => Frame { body, ..f },
                Err(e) => {
                    conn.send_error(f.stream, &e);
                    continue;
                }
            }
        } else {
            f
        };
        let stream = f.stream;
        match (f.opcode, &phase) {
            (opcode::OPTIONS, _) => {
                let mut body = bytes::BytesMut::new();
                protocol::put_string_multimap(
                    &mut body,
                    &[
                        ("CQL_VERSION", vec![CQL_VERSION]),
                        ("COMPRESSION", vec!["lz4"]),
                        ("PROTOCOL_VERSIONS", vec!["4/v4"]),
                    ],
                );
                conn.send(stream, opcode::SUPPORTED, &body);
            }
            (opcode::STARTUP, Phase::New) => match startup(&f) {
                Ok(lz4) => {
                    if creds.is_some() {
                        let mut body = bytes::BytesMut::new();
                        protocol::put_string(
                            &mut body,
                            "org.apache.cassandra.auth.PasswordAuthenticator",
                        );
                        conn.send(stream, opcode::AUTHENTICATE, &body);
                        phase = Phase::Authenticating;
                    } else {
                        conn.send(stream, opcode::READY, &[]);
                        phase = Phase::Ready;
                    }
                    // Everything after the STARTUP response is compressed.
                    conn.compress.store(lz4, Ordering::Relaxed);
                }
                Err(e) => conn.send_error(stream, &e),
            },
            (opcode::AUTH_RESPONSE, Phase::Authenticating) => {
                match check_credentials(&f, creds.as_deref()) {
                    Ok(()) => {
                        let mut body = bytes::BytesMut::new();
                        protocol::put_bytes(&mut body, None);
                        conn.send(stream, opcode::AUTH_SUCCESS, &body);
                        phase = Phase::Ready;
                    }
                    Err(e) => conn.send_error(stream, &e),
                }
            }
            (opcode::REGISTER, Phase::Ready) => {
                let mut r = Reader::new(f.body.clone());
                match r.string_list() {
                    Ok(events) => {
                        if events.iter().any(|e| e == "SCHEMA_CHANGE") {
                            let mut events_rx = conn.engine.events.subscribe();
                            let c2 = conn.clone();
                            let mut close = close_rx.clone();
                            tokio::spawn(async move {
                                loop {
                                    tokio::select! {
                                        ev = events_rx.recv() => match ev {
                                            Ok(sc) => c2.send(-1, opcode::EVENT, &protocol::encode_schema_event(&sc)),
                                            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                                            Err(_) => return,
                                        },
                                        _ = close.changed() => return,
                                    }
                                }
                            });
                        }
                        conn.send(stream, opcode::READY, &[]);
                    }
                    Err(e) => conn.send_error(stream, &e),
                }
            }
            (opcode::QUERY | opcode::PREPARE | opcode::EXECUTE | opcode::BATCH, Phase::Ready) => {
                let c2 = conn.clone();
                let mut request = Box::pin(async move {
                    let body = f.body.clone();
                    let has_custom_payload = f.flags & frame::FLAG_CUSTOM_PAYLOAD != 0;
                    match handle_request(&c2, f.opcode, body, has_custom_payload).await {
                        Ok((op, body)) => c2.send(stream, op, &body),
                        Err(e) => c2.send_error(stream, &e),
                    }
                });
                // Most requests (a prepared write under periodic sync, a read)
                // finish without waiting: run them here, not as a task each,
                // which cost a spawn and a wake-up of another worker thread per
                // request. One that waits (an fsync under group or batch sync, a
                // schema change) goes on as a task, so the connection keeps reading.
                let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
                if request.as_mut().poll(&mut cx).is_pending() {
                    tokio::spawn(request);
                }
            }
            (op, _) => {
                let expecting = match phase {
                    Phase::New => "STARTUP or OPTIONS",
                    Phase::Authenticating => "AUTH_RESPONSE",
                    Phase::Ready => "a request",
                };
                conn.send_error(
                    stream,
                    &CqlError::protocol(format!(
                        "Unexpected message {}, expecting {expecting}",
                        opcode_name(op)
                    )),
                );
            }
        }
    };
    let _ = close_tx.send(true);
    drop(conn);
    let _ = writer.await;
    tracing::debug!(%peer, "connection closed");
    result
}

fn opcode_name(op: u8) -> String {
    match op {
        opcode::STARTUP => "STARTUP".into(),
        opcode::OPTIONS => "OPTIONS".into(),
        opcode::QUERY => "QUERY".into(),
        opcode::PREPARE => "PREPARE".into(),
        opcode::EXECUTE => "EXECUTE".into(),
        opcode::REGISTER => "REGISTER".into(),
        opcode::BATCH => "BATCH".into(),
        opcode::AUTH_RESPONSE => "AUTH_RESPONSE".into(),
        other => format!("opcode 0x{other:02X}"),
    }
}

/// Validates STARTUP options; returns whether LZ4 was requested.
fn startup(f: &Frame) -> Result<bool> {
    let opts = Reader::new(f.body.clone()).string_map()?;
    let mut lz4 = false;
    for (k, v) in &opts {
        match k.to_ascii_uppercase().as_str() {
            // Drivers send 3.x or 4.0.0 (the scylla driver); the grammar is the same to us.
            "CQL_VERSION" if !(v.starts_with('3') || v.starts_with('4')) => {
                return Err(CqlError::protocol(format!(
                    "Invalid or unsupported CQL version {v}; supported: {CQL_VERSION}"
                )));
            }
            "COMPRESSION" => match v.to_ascii_lowercase().as_str() {
                "lz4" => lz4 = true,
                other => {
                    return Err(CqlError::protocol(format!(
                        "Unknown compression algorithm: {other} (supported: lz4)"
                    )));
                }
            },
            _ => {}
        }
    }
    Ok(lz4)
}

fn check_credentials(f: &Frame, creds: Option<&(String, String)>) -> Result<()> {
    let token = Reader::new(f.body.clone()).bytes()?.unwrap_or_default();
    // SASL PLAIN: authzid \0 authcid \0 password.
    let mut parts = token.split(|&b| b == 0);
    let _authz = parts.next();
    let user = parts.next().unwrap_or_default();
    let pass = parts.next().unwrap_or_default();
    let user = String::from_utf8_lossy(user);
    match creds {
        Some((u, p)) if *u == user && p.as_bytes() == pass => Ok(()),
        _ => Err(CqlError::new(
            crate::error::BAD_CREDENTIALS,
            format!("Provided username {user} and/or password are incorrect"),
        )),
    }
}

async fn handle_request(
    conn: &Conn,
    op: u8,
    body: Bytes,
    custom_payload: bool,
) -> Result<(u8, bytes::BytesMut)> {
    let mut r = Reader::new(body);
    if custom_payload {
        r.skip_bytes_map()?;
    }
    let engine = &conn.engine;
    let ctx = conn.ctx();
    let (outcome, skip_metadata) = match op {
        opcode::QUERY => {
            let q = r.long_string()?;
            let params = protocol::read_query_params(&mut r)?;
            tracing::trace!(query = %q, "QUERY");
            let p = engine.plan_query(&q, &ctx)?;
            (engine.execute(&p, &params, &ctx).await?, false)
        }
        opcode::PREPARE => {
            let q = r.long_string()?;
            tracing::debug!(query = %q, "PREPARE");
            (Outcome::Prepared(engine.prepare(&q, &ctx)?), false)
        }
        opcode::EXECUTE => {
            let id = r.short_bytes()?;
            let params = protocol::read_query_params(&mut r)?;
            let p = engine.get_prepared(&id)?;
            let skip = params.skip_metadata && p.result.is_some();
            (engine.execute(&p, &params, &ctx).await?, skip)
        }
        opcode::BATCH => {
            let b = protocol::read_batch(&mut r)?;
            let mut items = Vec::with_capacity(b.statements.len());
            for s in b.statements {
                match s {
                    BatchStatement::Query(q, v) => items.push((engine.plan_query(&q, &ctx)?, v)),
                    BatchStatement::Prepared(id, v) => items.push((engine.get_prepared(&id)?, v)),
                }
            }
            (
                engine.execute_batch(&items, b.default_timestamp).await?,
                false,
            )
        }
        _ => return Err(CqlError::protocol("unexpected opcode")),
    };
    let body = match outcome {
        Outcome::Void => protocol::encode_void(),
        Outcome::Rows(rows) => protocol::encode_rows(&rows, skip_metadata),
        Outcome::RowsWithMetadata(rows) => protocol::encode_rows(&rows, false),
        Outcome::SetKeyspace(ks) => {
            *conn.keyspace.write() = Some(ks.clone());
            protocol::encode_set_keyspace(&ks)
        }
        Outcome::SchemaChange(sc) => protocol::encode_schema_change(&sc),
        Outcome::Prepared(p) => {
            protocol::encode_prepared(&p.id, &p.binds, &p.pk_indexes, p.result.as_deref())
        }
    };
    Ok((opcode::RESULT, body))
}

#[cfg(test)]
mod tests {
    use super::log_outgrew_snapshot;
    use crate::commitlog::{SNAPSHOT_FILE, segment_path};

    #[test]
    fn compaction_waits_until_the_log_outgrows_the_snapshot() {
        let dir = std::env::temp_dir().join(format!("ember-cql-policy-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |p: std::path::PathBuf, n: usize| std::fs::write(p, vec![0u8; n]).unwrap();
        assert!(!log_outgrew_snapshot(&dir, 1), "nothing to compact");
        write(segment_path(&dir, 0), 10);
        assert!(log_outgrew_snapshot(&dir, 1), "no snapshot yet");
        write(dir.join(SNAPSHOT_FILE), 100);
        assert!(
            !log_outgrew_snapshot(&dir, 1),
            "10 bytes of log, 100 of snapshot"
        );
        write(segment_path(&dir, 1), 95);
        assert!(
            !log_outgrew_snapshot(&dir, 1),
            "segment 1 is still active: not counted"
        );
        assert!(log_outgrew_snapshot(&dir, 2), "105 bytes of log ≥ 100");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
