//! `ember-ingest serve` as a process: POST /ingest, GET /batches/{id},
//! /healthz, /metrics, and bad requests refused without harm.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::fixture::{self, Reply, TRUNCATED};
use serde_json::{Value, json};

struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(topic: &str, table: &str, api_url: &str) -> Server {
    let mut child = Command::new(common::bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--topic", topic])
        .args(["--staging-table", table, "--api-url", api_url])
        .args([
            "--api-attempts",
            "2",
            "--api-backoff-ms",
            "10",
            "--page-size",
            "5",
        ])
        .args([
            "--brokers",
            &common::brokers(),
            "--pg",
            &ember_ingest::outbox::pg_url_from_env(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("read");
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    Server { child, url }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_ingest_poll_health_metrics() {
    let topic = common::create_topic("svc");
    let table = format!("ingest_t_{}", common::hex16());
    let (api_url, _fx) = fixture::serve(vec![], vec![Reply::Body(TRUNCATED)]).await;
    let srv = serve(&topic, &table, &api_url);
    let http = reqwest::Client::new();

    let health = http
        .get(format!("{}/healthz", srv.url))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);

    let resp = http
        .post(format!("{}/ingest", srv.url))
        .json(&json!({"count": 25, "source": "generate", "seed": 3}))
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["staged"], 25);
    let id = body["batch_id"].as_str().expect("batch_id").to_string();

    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        let s: Value = http
            .get(format!("{}/batches/{id}", srv.url))
            .send()
            .await
            .expect("get batch")
            .json()
            .await
            .expect("json");
        if s["state"] == "produced" {
            break s;
        }
        assert!(Instant::now() < deadline, "not produced: {s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status["staged"], 25);
    assert_eq!(status["produced"], 25);
    assert_eq!(status["fetched"], 25);

    // A source that only returns garbage: 502 with the batch marked failed,
    // and the service keeps serving.
    let resp = http
        .post(format!("{}/ingest", srv.url))
        .json(&json!({"count": 5, "source": "api"}))
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), 502);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["state"], "failed");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("malformed")),
        "{body}"
    );

    // Bad requests are refused with a reason.
    for bad in [
        json!({"count": 0, "source": "generate"}),
        json!({"count": 5, "source": "ftp"}),
        json!({"source": "generate"}),
        json!({"count": 5, "source": "generate", "extra": 1}),
    ] {
        let r = http
            .post(format!("{}/ingest", srv.url))
            .json(&bad)
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 400, "{bad}");
        let e: Value = r.json().await.expect("json error");
        assert!(e["error"].is_string(), "{e}");
    }
    let r = http
        .get(format!("{}/batches/nope", srv.url))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 400);
    let r = http
        .get(format!("{}/batches/{}", srv.url, uuid::Uuid::new_v4()))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 404);

    let metrics = http
        .get(format!("{}/metrics", srv.url))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for line in [
        "ember_ingest_records_produced_total 25",
        // Staged and relayed by the one process: sent from memory.
        "ember_ingest_records_handed_off_total 25",
        "ember_ingest_records_read_back_total 0",
        "ember_ingest_records_staged_total 25",
        "ember_ingest_api_malformed_total 2",
        "ember_ingest_batches_failed_total 1",
        "ember_ingest_staging_backlog 0",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing `{line}` in\n{metrics}"
        );
    }
    let health = http
        .get(format!("{}/healthz", srv.url))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);
    drop(srv);
    common::drop_table_named(&table).await;
}

#[test]
fn cli_refuses_bad_values_naming_the_flag() {
    for (args, flag) in [
        (
            vec!["run", "--count", "0", "--source", "generate"],
            "--count",
        ),
        (vec!["run", "--count", "5", "--source", "nope"], "--source"),
        (
            vec!["run", "--count", "5", "--api-url", "ftp://x"],
            "--api-url",
        ),
        (
            vec!["run", "--count", "5", "--staging-table", "x;drop"],
            "--staging-table",
        ),
        (vec!["serve", "--listen", "not-an-addr"], "--listen"),
        (vec!["replay", "--since", "yesterday"], "--since"),
        (
            vec!["run", "--count", "5", "--page-size", "6000"],
            "--page-size",
        ),
    ] {
        let out = Command::new(common::bin())
            .args(&args)
            .output()
            .expect("run");
        assert!(!out.status.success(), "{args:?} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(flag), "{args:?}: {err}");
    }
}
