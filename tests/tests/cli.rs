//! The `ember` command against a real scheduler: tables for people, `--json`
//! for scripts, clear errors.

use std::process::Command;
use std::time::Duration;

use ember_e2e::*;

fn ember(cluster: &Cluster, args: &[&str]) -> (bool, String, String) {
    let bin = std::env::var("EMBER_BIN_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            std::env::current_exe()
                .expect("exe")
                .parent()
                .and_then(|p| p.parent())
                .expect("target")
                .to_path_buf()
        });
    let out = Command::new(bin.join("ember"))
        .arg("--scheduler")
        .arg(format!("http://127.0.0.1:{}", cluster.grpc_port))
        .args(args)
        .output()
        .expect("run ember");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cli_submits_lists_shows_and_stops_jobs() -> anyhow::Result<()> {
    let topic = unique("e2e_cli");
    let ks = unique("ks_cli");
    create_topic(&topic, 2)?;
    produce_users(&topic, 1_000, 21).await?;
    let cluster = Cluster::start(1).await?;
    let dir = cluster.home.join("specs");
    std::fs::create_dir_all(&dir)?;
    let spec_path = dir.join("cli.toml");
    std::fs::write(&spec_path, reference_spec("cli", &topic, &ks, "", ""))?;
    let spec = spec_path.display().to_string();

    let (ok, out, err) = ember(&cluster, &["submit", &spec]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "job cli created");
    cluster
        .wait_job("cli", Duration::from_secs(120), "1,000 rows", |d| {
            d.summary.as_ref().is_some_and(|s| s.rows_out == 1_000)
        })
        .await?;

    let (ok, out, _) = ember(&cluster, &["jobs"]);
    assert!(ok);
    let line = out
        .lines()
        .find(|l| l.starts_with("cli "))
        .expect("a row for the job");
    assert!(line.contains("running") && line.contains("1000"), "{out}");

    let (ok, out, _) = ember(&cluster, &["--json", "job", "cli"]);
    assert!(ok);
    let d: ember_api::JobDetail = serde_json::from_str(&out)?;
    assert_eq!(d.summary.as_ref().map(|s| s.rows_out), Some(1_000));
    assert_eq!(d.partitions.len(), 2);
    assert!(d.partitions.iter().all(|p| p.lag == 0));
    assert!(!d.batches.is_empty() && !d.batches[0].executors.is_empty());

    let (ok, out, _) = ember(&cluster, &["job", "cli"]);
    assert!(
        ok && out.contains("PARTITIONS") && out.contains("RECENT BATCHES"),
        "{out}"
    );
    assert!(
        out.contains("sink latency p50") && out.contains("(1000 rows)"),
        "{out}"
    );

    let (ok, out, _) = ember(&cluster, &["executors"]);
    assert!(
        ok && out.contains("exec-0-") && out.contains("alive"),
        "{out}"
    );

    // Resubmitting a running job is refused; a bad spec names its fault.
    let (ok, _, err) = ember(&cluster, &["submit", &spec]);
    assert!(!ok && err.contains("already running"), "{err}");
    std::fs::write(
        &spec_path,
        reference_spec("cli", &topic, &ks, "", "").replace("subscribe", "subscrib"),
    )?;
    let (ok, _, err) = ember(&cluster, &["submit", &spec]);
    assert!(!ok && err.contains("subscrib"), "{err}");

    let (ok, out, err) = ember(&cluster, &["stop", "cli"]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "job cli stopped");
    // After a stop, the same name resumes from its checkpoint.
    std::fs::write(&spec_path, reference_spec("cli", &topic, &ks, "", ""))?;
    let (ok, out, err) = ember(&cluster, &["submit", &spec]);
    assert!(ok && out.trim() == "job cli resumed", "{out} {err}");
    // --reset forgets the checkpoint: the job reads the topic again from startingOffsets.
    cluster
        .wait_job(
            "cli",
            Duration::from_secs(60),
            "resumed with nothing new",
            |d| d.summary.as_ref().is_some_and(|s| s.state == "running"),
        )
        .await?;
    let (ok, out, err) = ember(&cluster, &["submit", "--reset", &spec]);
    assert!(ok && out.trim() == "job cli reset", "{out} {err}");
    let d = cluster
        .wait_job(
            "cli",
            Duration::from_secs(120),
            "1,000 rows read again",
            |d| {
                d.summary
                    .as_ref()
                    .is_some_and(|s| s.rows_in == 1_000 && s.total_lag == 0)
            },
        )
        .await?;
    assert_eq!(
        d.batches.last().map(|b| b.batch_id),
        Some(0),
        "batch numbering starts again"
    );
    assert_eq!(
        count(&cql_session().await?, &format!("{ks}.created_users")).await?,
        1_000
    );
    let (ok, _, err) = ember(&cluster, &["job", "nope"]);
    assert!(!ok && err.contains("no job named nope"), "{err}");
    Ok(())
}

#[test]
fn cli_names_an_unreachable_scheduler() {
    let bin = std::env::current_exe()
        .expect("exe")
        .parent()
        .and_then(|p| p.parent())
        .expect("target")
        .join("ember");
    let out = Command::new(bin)
        .args([
            "--scheduler",
            &format!("http://127.0.0.1:{}", free_port()),
            "jobs",
        ])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach the scheduler"));
}
