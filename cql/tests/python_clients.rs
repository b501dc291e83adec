//! The real Python clients against the real `ember-cql` binary: `cqlsh` (script file and error
//! reporting) and the DataStax `cassandra-driver` with default `Cluster()` settings (protocol
//! negotiation down from v5, 10k concurrent prepared inserts, paged read-back, `kill -9` and
//! restart).
//!
//! The clients come from the venv that `scripts/stack install` creates
//! (`$HOME/.cache/ember/py`); `EMBER_PY` and `EMBER_CQLSH` override the paths. If they are
//! missing these tests fail: they never pass without having run the clients.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const INSTALL_HINT: &str = "run `scripts/stack install` (it creates the venv \
    $HOME/.cache/ember/py with cqlsh and cassandra-driver), or point EMBER_PY / EMBER_CQLSH at \
    existing ones";

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn venv_bin(name: &str) -> PathBuf {
    let home = std::env::var_os("HOME").unwrap_or_default();
    Path::new(&home).join(".cache/ember/py/bin").join(name)
}

/// The client executable from `var` or the default venv; fails the test if it is missing.
fn client(var: &str, default_name: &str) -> PathBuf {
    let path = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| venv_bin(default_name));
    assert!(
        path.is_file(),
        "{var}: {} does not exist: {INSTALL_HINT}",
        path.display()
    );
    path
}

fn python() -> PathBuf {
    let py = client("EMBER_PY", "python");
    let out = run(
        Command::new(&py).args(["-c", "import cassandra; print(cassandra.__version__)"]),
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "{} cannot import cassandra-driver: {}\n{INSTALL_HINT}",
        py.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "cassandra-driver {}",
        String::from_utf8_lossy(&out.stdout).trim()
    );
    py
}

fn cqlsh() -> PathBuf {
    client("EMBER_CQLSH", "cqlsh")
}

/// Runs a client to completion with a deadline, capturing its output (and echoing it, so a
/// failing test shows what the client said).
fn run(cmd: &mut Command, timeout: Duration) -> Output {
    let mut child = cmd
        .env("LC_ALL", "C.UTF-8")
        .env("PYTHONIOENCODING", "utf-8")
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}\n{INSTALL_HINT}"));
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("stdout")));
    let err = drain(Box::new(child.stderr.take().expect("stderr")));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for client") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = Output {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    };
    eprintln!(
        "$ {cmd:?}\n--- status: {status}\n--- stdout:\n{}--- stderr:\n{}---",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The `ember-cql` binary on a free port; killed with SIGKILL when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn spawn(dir: &Path) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ember-cql"))
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ember-cql");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !sent && let Some(a) = line.split("local_addr=").nth(1) {
                    let _ = tx.send(a.split_whitespace().next().unwrap_or("").to_string());
                    sent = true;
                }
                eprintln!("[ember-cql] {line}");
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("ember-cql reported its address")
            .parse()
            .expect("address parses");
        Server { child, addr }
    }

    fn host(&self) -> String {
        self.addr.ip().to_string()
    }

    fn port(&self) -> String {
        self.addr.port().to_string()
    }

    /// SIGKILL (`Child::kill` on Unix): nothing gets a chance to flush.
    fn kill9(mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reap");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// cqlsh 6.2 warns (on stdout when it is not a terminal) that it was built against 5.0.0 and
/// the server reports 4.1.0.
fn is_version_warning(line: &str) -> bool {
    line.starts_with("WARNING: cqlsh was built against")
}

/// cqlsh's stdout without the version warning, blank lines and table rules, cells trimmed:
/// `   2 |  café |   1` → `2 | café | 1`.
fn normalized(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !is_version_warning(l))
        .filter(|l| !l.chars().all(|c| c == '-' || c == '+'))
        .map(|l| l.split('|').map(str::trim).collect::<Vec<_>>().join(" | "))
        .collect()
}

#[test]
fn cqlsh_runs_a_script_file() {
    let cqlsh = cqlsh();
    let dir = common::temp_dir("cqlsh");
    let server = Server::spawn(&dir);
    let script = manifest_dir().join("tests/data/cqlsh_script.cql");
    let out = run(
        Command::new(&cqlsh)
            .arg(server.host())
            .arg(server.port())
            .arg("-f")
            .arg(&script),
        Duration::from_secs(120),
    );
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert!(
        out.status.success(),
        "cqlsh -f failed ({}): {stderr}",
        out.status
    );
    // Any stderr line other than the version warning would be a statement error.
    for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
        assert!(is_version_warning(line), "unexpected cqlsh stderr: {line}");
    }
    let want = [
        // Partition (eu, 1) in clustering order seq DESC: the DELETE removed seq 3, the
        // UPDATE changed apple's qty and tags and left its quoted note alone.
        "seq | item | qty | note",
        "2 | café | 1 | naïve ☕ 日本語 ünïcødé",
        "1 | apple | 42 | it's \"quoted\"",
        "(2 rows)",
        "item | tags | prices",
        "apple | {'fruit', 'red', 'sale'} | {'eur': 1.5}",
        "(1 rows)",
        "item | note",
        "plum | updated",
        "(1 rows)",
        "count",
        "4",
        "(1 rows)",
        // The deleted row.
        "item | qty",
        "(0 rows)",
        "region | store | item",
        "us | 1 | melon",
        "(1 rows)",
    ];
    assert_eq!(normalized(&stdout), want, "cqlsh output:\n{stdout}");
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn cqlsh_reports_server_errors_like_cassandra() {
    let cqlsh = cqlsh();
    let dir = common::temp_dir("cqlsh-errors");
    let server = Server::spawn(&dir);
    let e = |stmt: &str| {
        run(
            Command::new(&cqlsh)
                .arg(server.host())
                .arg(server.port())
                .args(["-e", stmt]),
            Duration::from_secs(60),
        )
    };

    // A syntax error: cqlsh prints the exception class and the server's message, prefixed
    // with the statement position, on stderr, and exits with status 2.
    let out = e("SELEC * FROM system.local");
    assert_eq!(out.status.code(), Some(2), "cqlsh exit status");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("<stdin>:1:SyntaxException: line 1:0 no viable alternative at input"),
        "stderr: {stderr}"
    );
    assert_eq!(
        normalized(&text(&out.stdout)),
        Vec::<String>::new(),
        "nothing on stdout"
    );

    // A request error: the driver's "Error from server: code=2200 [Invalid query]" form.
    let out = e("SELECT * FROM nosuch.t");
    assert_eq!(out.status.code(), Some(2), "cqlsh exit status");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(
            "<stdin>:1:InvalidRequest: Error from server: code=2200 [Invalid query] \
             message=\"keyspace nosuch does not exist\""
        ),
        "stderr: {stderr}"
    );

    // Already exists (0x2400) is reported with its own class.
    let out = e(
        "CREATE KEYSPACE k1 WITH replication = {'class': 'SimpleStrategy', \
                 'replication_factor': 1}; CREATE KEYSPACE k1 WITH replication = \
                 {'class': 'SimpleStrategy', 'replication_factor': 1}",
    );
    assert_eq!(out.status.code(), Some(2), "cqlsh exit status");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("<stdin>:1:AlreadyExists: Keyspace 'k1' already exists"),
        "stderr: {stderr}"
    );

    // A good statement still exits 0.
    let out = e("SELECT cluster_name, release_version FROM system.local");
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    assert!(
        normalized(&stdout).contains(&"ember | 4.1.0".to_string()),
        "stdout: {stdout}"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn python_driver_defaults_insert_page_kill9_restart() {
    let py = python();
    let script = manifest_dir().join("tests/python/driver_roundtrip.py");
    let dir = common::temp_dir("python-driver");
    let driver = |server: &Server, mode: &str| {
        run(
            Command::new(&py)
                .arg(&script)
                .arg(server.host())
                .arg(server.port())
                .args([mode, "10000"]),
            Duration::from_secs(600),
        )
    };

    let server = Server::spawn(&dir);
    let out = driver(&server, "write");
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "python write run failed ({}):\n{stdout}\n{}",
        out.status,
        text(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines.contains(&"protocol_version 4"), "{stdout}");
    assert!(lines.contains(&"inserted 10000"), "{stdout}");
    assert!(
        lines.iter().any(|l| l.starts_with("read 10000 ok")),
        "{stdout}"
    );
    server.kill9();

    let server = Server::spawn(&dir);
    let out = driver(&server, "read");
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "python read run after kill -9 failed ({}):\n{stdout}\n{}",
        out.status,
        text(&out.stderr)
    );
    assert!(
        stdout.lines().any(|l| l.starts_with("read 10000 ok")),
        "{stdout}"
    );
    assert!(!stdout.contains("inserted"), "{stdout}");
    server.kill9();
    let _ = std::fs::remove_dir_all(dir);
}
