//! The web UI in a real browser: Debian's headless chromium driven through
//! chromedriver (WebDriver) while the reference job runs. Checks that the
//! overview links to the job, that the job page refreshes itself (rows grow,
//! lag reaches 0, with no reload), that a `<script>` payload in a dead letter
//! shows as text and never runs, that the stop button (after its
//! confirmation) stops the job, and that `/metrics` is valid Prometheus text.
//! Screenshots go to tests/artifacts/.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use ember_e2e::*;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

const JOB: &str = "ui_ref";
const PAYLOAD: &str = "<script>alert(1)</script>";
/// Not UTF-8, with markup after the bad bytes: shown lossy, and escaped.
const NOT_UTF8: &[u8] = b"\xff\xfe<b>x</b>";
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

fn artifacts() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("artifacts");
    let _ = std::fs::create_dir_all(&d);
    d
}

/// chromedriver on a free port, killed when dropped.
struct Driver {
    child: Child,
    port: u16,
    /// chromium's fresh --user-data-dir, removed with the driver.
    profile: PathBuf,
}

impl Driver {
    async fn start() -> Result<Self> {
        let bin = env("EMBER_CHROMEDRIVER", CHROMEDRIVER);
        let port = free_port();
        let log = std::fs::File::create(artifacts().join("chromedriver.log"))?;
        let child = Command::new(&bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| {
                format!("starting {bin} (scripts/stack install adds chromium-driver)")
            })?;
        let profile = std::env::temp_dir().join(unique("ember-ui-chromium"));
        let d = Driver {
            child,
            port,
            profile,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            ensure!(
                Instant::now() < deadline,
                "chromedriver did not listen on {port}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(d)
    }

    async fn browser(&self) -> Result<Client> {
        let profile = &self.profile;
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": env("EMBER_CHROMIUM", CHROMIUM),
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                    "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--window-size=1400,1800", format!("--user-data-dir={}", profile.display()),
                ],
            },
        });
        let Value::Object(caps) = caps else {
            bail!("capabilities")
        };
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .context("a chromium session through chromedriver")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Only this child, by its handle: the test closes its browser session
        // first, which makes chromedriver end the chromium it started.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

async fn screenshot(c: &Client, name: &str) -> Result<PathBuf> {
    let png = c.screenshot().await?;
    let path = artifacts().join(name);
    std::fs::write(&path, png)?;
    Ok(path)
}

/// A number the page shows, from its `data-value`; None while the element is
/// missing or being replaced by a refresh.
async fn shown(c: &Client, css: &str) -> Option<i64> {
    let e = c.find(Locator::Css(css)).await.ok()?;
    e.attr("data-value").await.ok()??.parse().ok()
}

/// Polls the page (which refreshes itself; it is never reloaded here) until
/// `f` holds.
async fn wait_page<T>(
    c: &Client,
    what: &str,
    timeout: Duration,
    mut f: impl AsyncFnMut(&Client) -> Option<T>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f(c).await {
            return Ok(v);
        }
        if Instant::now() > deadline {
            let _ = screenshot(c, "ui-timeout.png").await;
            let text = c.find(Locator::Css("main")).await.ok();
            let text = match text {
                Some(e) => e.text().await.unwrap_or_default(),
                None => String::new(),
            };
            bail!("the page did not show {what} within {timeout:?}; it shows:\n{text}");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn web_ui_follows_a_running_job_escapes_payloads_and_stops_it() -> Result<()> {
    let topic = unique("e2e_ui");
    let ks = unique("ks_ui");
    create_topic(&topic, 4)?;
    produce_users(&topic, 3_000, 31).await?;
    produce_raw(
        &topic,
        vec![
            (Some(b"bad".to_vec()), PAYLOAD.as_bytes().to_vec()),
            (Some(b"bad".to_vec()), NOT_UTF8.to_vec()),
        ],
    )
    .await?;

    let cluster = Cluster::start(2).await?;
    // Small batches once a second, so the job is visibly working for a while.
    let spec = with_max_offsets(
        &reference_spec(JOB, &topic, &ks, "", "processingTime = \"1 second\""),
        400,
    )?;
    cluster.submit(&spec, false).await?;

    let driver = Driver::start().await?;
    let browser = driver.browser().await?;
    let result = drive(&cluster, &browser, &topic).await;
    if result.is_err() {
        let _ = screenshot(&browser, "ui-failure.png").await;
    }
    let _ = browser.close().await;
    result?;
    check_metrics(&cluster, &topic).await
}

async fn drive(cluster: &Cluster, c: &Client, topic: &str) -> Result<()> {
    // Overview: the job, the executors, Ballista's jobs.
    c.goto(&cluster.url("/")).await?;
    let link = format!("#jobs a.job-link[href='/jobs/{JOB}']");
    wait_page(
        c,
        "the job in the overview",
        Duration::from_secs(30),
        async |c| c.find(Locator::Css(&link)).await.ok(),
    )
    .await?;
    wait_page(
        c,
        "two alive executors",
        Duration::from_secs(30),
        async |c| {
            let rows = c.find_all(Locator::Css("#executors tbody tr")).await.ok()?;
            (rows.len() == 2).then_some(())
        },
    )
    .await?;
    wait_page(
        c,
        "Ballista's jobs (the micro-batches)",
        Duration::from_secs(60),
        async |c| {
            let rows = c
                .find_all(Locator::Css("#ballista-jobs tbody tr"))
                .await
                .ok()?;
            (!rows.is_empty()).then_some(())
        },
    )
    .await?;
    println!(
        "screenshot: {}",
        screenshot(c, "ui-overview.png").await?.display()
    );

    // Follow the link: a stable URL.
    c.find(Locator::Css(&link)).await?.click().await?;
    let url = c.current_url().await?;
    ensure!(
        url.path() == format!("/jobs/{JOB}"),
        "followed the link to {url}"
    );
    let title = c.find(Locator::Css("main h1")).await?.text().await?;
    ensure!(title.starts_with(JOB), "job page title {title:?}");

    // Rows grow without a reload: the page refreshes itself.
    let first = wait_page(c, "rows out", Duration::from_secs(60), async |c| {
        shown(c, "#rows-out").await.filter(|n| *n > 0)
    })
    .await?;
    wait_page(c, "rows out growing", Duration::from_secs(60), async |c| {
        shown(c, "#rows-out").await.filter(|n| *n > first)
    })
    .await?;
    // More users while watching.
    let before = shown(c, "#rows-in").await.unwrap_or(0);
    produce_users(topic, 2_000, 32).await?;
    let total = 3_000 + 2 + 2_000;
    wait_page(
        c,
        "rows in growing after more users",
        Duration::from_secs(60),
        async |c| shown(c, "#rows-in").await.filter(|n| *n > before),
    )
    .await?;
    println!(
        "screenshot: {}",
        screenshot(c, "ui-job-running.png").await?.display()
    );
    // The backlog done: every record read, lag 0 in the summary and per partition.
    wait_page(
        c,
        "every record read and lag 0",
        Duration::from_secs(120),
        async |c| {
            let done =
                shown(c, "#rows-in").await == Some(total) && shown(c, "#lag").await == Some(0);
            done.then_some(())
        },
    )
    .await?;
    let lags = c.execute("return Array.from(document.querySelectorAll('#partitions tbody tr td:last-child span')).map(e => e.dataset.value)", vec![]).await?;
    ensure!(
        lags == json!(["0", "0", "0", "0"]),
        "per-partition lag {lags}"
    );
    ensure!(shown(c, "#rows-out").await == Some(total - 2), "rows out");
    ensure!(shown(c, "#rows-dead").await == Some(2), "dead letters");
    ensure!(
        c.find(Locator::Css("#chart-rates svg polyline"))
            .await
            .is_ok(),
        "a rows/s chart line"
    );
    ensure!(
        c.find(Locator::Css("#chart-lag svg polyline"))
            .await
            .is_ok(),
        "a lag chart line"
    );
    let batches = c.find_all(Locator::Css("#batches tbody tr")).await?;
    ensure!(batches.len() >= 5, "{} batches listed", batches.len());

    // The malformed messages: payloads shown as text, nothing ran.
    let payloads = wait_page(c, "both dead letters", Duration::from_secs(30), async |c| {
        let mut texts = Vec::new();
        for e in c
            .find_all(Locator::Css("#dead-letters code.payload"))
            .await
            .ok()?
        {
            texts.push(e.text().await.ok()?);
        }
        (texts.len() == 2).then_some(texts)
    })
    .await?;
    ensure!(
        payloads.iter().any(|p| p == PAYLOAD),
        "payloads shown as {payloads:?}"
    );
    let lossy = String::from_utf8_lossy(NOT_UTF8).into_owned();
    ensure!(payloads.contains(&lossy), "payloads shown as {payloads:?}");
    let rows = c
        .find(Locator::Css("#dead-letters tbody"))
        .await?
        .text()
        .await?;
    ensure!(
        rows.contains("not UTF-8"),
        "the lossy payload is not marked: {rows}"
    );
    let reason = c
        .find(Locator::Css("#dead-letters td.reason"))
        .await?
        .text()
        .await?;
    ensure!(!reason.is_empty(), "a dead letter without its reason");
    match c.get_alert_text().await {
        Err(e) if e.is_no_such_alert() => {}
        other => bail!("an alert is open (the payload ran?): {other:?}"),
    }
    let scripts = c
        .execute(
            "return { scripts: Array.from(document.scripts).map(s => s.getAttribute('src') || ('inline: ' + s.textContent)), \
             inPayload: document.querySelectorAll('#dead-letters code.payload *').length }",
            vec![],
        )
        .await?;
    ensure!(
        scripts == json!({"scripts": ["/assets/ui.js"], "inPayload": 0}),
        "scripts in the page: {scripts}"
    );
    println!(
        "screenshot: {}",
        screenshot(c, "ui-job.png").await?.display()
    );
    c.execute(
        "document.getElementById('dead-letters').scrollIntoView()",
        vec![],
    )
    .await?;
    let dl = screenshot(c, "ui-job-dead-letters.png").await?;
    println!("screenshot: {}", dl.display());
    c.execute("window.scrollTo(0, 0)", vec![]).await?;

    // Stop from the page: a confirmation, then the job stops.
    c.find(Locator::Css("button#stop")).await?.click().await?;
    let question = c.get_alert_text().await?;
    ensure!(question.contains(JOB), "confirmation {question:?}");
    c.accept_alert().await?;
    wait_page(c, "the job stopped", Duration::from_secs(60), async |c| {
        let s = c
            .find(Locator::Css("#state"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        (s == "stopped").then_some(())
    })
    .await?;
    ensure!(
        c.find(Locator::Css("button#stop")).await.is_err(),
        "a stopped job still offers Stop"
    );
    ensure!(cluster.job(JOB).await?.summary.unwrap_or_default().state == "stopped");
    println!(
        "screenshot: {}",
        screenshot(c, "ui-job-stopped.png").await?.display()
    );

    // An unknown job: a page saying so, not an error.
    c.goto(&cluster.url("/jobs/no%20such%20%3Cjob%3E")).await?;
    let text = c.find(Locator::Css("main")).await?.text().await?;
    ensure!(
        text.contains("No job named no such <job>"),
        "unknown job page: {text:?}"
    );
    Ok(())
}

/// `/metrics` parses as Prometheus text, with the expected families for the job.
async fn check_metrics(cluster: &Cluster, topic: &str) -> Result<()> {
    let r = reqwest::get(cluster.url("/metrics")).await?;
    let ctype = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    ensure!(ctype.starts_with("text/plain"), "content type {ctype}");
    let text = r.text().await?;
    std::fs::write(artifacts().join("metrics.txt"), &text)?;
    let mut samples: Vec<(String, HashMap<String, String>, f64)> = Vec::new();
    let mut typed: HashSet<String> = HashSet::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            typed.insert(
                rest.split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            );
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        samples.push(parse_sample(line).with_context(|| format!("metrics line {line:?}"))?);
    }
    let find = |name: &str, labels: &[(&str, &str)]| -> Option<f64> {
        samples
            .iter()
            .find(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.2)
    };
    ensure!(
        find("ember_job_rows_in_total", &[("job", JOB)]) == Some(5_002.0),
        "rows in\n{text}"
    );
    ensure!(
        find("ember_job_rows_out_total", &[("job", JOB)]) == Some(5_000.0),
        "rows out\n{text}"
    );
    ensure!(
        find("ember_job_rows_dead_total", &[("job", JOB)]) == Some(2.0),
        "rows dead\n{text}"
    );
    for p in 0..4 {
        let p = p.to_string();
        ensure!(
            find(
                "ember_partition_lag",
                &[("job", JOB), ("topic", topic), ("partition", &p)]
            ) == Some(0.0),
            "lag of partition {p}\n{text}"
        );
    }
    // Every written row has a latency; quantiles are ordered and plausible.
    ensure!(
        find("ember_sink_latency_seconds_count", &[("job", JOB)]) == Some(5_000.0),
        "latency samples\n{text}"
    );
    let q = |q: &str| {
        find(
            "ember_sink_latency_seconds",
            &[("job", JOB), ("quantile", q)],
        )
    };
    let (p50, p99, max) = (q("0.5"), q("0.99"), q("1"));
    ensure!(
        matches!((p50, p99, max), (Some(a), Some(b), Some(c)) if 0.0 < a && a <= b && b <= c && c < 600.0),
        "latency quantiles {p50:?} {p99:?} {max:?}\n{text}"
    );
    let count = find("ember_batch_duration_seconds_count", &[("job", JOB)]).unwrap_or(0.0);
    ensure!(count >= 5.0, "batch count {count}");
    ensure!(
        find(
            "ember_batch_duration_seconds_bucket",
            &[("job", JOB), ("le", "+Inf")]
        ) == Some(count),
        "+Inf bucket"
    );
    // Buckets are cumulative.
    let mut buckets: Vec<(f64, f64)> = samples
        .iter()
        .filter(|(n, l, _)| {
            n == "ember_batch_duration_seconds_bucket"
                && l.get("job").map(String::as_str) == Some(JOB)
        })
        .map(|(_, l, v)| {
            (
                l.get("le")
                    .and_then(|le| {
                        if le == "+Inf" {
                            Some(f64::INFINITY)
                        } else {
                            le.parse().ok()
                        }
                    })
                    .unwrap_or(f64::NAN),
                *v,
            )
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    ensure!(
        buckets.windows(2).all(|w| w[0].1 <= w[1].1),
        "buckets not cumulative: {buckets:?}"
    );
    ensure!(
        find("ember_executors_alive", &[]) == Some(2.0),
        "executors alive\n{text}"
    );
    for family in [
        "ember_job_rows_in_total",
        "ember_job_rows_out_total",
        "ember_job_rows_dead_total",
        "ember_partition_lag",
        "ember_batch_duration_seconds",
        "ember_executors_alive",
    ] {
        ensure!(typed.contains(family), "no # TYPE for {family}");
    }
    Ok(())
}

/// `name{k="v",...} value` or `name value`, with Prometheus' label escapes.
fn parse_sample(line: &str) -> Result<(String, HashMap<String, String>, f64)> {
    let name_end = line.find(['{', ' ']).ok_or_else(|| anyhow!("no value"))?;
    let name = &line[..name_end];
    ensure!(
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            && !name.starts_with(|c: char| c.is_ascii_digit()),
        "bad metric name {name:?}"
    );
    let mut labels = HashMap::new();
    let mut rest = &line[name_end..];
    if let Some(r) = rest.strip_prefix('{') {
        let mut chars = r.char_indices().peekable();
        let mut end = None;
        loop {
            // key
            let start = match chars.peek() {
                Some((_, '}')) => {
                    end = chars.next().map(|(i, _)| i);
                    break;
                }
                Some((i, _)) => *i,
                None => break,
            };
            let mut eq = None;
            for (i, ch) in chars.by_ref() {
                if ch == '=' {
                    eq = Some(i);
                    break;
                }
            }
            let eq = eq.ok_or_else(|| anyhow!("label without ="))?;
            let key = &r[start..eq];
            ensure!(
                !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "bad label name {key:?}"
            );
            ensure!(
                matches!(chars.next(), Some((_, '"'))),
                "label value not quoted"
            );
            let mut value = String::new();
            loop {
                match chars.next() {
                    Some((_, '\\')) => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, c @ ('\\' | '"'))) => value.push(c),
                        other => bail!("bad escape {other:?}"),
                    },
                    Some((_, '"')) => break,
                    Some((_, c)) => value.push(c),
                    None => bail!("unterminated label value"),
                }
            }
            labels.insert(key.to_string(), value);
            if let Some((_, ',')) = chars.peek() {
                chars.next();
            }
        }
        let end = end.ok_or_else(|| anyhow!("unterminated labels"))?;
        rest = &r[end + 1..];
    }
    let mut parts = rest.split_whitespace();
    let value = parts.next().ok_or_else(|| anyhow!("no value"))?;
    let v: f64 = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v
            .parse()
            .map_err(|_| anyhow!("value {v:?} is not a number"))?,
    };
    // An optional integer timestamp, nothing else.
    if let Some(ts) = parts.next() {
        ts.parse::<i64>()
            .map_err(|_| anyhow!("bad timestamp {ts:?}"))?;
    }
    ensure!(parts.next().is_none(), "trailing text");
    Ok((name.to_string(), labels, v))
}

#[test]
fn the_metrics_parser_accepts_and_refuses() {
    let (n, l, v) = parse_sample(r#"a_b{job="x\"y",le="+Inf"} 3"#).unwrap();
    assert_eq!(
        (n.as_str(), l["job"].as_str(), l["le"].as_str(), v),
        ("a_b", "x\"y", "+Inf", 3.0)
    );
    assert_eq!(parse_sample("up 1").unwrap().2, 1.0);
    assert!(parse_sample("up one").is_err());
    assert!(parse_sample(r#"up{job="x} 1"#).is_err());
    assert!(parse_sample("9up 1").is_err());
}
