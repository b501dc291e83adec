//! Ember's web UI: server-rendered HTML with no external assets, so it works
//! with no CDN and no internet. Everything shown is escaped.

use axum::Router;
use axum::extract::{Path, State};
use axum::response::Html;
use axum::routing::get;
use std::fmt::Write;

use crate::http::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/", get(overview)).route("/jobs/{name}", get(job_page))
}

/// HTML-escapes text (also what came from Kafka payloads).
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
            c => o.push(c),
        }
    }
    o
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html><head><meta charset=utf-8><title>{} · Ember</title>\
<meta http-equiv=refresh content=3>\
<style>body{{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}}table{{border-collapse:collapse;margin:.5rem 0 1.5rem}}\
td,th{{border:1px solid #ccc;padding:.25rem .6rem;text-align:left}}th{{background:#f4f4f4}}.num{{text-align:right}}\
code{{background:#f6f6f6}}</style></head><body><h1><a href=\"/\">Ember</a> · {}</h1>{body}</body></html>",
        esc(title),
        esc(title)
    ))
}

async fn overview(State(s): State<AppState>) -> Html<String> {
    let mut b = String::from("<h2>Streaming jobs</h2><table id=jobs><tr><th>job</th><th>state</th><th>topic</th><th>sink</th><th>rows in/s</th><th>rows out/s</th><th>rows out</th><th>dead letters</th><th>lag</th></tr>");
    for j in s.manager.jobs() {
        let m = j.summary();
        let _ = write!(
            b,
            "<tr><td><a href=\"/jobs/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td class=num>{:.0}</td><td class=num>{:.0}</td><td class=num>{}</td><td class=num>{}</td><td class=num>{}</td></tr>",
            esc(&m.name), esc(&m.name), esc(&m.state), esc(&m.topic), esc(&m.sink), m.rows_in_per_sec, m.rows_out_per_sec, m.rows_out, m.rows_dead, m.total_lag
        );
    }
    b.push_str("</table><h2>Executors</h2>");
    match crate::executors::list(&s.ballista_http, s.executor_timeout_secs).await {
        Ok(list) => {
            b.push_str("<table id=executors><tr><th>id</th><th>address</th><th>task slots</th><th>last heartbeat</th><th>state</th></tr>");
            for e in list {
                let _ = write!(
                    b,
                    "<tr><td>{}</td><td>{}:{}</td><td class=num>{}</td><td class=num>{} s ago</td><td>{}</td></tr>",
                    esc(&e.id), esc(&e.host), e.port, e.task_slots, e.last_heartbeat_secs_ago, esc(&e.state)
                );
            }
            b.push_str("</table>");
        }
        Err(e) => {
            let _ = write!(b, "<p>{}</p>", esc(&e));
        }
    }
    page("Overview", &b)
}

async fn job_page(State(s): State<AppState>, Path(name): Path<String>) -> Html<String> {
    let Some(job) = s.manager.job(&name) else {
        return page("Not found", &format!("<p>No job named <code>{}</code>.</p>", esc(&name)));
    };
    let d = job.detail(s.manager.dead_letters(&job, 20).await);
    let m = d.summary.clone().unwrap_or_default();
    let mut b = format!(
        "<p>state <b id=state>{}</b> · rows in <span id=rows-in>{}</span> · rows out <span id=rows-out>{}</span> · dead <span id=rows-dead>{}</span> · lag <span id=lag>{}</span>{}</p>",
        esc(&m.state), m.rows_in, m.rows_out, m.rows_dead, m.total_lag,
        if m.error.is_empty() { String::new() } else { format!(" · error: <code>{}</code>", esc(&m.error)) }
    );
    b.push_str("<h2>Partitions</h2><table id=partitions><tr><th>topic</th><th>partition</th><th>latest</th><th>committed</th><th>lag</th></tr>");
    for p in &d.partitions {
        let _ = write!(b, "<tr><td>{}</td><td class=num>{}</td><td class=num>{}</td><td class=num>{}</td><td class=num>{}</td></tr>", esc(&p.topic), p.partition, p.latest_offset, p.committed_offset, p.lag);
    }
    b.push_str("</table><h2>Recent batches</h2><table id=batches><tr><th>batch</th><th>ranges</th><th>in</th><th>out</th><th>dead</th><th>ms</th><th>executors</th></tr>");
    for bt in d.batches.iter().take(20) {
        let ranges: Vec<String> = bt.ranges.iter().map(|r| format!("{}/{} [{}, {})", r.topic, r.partition, r.from_offset, r.until_offset)).collect();
        let _ = write!(
            b,
            "<tr><td class=num>{}</td><td>{}</td><td class=num>{}</td><td class=num>{}</td><td class=num>{}</td><td class=num>{}</td><td>{}</td></tr>",
            bt.batch_id, esc(&ranges.join(", ")), bt.rows_in, bt.rows_out, bt.rows_dead, bt.duration_ms, esc(&bt.executors.join(", "))
        );
    }
    b.push_str("</table><h2>Dead letters</h2><table id=dead-letters><tr><th>topic</th><th>partition</th><th>offset</th><th>reason</th><th>value</th></tr>");
    for x in &d.dead_letters {
        let _ = write!(b, "<tr><td>{}</td><td class=num>{}</td><td class=num>{}</td><td>{}</td><td><code>{}</code></td></tr>", esc(&x.topic), x.partition, x.offset, esc(&x.reason), esc(&x.value));
    }
    b.push_str("</table>");
    page(&format!("job {}", m.name), &b)
}
