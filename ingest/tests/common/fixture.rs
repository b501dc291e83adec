//! A local randomuser.me stand-in serving the recorded responses in
//! tests/fixtures, following a script of replies (errors first, then pages).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

pub const PAGE1: &str = include_str!("../fixtures/randomuser_page1.json");
pub const PAGE2: &str = include_str!("../fixtures/randomuser_page2.json");
pub const TRUNCATED: &str = include_str!("../fixtures/malformed_truncated.json");
pub const ERROR_BODY: &str = include_str!("../fixtures/error_body.json");

#[derive(Debug, Clone)]
pub enum Reply {
    /// A recorded 200 body.
    Body(&'static str),
    /// An error status with a body and an optional Retry-After (seconds).
    Status(u16, &'static str, Option<u64>),
}

#[derive(Default)]
struct Inner {
    script: VecDeque<Reply>,
    /// Replies once the script is used up, round-robin.
    then: Vec<Reply>,
    then_served: usize,
    asked: Vec<usize>,
}

#[derive(Clone, Default)]
pub struct Fixture(Arc<Mutex<Inner>>);

impl Fixture {
    pub fn asked(&self) -> Vec<usize> {
        self.0.lock().map(|i| i.asked.clone()).unwrap_or_default()
    }
}

async fn api(
    State(f): State<Fixture>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> impl IntoResponse {
    let reply = {
        let mut inner = f.0.lock().expect("fixture lock");
        let n = q.get("results").and_then(|r| r.parse().ok()).unwrap_or(1);
        inner.asked.push(n);
        match inner.script.pop_front() {
            Some(r) => r,
            None => {
                let i = inner.then_served % inner.then.len().max(1);
                inner.then_served += 1;
                inner.then.get(i).cloned().unwrap_or(Reply::Status(
                    500,
                    "no replies configured",
                    None,
                ))
            }
        }
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    match reply {
        Reply::Body(b) => (StatusCode::OK, headers, b),
        Reply::Status(code, b, retry) => {
            if let Some(s) = retry {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(s));
            }
            (
                StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                headers,
                b,
            )
        }
    }
}

/// Serves `script` then `then` round-robin on 127.0.0.1:0; returns the URL.
pub async fn serve(script: Vec<Reply>, then: Vec<Reply>) -> (String, Fixture) {
    let fixture = Fixture(Arc::new(Mutex::new(Inner {
        script: script.into(),
        then,
        ..Inner::default()
    })));
    let app = Router::new()
        .route("/api/", get(api))
        .with_state(fixture.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind fixture server");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/api/"), fixture)
}
