//! Ember's web UI: server-rendered HTML, one small vanilla script and inline
//! SVG charts, all compiled into the binary, so it works with no CDN and no
//! internet. It renders the same API types as `/api/v1` and `ember --json`.
//!
//! Each page is a shell around a fragment (`/fragments/...`) that the script
//! re-fetches every few seconds, so the page stays live without a meta
//! refresh interrupting the stop dialog. Everything shown is escaped, and a
//! Content-Security-Policy forbids inline scripts as a second line of defence.

mod chart;

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use ember_api::{DeadLetterSample, JobDetail, JobSummary, job_state};
use parking_lot::Mutex;

use crate::executors::BallistaJob;
use crate::http::AppState;
use chart::{Series, line_chart, short_number};

const REFRESH_MS: u32 = 2000;
const BATCHES_SHOWN: usize = 20;
const DEAD_LETTERS_SHOWN: usize = 20;
const BALLISTA_JOBS_SHOWN: usize = 15;

static UI_JS: &str = include_str!("../assets/ui.js");
static UI_CSS: &str = include_str!("../assets/ui.css");

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(overview))
        .route("/jobs/{name}", get(job_page))
        .route("/fragments/overview", get(overview_fragment))
        .route("/fragments/jobs/{name}", get(job_fragment))
        .route(
            "/assets/ui.js",
            get(|| async { asset("text/javascript; charset=utf-8", UI_JS) }),
        )
        .route(
            "/assets/ui.css",
            get(|| async { asset("text/css; charset=utf-8", UI_CSS) }),
        )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    // no-cache: a new binary may bring new assets under the same URL.
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// HTML-escapes text (also what came from Kafka payloads). Control
/// characters are shown as `\u{..}` so they cannot hide or reorder text.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '&' => o.push_str("&amp;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => {
                let _ = write!(o, "\\u{{{:04x}}}", c as u32);
            }
            // Bidi overrides could make a payload read differently from what it is.
            '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => {
                let _ = write!(o, "\\u{{{:04x}}}", c as u32);
            }
            c => o.push(c),
        }
    }
    o
}

/// Percent-encodes one URL path segment (a job name in a link).
fn url_segment(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            o.push(b as char);
        } else {
            let _ = write!(o, "%{b:02X}");
        }
    }
    o
}

fn job_href(name: &str) -> String {
    format!("/jobs/{}", url_segment(name))
}

/// An integer with thousands separators, and its raw value for scripts and tests.
fn count<T: Into<i128> + Copy>(id: &str, v: T) -> String {
    let v: i128 = v.into();
    let digits = v.unsigned_abs().to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let sign = if v < 0 { "-" } else { "" };
    let id = if id.is_empty() {
        String::new()
    } else {
        format!(" id=\"{}\"", esc(id))
    };
    format!("<span class=num{id} data-value=\"{v}\">{sign}{grouped}</span>")
}

fn state_badge(id: &str, state: &str) -> String {
    let class = match state {
        job_state::RUNNING | "alive" | "Completed" | "Running" => "ok",
        job_state::RETRYING | "Queued" => "warn",
        job_state::FAILED | "lost" | "Failed" | "Invalid" => "bad",
        _ => "idle",
    };
    let id = if id.is_empty() {
        String::new()
    } else {
        format!(" id=\"{}\"", esc(id))
    };
    format!("<span class=\"badge {class}\"{id}>{}</span>", esc(state))
}

/// A full page: the shell the script refreshes `#content` of.
fn page(
    status: StatusCode,
    title: &str,
    crumbs: &str,
    fragment_url: Option<&str>,
    content: &str,
) -> Response {
    let refresh = match fragment_url {
        Some(u) => format!(
            " data-fragment=\"{}\" data-refresh-ms=\"{REFRESH_MS}\"",
            esc(u)
        ),
        None => String::new(),
    };
    let html = format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8>\
<meta name=viewport content=\"width=device-width, initial-scale=1\">\
<title>{title} · Ember</title><link rel=icon href=\"data:,\"><link rel=stylesheet href=\"/assets/ui.css\">\
<script src=\"/assets/ui.js\" defer></script></head><body>\
<header><a class=brand href=\"/\">Ember</a><nav>{crumbs}</nav>\
<span class=links><a href=\"/api/v1/jobs\">API</a> <a href=\"/metrics\">metrics</a></span>\
<span id=refresh-status aria-live=polite></span></header>\
<main id=content{refresh}>{content}</main></body></html>",
        title = esc(title),
    );
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        html,
    )
        .into_response()
}

/// Only our own script and stylesheet run: even if something slipped past
/// escaping, an injected inline script or handler would not execute.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn fragment(status: StatusCode, html: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        html,
    )
        .into_response()
}

// ------------------------------------------------------------------ overview

async fn overview(State(s): State<AppState>) -> Response {
    let body = overview_html(&s).await;
    page(
        StatusCode::OK,
        "Overview",
        "<span>Overview</span>",
        Some("/fragments/overview"),
        &body,
    )
}

async fn overview_fragment(State(s): State<AppState>) -> Response {
    fragment(StatusCode::OK, overview_html(&s).await)
}

async fn overview_html(s: &AppState) -> String {
    let jobs: Vec<JobSummary> = s.manager.jobs().iter().map(|j| j.summary()).collect();
    let (executors, ballista) = tokio::join!(
        crate::executors::list(&s.ballista_http, s.executor_timeout_secs),
        crate::executors::ballista_jobs(&s.ballista_http)
    );
    let running = match &ballista {
        Ok(b) => Some(crate::executors::running_tasks(&s.ballista_http, b).await),
        Err(_) => None,
    };
    let mut b = String::new();
    streaming_jobs_table(&mut b, &jobs);
    executors_table(&mut b, &executors, running);
    ballista_jobs_table(&mut b, &ballista);
    b
}

fn streaming_jobs_table(b: &mut String, jobs: &[JobSummary]) {
    b.push_str("<section><h2>Streaming jobs</h2>");
    if jobs.is_empty() {
        b.push_str("<p class=muted>No jobs yet: <code>ember submit jobs/users_created.toml</code>.</p></section>");
        return;
    }
    b.push_str(
        "<table id=jobs><thead><tr><th>job</th><th>state</th><th>trigger</th><th>topic</th><th>sink</th>\
<th class=r title=\"over the last minute\">rows in/s</th><th class=r title=\"over the last minute\">rows out/s</th>\
<th class=r>rows in</th><th class=r>rows out</th><th class=r>dead letters</th><th class=r>lag</th><th class=r>batches</th></tr></thead><tbody>",
    );
    for m in jobs {
        let _ = write!(
            b,
            "<tr data-job=\"{name}\"><td><a class=job-link href=\"{href}\">{name}</a></td><td>{state}</td><td>{trigger}</td><td>{topic}</td><td>{sink}</td>\
<td class=r>{rin}</td><td class=r>{rout}</td><td class=r>{tin}</td><td class=r>{tout}</td><td class=r>{dead}</td><td class=r>{lag}</td><td class=r>{batches}</td></tr>",
            name = esc(&m.name),
            href = esc(&job_href(&m.name)),
            state = state_badge("", &m.state),
            trigger = esc(&m.trigger),
            topic = esc(&m.topic),
            sink = esc(&m.sink),
            rin = short_number(m.rows_in_per_sec),
            rout = short_number(m.rows_out_per_sec),
            tin = count("", m.rows_in),
            tout = count("", m.rows_out),
            dead = count("", m.rows_dead),
            lag = count("", m.total_lag),
            batches = count("", m.batches),
        );
        if !m.error.is_empty() {
            let _ = write!(
                b,
                "<tr class=error-row><td colspan=12><code>{}</code></td></tr>",
                esc(&m.error)
            );
        }
    }
    b.push_str("</tbody></table></section>");
}

fn executors_table(
    b: &mut String,
    executors: &Result<Vec<ember_api::ExecutorInfo>, String>,
    running: Option<usize>,
) {
    b.push_str("<section><h2>Executors</h2>");
    let list = match executors {
        Ok(l) => l,
        Err(e) => {
            let _ = write!(b, "<p class=error>{}</p></section>", esc(e));
            return;
        }
    };
    let slots: u32 = list
        .iter()
        .filter(|e| e.state == "alive")
        .map(|e| e.task_slots)
        .sum();
    let alive = list.iter().filter(|e| e.state == "alive").count();
    let _ = write!(
        b,
        "<p class=muted>{alive} alive of {}, {slots} task slots",
        list.len()
    );
    if let Some(n) = running {
        let _ = write!(
            b,
            ", <span id=busy-slots data-value=\"{n}\">{n}</span> busy (tasks running now)"
        );
    }
    b.push_str(".</p>");
    if list.is_empty() {
        b.push_str("<p class=muted>No executor registered.</p></section>");
        return;
    }
    // Ballista reports running tasks per job, not per executor: a per-executor
    // figure is shown only when the API type carries one.
    b.push_str(
        "<table id=executors><thead><tr><th>id</th><th>address</th><th class=r>task slots</th><th class=r>busy slots</th>\
<th class=r>last heartbeat</th><th>state</th></tr></thead><tbody>",
    );
    for e in list {
        let busy = if e.busy_slots > 0 {
            count("", e.busy_slots)
        } else {
            "<span class=muted title=\"Ballista does not report tasks per executor; see the total above\">–</span>".into()
        };
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}:{}</td><td class=r>{}</td><td class=r>{busy}</td><td class=r>{} s ago</td><td>{}</td></tr>",
            esc(&e.id),
            esc(&e.host),
            e.port,
            e.task_slots,
            e.last_heartbeat_secs_ago,
            state_badge("", &e.state)
        );
    }
    b.push_str("</tbody></table></section>");
}

fn ballista_jobs_table(b: &mut String, jobs: &Result<Vec<BallistaJob>, String>) {
    b.push_str("<section><h2>Ballista jobs</h2>");
    let jobs = match jobs {
        Ok(j) => j,
        Err(e) => {
            let _ = write!(b, "<p class=error>{}</p></section>", esc(e));
            return;
        }
    };
    let mut by_status: Vec<(String, usize)> = Vec::new();
    for j in jobs {
        match by_status.iter_mut().find(|(s, _)| *s == j.status) {
            Some((_, n)) => *n += 1,
            None => by_status.push((j.status.clone(), 1)),
        }
    }
    let totals: Vec<String> = by_status
        .iter()
        .map(|(s, n)| format!("{n} {}", esc(&s.to_lowercase())))
        .collect();
    let _ = write!(
        b,
        "<p class=muted>{} jobs{}{} (each micro-batch is one); the latest {BALLISTA_JOBS_SHOWN}:</p>",
        jobs.len(),
        if totals.is_empty() { "" } else { ": " },
        totals.join(", ")
    );
    if jobs.is_empty() {
        b.push_str("</section>");
        return;
    }
    b.push_str(
        "<table id=ballista-jobs><thead><tr><th>id</th><th>name</th><th>status</th><th class=r>stages</th>\
<th>started</th><th class=r>duration</th><th>detail</th></tr></thead><tbody>",
    );
    let now = chrono::Utc::now().timestamp_millis().max(0) as u64;
    for j in jobs.iter().take(BALLISTA_JOBS_SHOWN) {
        let started = chrono::DateTime::from_timestamp_millis(j.start_time as i64)
            .map(|t| t.format("%H:%M:%S").to_string())
            .unwrap_or_default();
        let end = if j.end_time > 0 { j.end_time } else { now };
        let _ = write!(
            b,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td class=r>{}/{}</td><td>{}</td><td class=r>{} ms</td><td class=detail>{}</td></tr>",
            esc(&j.job_id),
            esc(&j.job_name),
            state_badge("", &j.status),
            j.completed_stages,
            j.num_stages,
            esc(&started),
            end.saturating_sub(j.start_time),
            esc(&j.job_status)
        );
    }
    b.push_str("</tbody></table></section>");
}

// ------------------------------------------------------------------ job page

fn crumbs(name: &str) -> String {
    format!(
        "<a href=\"/\">Overview</a> › <span>job {}</span>",
        esc(name)
    )
}

async fn job_page(State(s): State<AppState>, Path(name): Path<String>) -> Response {
    let fragment_url = format!("/fragments/jobs/{}", url_segment(&name));
    match job_detail(&s, &name).await {
        Some(d) => page(
            StatusCode::OK,
            &format!("job {name}"),
            &crumbs(&name),
            Some(&fragment_url),
            &job_html(&d),
        ),
        None => page(
            StatusCode::NOT_FOUND,
            "Not found",
            &crumbs(&name),
            None,
            &not_found(&name),
        ),
    }
}

async fn job_fragment(State(s): State<AppState>, Path(name): Path<String>) -> Response {
    match job_detail(&s, &name).await {
        Some(d) => fragment(StatusCode::OK, job_html(&d)),
        None => fragment(StatusCode::NOT_FOUND, not_found(&name)),
    }
}

fn not_found(name: &str) -> String {
    format!(
        "<p class=error>No job named <code>{}</code>.</p>",
        esc(name)
    )
}

async fn job_detail(s: &AppState, name: &str) -> Option<JobDetail> {
    let job = s.manager.job(name)?;
    let dead = dead_letters_cached(s, &job).await;
    Some(job.detail(dead))
}

/// The dead-letter sample is a query to the sink; with a page refreshing
/// every two seconds per viewer, keep it a few seconds.
async fn dead_letters_cached(s: &AppState, job: &crate::manager::Job) -> Vec<DeadLetterSample> {
    type Cache = Mutex<HashMap<String, (Instant, Vec<DeadLetterSample>)>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some((at, v)) = cache.lock().get(&job.spec.name)
        && at.elapsed() < Duration::from_secs(3)
    {
        return v.clone();
    }
    let v = s.manager.dead_letters(job, DEAD_LETTERS_SHOWN).await;
    cache
        .lock()
        .insert(job.spec.name.clone(), (Instant::now(), v.clone()));
    v
}

fn job_html(d: &JobDetail) -> String {
    let m = d.summary.clone().unwrap_or_default();
    let mut b = String::new();
    let _ = write!(
        b,
        "<section class=summary><h1>{name} {state}</h1><dl>\
<div><dt>rows in</dt><dd>{rin}</dd></div><div><dt>rows out</dt><dd>{rout}</dd></div>\
<div><dt>dead letters</dt><dd>{dead}</dd></div><div><dt>lag</dt><dd>{lag}</dd></div>\
<div><dt>rows in/s</dt><dd id=rate-in>{rate_in}</dd></div><div><dt>rows out/s</dt><dd id=rate-out>{rate_out}</dd></div>\
<div><dt>batches</dt><dd>{batches}</dd></div><div><dt>trigger</dt><dd>{trigger}</dd></div>\
<div><dt>sink latency p50 / p99</dt><dd id=latency>{p50} / {p99} ms</dd></div>\
<div><dt>topic</dt><dd>{topic}</dd></div><div><dt>sink</dt><dd>{sink}</dd></div></dl>",
        name = esc(&m.name),
        state = state_badge("state", &m.state),
        rin = count("rows-in", m.rows_in),
        rout = count("rows-out", m.rows_out),
        dead = count("rows-dead", m.rows_dead),
        lag = count("lag", m.total_lag),
        rate_in = short_number(m.rows_in_per_sec),
        rate_out = short_number(m.rows_out_per_sec),
        batches = count("batches", m.batches),
        trigger = esc(&m.trigger),
        p50 = m.latency_p50_ms,
        p99 = m.latency_p99_ms,
        topic = esc(&m.topic),
        sink = esc(&m.sink),
    );
    if !m.error.is_empty() {
        let _ = write!(b, "<p class=error id=job-error>{}</p>", esc(&m.error));
    }
    if matches!(m.state.as_str(), job_state::RUNNING | job_state::RETRYING) {
        let _ = write!(
            b,
            "<p><button type=button id=stop data-job=\"{}\" data-stop-url=\"/api/v1/jobs/{}/stop\">Stop job</button> \
<span class=muted>stops after the current batch; <code>ember submit</code> resumes it.</span></p>",
            esc(&m.name),
            esc(&url_segment(&m.name))
        );
    }
    b.push_str("</section>");

    // Charts over JobDetail.history (one point per committed batch).
    let pts = |f: fn(&ember_api::MetricPoint) -> f64| {
        d.history
            .iter()
            .map(|p| (p.at_ms, f(p)))
            .collect::<Vec<_>>()
    };
    b.push_str("<section class=charts>");
    b.push_str(&line_chart(
        "chart-rates",
        "rows/s (last minute)",
        &[
            Series {
                label: "in",
                class: "s-in",
                points: pts(|p| p.rows_in_per_sec),
            },
            Series {
                label: "out",
                class: "s-out",
                points: pts(|p| p.rows_out_per_sec),
            },
        ],
    ));
    b.push_str(&line_chart(
        "chart-lag",
        "lag (records)",
        &[Series {
            label: "lag",
            class: "s-lag",
            points: pts(|p| p.lag as f64),
        }],
    ));
    b.push_str("</section>");

    b.push_str(
        "<section><h2>Partitions</h2><table id=partitions><thead><tr><th>topic</th><th class=r>partition</th>\
<th class=r>latest offset</th><th class=r>committed offset</th><th class=r>lag</th></tr></thead><tbody>",
    );
    for p in &d.partitions {
        let _ = write!(
            b,
            "<tr><td>{}</td><td class=r>{}</td><td class=r>{}</td><td class=r>{}</td><td class=r>{}</td></tr>",
            esc(&p.topic),
            p.partition,
            count("", p.latest_offset),
            count("", p.committed_offset),
            count("", p.lag)
        );
    }
    if d.partitions.is_empty() {
        b.push_str("<tr><td colspan=5 class=muted>offsets not read yet</td></tr>");
    }
    b.push_str("</tbody></table></section>");

    let _ = write!(
        b,
        "<section><h2>Last batches</h2><table id=batches><thead><tr><th class=r>batch</th><th>state</th><th>started</th><th>offset ranges</th>\
<th class=r>in</th><th class=r>out</th><th class=r>dead</th><th class=r>duration</th><th class=r>attempts</th><th>executors</th><th>error</th></tr></thead><tbody>"
    );
    for bt in d.batches.iter().take(BATCHES_SHOWN) {
        // Grouped by topic: "topic  0 [a, b)  1 [c, d)" stays readable with many partitions.
        let mut ranges = String::new();
        let mut topic: Option<&str> = None;
        for r in &bt.ranges {
            if topic != Some(r.topic.as_str()) {
                if topic.is_some() {
                    ranges.push_str("</div>");
                }
                let _ = write!(ranges, "<div><span class=topic>{}</span>", esc(&r.topic));
                topic = Some(&r.topic);
            }
            let _ = write!(
                ranges,
                " <span class=range>{}&nbsp;[{},&nbsp;{})</span>",
                r.partition, r.from_offset, r.until_offset
            );
        }
        if topic.is_some() {
            ranges.push_str("</div>");
        }
        let started = chrono::DateTime::parse_from_rfc3339(&bt.started_at)
            .map(|t| t.format("%H:%M:%S").to_string())
            .unwrap_or_else(|_| bt.started_at.clone());
        let _ = write!(
            b,
            "<tr><td class=r>{}</td><td>{}</td><td>{}</td><td class=ranges>{}</td><td class=r>{}</td><td class=r>{}</td><td class=r>{}</td>\
<td class=r>{} ms{}</td><td class=r>{}</td><td>{}</td><td class=error>{}</td></tr>",
            bt.batch_id,
            state_badge("", &bt.state),
            esc(&started),
            ranges,
            count("", bt.rows_in),
            count("", bt.rows_out),
            count("", bt.rows_dead),
            bt.duration_ms,
            // Spark's durationMs.latestOffset: before the batch, not in its duration.
            if bt.latest_offset_ms > 0 {
                format!(
                    "<div class=muted>+ {} ms offsets</div>",
                    bt.latest_offset_ms
                )
            } else {
                String::new()
            },
            bt.attempts,
            esc(&bt.executors.join(", ")),
            esc(&bt.error)
        );
    }
    if d.batches.is_empty() {
        b.push_str("<tr><td colspan=11 class=muted>no batch committed yet</td></tr>");
    }
    b.push_str("</tbody></table></section>");

    let _ = write!(
        b,
        "<section><h2>Dead letters</h2><p class=muted>{} in all, the latest {} shown; the dead-letter table keeps the raw bytes.</p>\
<table id=dead-letters><thead><tr><th>failed at</th><th>topic</th><th class=r>partition</th><th class=r>offset</th><th>reason</th><th>value</th></tr></thead><tbody>",
        m.rows_dead,
        d.dead_letters.len()
    );
    for x in &d.dead_letters {
        // The API carries the value as lossy UTF-8; say so when bytes were replaced.
        let lossy = if x.value.contains('\u{fffd}') {
            "<span class=muted> (not UTF-8: shown lossy)</span>"
        } else {
            ""
        };
        let _ = write!(
            b,
            "<tr class=dead-letter><td>{}</td><td>{}</td><td class=r>{}</td><td class=r>{}</td><td class=reason>{}</td><td><code class=payload>{}</code>{lossy}</td></tr>",
            esc(&x.failed_at),
            esc(&x.topic),
            x.partition,
            x.offset,
            esc(&x.reason),
            esc(&x.value)
        );
    }
    if d.dead_letters.is_empty() {
        b.push_str("<tr><td colspan=6 class=muted>none</td></tr>");
    }
    b.push_str("</tbody></table></section>");

    let _ = write!(
        b,
        "<section><details><summary>Spec</summary><pre id=spec>{}</pre></details></section>",
        esc(&redact(&d.spec))
    );
    b
}

/// The spec without secrets (the sink password) for display.
fn redact(spec: &str) -> String {
    spec.lines()
        .map(|l| {
            let key = l
                .trim_start()
                .split('=')
                .next()
                .unwrap_or("")
                .trim()
                .trim_matches('"');
            if key.eq_ignore_ascii_case("password") && l.contains('=') {
                format!("{key} = \"…\"")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_controls() {
        assert_eq!(
            esc("<script>alert(1)</script>"),
            "&lt;script&gt;alert(1)&lt;/script&gt;"
        );
        assert_eq!(esc("a\"'&\u{1b}"), "a&quot;&#39;&amp;\\u{001b}");
        assert_eq!(esc("\u{202e}x"), "\\u{202e}x");
    }

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(url_segment("a b/<c>"), "a%20b%2F%3Cc%3E");
        assert_eq!(url_segment("users_created"), "users_created");
    }

    #[test]
    fn counts_group_digits() {
        assert!(count("x", 1234567u64).contains(">1,234,567<"));
        assert!(count("", -1000i64).contains(">-1,000<"));
        assert!(count("", 0u64).contains(">0<"));
    }

    #[test]
    fn passwords_are_redacted() {
        let r = redact("[sink]\npassword = \"hunter2\"\nusername = \"u\"");
        assert!(!r.contains("hunter2") && r.contains("username"));
    }
}
