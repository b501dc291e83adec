//! `ember-ingest serve`: the HTTP API the Airflow DAG calls.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use uuid::Uuid;

use crate::ingest::{IngestError, IngestRequest, Ingestor};
use crate::outbox;

pub fn router(ingestor: Arc<Ingestor>) -> Router {
    Router::new()
        .route("/ingest", post(ingest))
        .route("/batches/{id}", get(batch))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(ingestor)
}

fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(json!({ "error": msg.into() }))).into_response()
}

async fn ingest(
    State(app): State<Arc<Ingestor>>,
    body: Result<Json<IngestRequest>, JsonRejection>,
) -> Response {
    let Json(req) = match body {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    // Run detached: a client that disconnects must not cancel a batch
    // half-way (its pages would be staged but the batch left "fetching").
    let task = tokio::spawn(async move { app.ingest(req).await });
    match task.await {
        Ok(Ok(summary)) if summary.error.is_none() => {
            (StatusCode::OK, Json(summary)).into_response()
        }
        Ok(Ok(summary)) => (StatusCode::BAD_GATEWAY, Json(summary)).into_response(),
        Ok(Err(IngestError::Invalid(m))) => error(StatusCode::BAD_REQUEST, m),
        Ok(Err(e)) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn batch(State(app): State<Arc<Ingestor>>, Path(id): Path<String>) -> Response {
    let Ok(id) = Uuid::parse_str(&id) else {
        return error(StatusCode::BAD_REQUEST, format!("`{id}` is not a batch id"));
    };
    let client = match outbox::connect(&app.pg_url).await {
        Ok(c) => c,
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    };
    match outbox::batch_status(&client, &app.tables, id).await {
        Ok(Some(s)) => Json(s).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no batch {id}")),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

async fn healthz(State(app): State<Arc<Ingestor>>) -> Response {
    match outbox::connect(&app.pg_url).await {
        Ok(c) => match c.simple_query("SELECT 1").await {
            Ok(_) => Json(json!({"status": "ok"})).into_response(),
            Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        },
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

async fn metrics(State(app): State<Arc<Ingestor>>) -> Response {
    let backlog = match outbox::connect(&app.pg_url).await {
        Ok(c) => outbox::backlog(&c, &app.tables).await.ok(),
        Err(_) => None,
    };
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(backlog),
    )
        .into_response()
}
