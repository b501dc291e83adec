//! The randomuser.me-compatible HTTP source: `GET {url}?results=N`, with a
//! per-request timeout and retries with exponential backoff (plus jitter and
//! `Retry-After`) on transport errors, 429, 5xx and malformed bodies.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use reqwest::StatusCode;
use tracing::warn;

use crate::metrics::{Metrics, inc};
use crate::record::{ApiResponse, ApiUser};

#[derive(Debug, Clone)]
pub struct ApiOptions {
    pub url: String,
    pub timeout: Duration,
    /// Attempts per page, including the first.
    pub attempts: u32,
    pub backoff: Duration,
    pub backoff_max: Duration,
    /// Users requested per call (randomuser.me caps `results` at 5000).
    pub page_size: usize,
}

impl Default for ApiOptions {
    fn default() -> Self {
        ApiOptions {
            url: "https://randomuser.me/api/".to_string(),
            timeout: Duration::from_secs(10),
            attempts: 6,
            backoff: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            page_size: 500,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("API gave up after {attempts} attempts; last error: {last}")]
    Exhausted { attempts: u32, last: String },
    #[error("API refused the request with {status}: {excerpt}")]
    Refused { status: StatusCode, excerpt: String },
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// What one attempt produced.
enum Attempt {
    Ok(Vec<ApiUser>),
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    Fatal(FetchError),
}

#[derive(Clone)]
pub struct ApiSource {
    client: reqwest::Client,
    opts: ApiOptions,
    metrics: Arc<Metrics>,
}

/// At most `max` characters of `body`, on a char boundary, for logs.
pub fn excerpt(body: &str, max: usize) -> String {
    let mut s: String = body.chars().take(max).collect();
    if body.chars().nth(max).is_some() {
        s.push('…');
    }
    s
}

impl ApiSource {
    pub fn new(opts: ApiOptions, metrics: Arc<Metrics>) -> Result<Self, FetchError> {
        let client = reqwest::Client::builder()
            .timeout(opts.timeout)
            .connect_timeout(opts.timeout)
            .user_agent(concat!("ember-ingest/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| FetchError::Client(e.to_string()))?;
        Ok(ApiSource {
            client,
            opts,
            metrics,
        })
    }

    pub fn page_size(&self) -> usize {
        self.opts.page_size
    }

    async fn attempt(&self, n: usize) -> Attempt {
        inc(&self.metrics.api_requests, 1);
        let resp = match self
            .client
            .get(&self.opts.url)
            .query(&[("results", n)])
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => {
                inc(&self.metrics.api_transport_errors, 1);
                return Attempt::Retry {
                    reason: format!("request failed: {e}"),
                    after: None,
                };
            }
        };
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = match resp.text().await {
            Ok(b) => b,
            Err(e) => {
                inc(&self.metrics.api_transport_errors, 1);
                return Attempt::Retry {
                    reason: format!("reading the body failed: {e}"),
                    after: None,
                };
            }
        };
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            inc(&self.metrics.api_http_errors, 1);
            return Attempt::Retry {
                reason: format!("HTTP {status}: {}", excerpt(&body, 200)),
                after: retry_after,
            };
        }
        if !status.is_success() {
            inc(&self.metrics.api_http_errors, 1);
            return Attempt::Fatal(FetchError::Refused {
                status,
                excerpt: excerpt(&body, 200),
            });
        }
        match serde_json::from_str::<ApiResponse>(&body) {
            Ok(r) => Attempt::Ok(r.results),
            Err(e) => {
                inc(&self.metrics.api_malformed, 1);
                warn!(
                    url = %self.opts.url,
                    error = %e,
                    excerpt = %excerpt(&body, 300),
                    "malformed API response; retrying"
                );
                Attempt::Retry {
                    reason: format!("malformed response ({e}): {}", excerpt(&body, 200)),
                    after: None,
                }
            }
        }
    }

    fn backoff(&self, retry: u32, after: Option<Duration>) -> Duration {
        let exp = self
            .opts
            .backoff
            .saturating_mul(1u32 << retry.min(16))
            .min(self.opts.backoff_max);
        // Full jitter in [exp/2, exp] so many clients do not retry in step.
        let jittered = exp.mul_f64(rand::rng().random_range(0.5..=1.0));
        after
            .map(|a| a.min(self.opts.backoff_max).max(jittered))
            .unwrap_or(jittered)
    }

    /// One page of up to `n` users (the API may return fewer), retrying as
    /// configured.
    pub async fn fetch_page(&self, n: usize) -> Result<Vec<ApiUser>, FetchError> {
        let mut last = String::new();
        for attempt in 0..self.opts.attempts.max(1) {
            match self.attempt(n).await {
                Attempt::Ok(users) => return Ok(users),
                Attempt::Fatal(e) => return Err(e),
                Attempt::Retry { reason, after } => {
                    if attempt + 1 < self.opts.attempts {
                        let wait = self.backoff(attempt, after);
                        warn!(attempt = attempt + 1, wait_ms = wait.as_millis() as u64, %reason, "API attempt failed");
                        inc(&self.metrics.api_retries, 1);
                        tokio::time::sleep(wait).await;
                    }
                    last = reason;
                }
            }
        }
        Err(FetchError::Exhausted {
            attempts: self.opts.attempts,
            last,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_is_char_safe() {
        assert_eq!(excerpt("héllo", 2), "hé…");
        assert_eq!(excerpt("ab", 5), "ab");
    }

    #[test]
    fn backoff_grows_and_caps() {
        let src = ApiSource::new(
            ApiOptions {
                backoff: Duration::from_millis(100),
                backoff_max: Duration::from_millis(1000),
                ..ApiOptions::default()
            },
            Arc::new(Metrics::default()),
        )
        .expect("client");
        let b0 = src.backoff(0, None);
        assert!(b0 >= Duration::from_millis(50) && b0 <= Duration::from_millis(100));
        let b10 = src.backoff(10, None);
        assert!(b10 <= Duration::from_millis(1000));
        assert!(b10 >= Duration::from_millis(500));
        // Retry-After wins when longer, within the cap.
        assert_eq!(
            src.backoff(0, Some(Duration::from_millis(800))),
            Duration::from_millis(800)
        );
        assert_eq!(
            src.backoff(0, Some(Duration::from_secs(60))),
            Duration::from_millis(1000)
        );
    }
}
