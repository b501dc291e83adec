//! `ember-ingest load`: synthetic users straight to Kafka at a target rate,
//! optionally mixed with malformed messages to exercise dead-letter handling.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rdkafka::producer::{FutureRecord, Producer};
use serde::Serialize;

use crate::generator::Generator;
use crate::kafka::{self, Compression};

/// The kinds of malformed message `--bad-ratio` injects, in the round-robin
/// order they are used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BadKind {
    NotJson,
    NonObject,
    Empty,
    NonUtf8,
    MissingId,
}

pub const BAD_KINDS: [BadKind; 5] = [
    BadKind::NotJson,
    BadKind::NonObject,
    BadKind::Empty,
    BadKind::NonUtf8,
    BadKind::MissingId,
];

impl BadKind {
    pub fn name(self) -> &'static str {
        match self {
            BadKind::NotJson => "not_json",
            BadKind::NonObject => "non_object",
            BadKind::Empty => "empty",
            BadKind::NonUtf8 => "non_utf8",
            BadKind::MissingId => "missing_id",
        }
    }

    /// Classifies a message value the way a consumer of `users_created`
    /// would: `None` for a well-formed user.
    pub fn classify(value: &[u8]) -> Option<BadKind> {
        if value.is_empty() {
            return Some(BadKind::Empty);
        }
        let Ok(text) = std::str::from_utf8(value) else {
            return Some(BadKind::NonUtf8);
        };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(text) else {
            return Some(BadKind::NotJson);
        };
        let Some(obj) = v.as_object() else {
            return Some(BadKind::NonObject);
        };
        if obj.get("id").and_then(|i| i.as_str()).is_none() {
            return Some(BadKind::MissingId);
        }
        None
    }
}

#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub brokers: String,
    pub topic: String,
    pub count: u64,
    /// Messages per second; `None` means as fast as possible.
    pub rate: Option<f64>,
    pub bad_ratio: f64,
    pub seed: u64,
    pub compression: Compression,
    /// See [`kafka::producer`] for why this is off by default.
    pub idempotence: bool,
    pub progress: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub topic: String,
    pub sent: u64,
    pub delivered: u64,
    pub delivery_errors: u64,
    pub good: u64,
    pub bad: BTreeMap<&'static str, u64>,
    pub bad_total: u64,
    pub elapsed_secs: f64,
    pub achieved_rate: f64,
    /// The first few distinct delivery errors, for the operator.
    pub errors: Vec<String>,
}

/// Simple token bucket: `rate` tokens per second, bursts up to 50 ms' worth
/// (at least one token), so pacing stays smooth without a sleep per message.
struct TokenBucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(rate: f64) -> Self {
        let capacity = (rate * 0.05).max(1.0);
        TokenBucket {
            rate,
            capacity,
            tokens: capacity,
            last: Instant::now(),
        }
    }

    async fn take(&mut self) {
        loop {
            let now = Instant::now();
            let elapsed = now.duration_since(self.last).as_secs_f64();
            self.last = now;
            self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
            if self.tokens >= 1.0 {
                self.tokens -= 1.0;
                return;
            }
            let wait = (1.0 - self.tokens) / self.rate;
            tokio::time::sleep(Duration::from_secs_f64(wait.max(0.000_5))).await;
        }
    }
}

/// Malformed payload of the given kind, built from a good user.
fn bad_payload(kind: BadKind, good: &crate::record::User) -> Vec<u8> {
    match kind {
        BadKind::NotJson => format!("{{\"id\": \"{}\", first_name:", good.id).into_bytes(),
        BadKind::NonObject => b"[\"not\", \"an\", \"object\"]".to_vec(),
        BadKind::Empty => Vec::new(),
        // Latin-1 bytes inside otherwise plausible JSON.
        BadKind::NonUtf8 => {
            let mut v = b"{\"id\": \"".to_vec();
            v.extend_from_slice(&[0xff, 0xfe, 0xe9]);
            v.extend_from_slice(b"\"}");
            v
        }
        BadKind::MissingId => {
            let mut v = serde_json::to_value(good).unwrap_or_default();
            if let Some(o) = v.as_object_mut() {
                o.remove("id");
            }
            serde_json::to_vec(&v).unwrap_or_default()
        }
    }
}

/// How many of `count` messages are malformed for `ratio`.
pub fn bad_count(count: u64, ratio: f64) -> u64 {
    ((count as f64) * ratio).round().min(count as f64) as u64
}

pub async fn run(opts: LoadOptions) -> anyhow::Result<LoadReport> {
    // A long enough message timeout that a short broker blip is ridden out.
    let producer = kafka::producer(
        &opts.brokers,
        opts.compression,
        Duration::from_secs(60),
        opts.idempotence,
    )?;
    let mut generator = Generator::new(opts.seed);
    // A separate stream decides which messages are bad, so the good users are
    // the same for a seed whatever the ratio.
    let mut picker = StdRng::seed_from_u64(opts.seed ^ 0x9e37_79b9_7f4a_7c15);
    let bad_target = bad_count(opts.count, opts.bad_ratio);
    let mut bad_left = bad_target;

    let bar = if opts.progress && std::io::stderr().is_terminal() {
        let b = ProgressBar::with_draw_target(Some(opts.count), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} {per_sec} eta {eta}",
        ) {
            b.set_style(style);
        }
        b
    } else {
        ProgressBar::hidden()
    };

    let mut bucket = opts.rate.map(TokenBucket::new);
    let mut in_flight = FuturesUnordered::new();
    let mut report = LoadReport {
        topic: opts.topic.clone(),
        sent: 0,
        delivered: 0,
        delivery_errors: 0,
        good: 0,
        bad: BTreeMap::new(),
        bad_total: 0,
        elapsed_secs: 0.0,
        achieved_rate: 0.0,
        errors: Vec::new(),
    };
    let mut note_error = |report: &mut LoadReport, msg: String| {
        report.delivery_errors += 1;
        if report.errors.len() < 5 && !report.errors.contains(&msg) {
            report.errors.push(msg);
        }
    };

    let start = Instant::now();
    for i in 0..opts.count {
        if let Some(b) = bucket.as_mut() {
            b.take().await;
        }
        let user = generator.next_user();
        // Selection sampling: exactly `bad_target` bad messages, spread
        // uniformly at random over the run.
        let remaining = opts.count - i;
        let is_bad = bad_left > 0 && picker.random_range(0..remaining) < bad_left;
        let payload = if is_bad {
            let kind = BAD_KINDS[((bad_target - bad_left) % BAD_KINDS.len() as u64) as usize];
            bad_left -= 1;
            *report.bad.entry(kind.name()).or_default() += 1;
            report.bad_total += 1;
            bad_payload(kind, &user)
        } else {
            report.good += 1;
            serde_json::to_vec(&user)?
        };
        loop {
            let record = FutureRecord::to(&opts.topic)
                .key(user.id.as_str())
                .payload(&payload);
            match producer.send_result(record) {
                Ok(fut) => {
                    in_flight.push(fut);
                    report.sent += 1;
                    break;
                }
                Err((e, _)) if kafka::is_queue_full(&e) => {
                    // Local queue full: wait for deliveries to free room.
                    match in_flight.next().await {
                        Some(r) => settle(r, &mut report, &mut note_error),
                        None => tokio::time::sleep(Duration::from_millis(5)).await,
                    }
                }
                Err((e, _)) => {
                    note_error(&mut report, e.to_string());
                    break;
                }
            }
        }
        // Reap finished deliveries without blocking so memory stays bounded.
        while let Some(Some(r)) = futures::FutureExt::now_or_never(in_flight.next()) {
            settle(r, &mut report, &mut note_error);
        }
        bar.set_position(i + 1);
    }
    while let Some(r) = in_flight.next().await {
        settle(r, &mut report, &mut note_error);
    }
    let _ = producer.flush(Duration::from_secs(10));
    bar.finish_and_clear();
    report.elapsed_secs = start.elapsed().as_secs_f64();
    report.achieved_rate = if report.elapsed_secs > 0.0 {
        report.delivered as f64 / report.elapsed_secs
    } else {
        0.0
    };
    Ok(report)
}

fn settle(
    r: Result<
        rdkafka::producer::future_producer::OwnedDeliveryResult,
        futures::channel::oneshot::Canceled,
    >,
    report: &mut LoadReport,
    note_error: &mut impl FnMut(&mut LoadReport, String),
) {
    match r {
        Ok(Ok(_)) => report.delivered += 1,
        Ok(Err((e, _))) => note_error(report, e.to_string()),
        Err(_) => note_error(report, "delivery future cancelled".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_count_rounds() {
        assert_eq!(bad_count(1000, 0.01), 10);
        assert_eq!(bad_count(10, 0.0), 0);
        assert_eq!(bad_count(10, 1.0), 10);
        assert_eq!(bad_count(3, 0.5), 2);
    }

    #[test]
    fn bad_payloads_classify_as_their_kind() {
        let mut g = Generator::new(5);
        let user = g.next_user();
        for kind in BAD_KINDS {
            assert_eq!(
                BadKind::classify(&bad_payload(kind, &user)),
                Some(kind),
                "{kind:?}"
            );
        }
        let good = serde_json::to_vec(&user).expect("serialises");
        assert_eq!(BadKind::classify(&good), None);
    }

    #[tokio::test]
    async fn token_bucket_paces() {
        let mut b = TokenBucket::new(200.0);
        let start = Instant::now();
        for _ in 0..60 {
            b.take().await;
        }
        // 60 tokens at 200/s with a 10-token burst: at least ~0.25 s.
        assert!(
            start.elapsed() >= Duration::from_millis(200),
            "{:?}",
            start.elapsed()
        );
    }
}
