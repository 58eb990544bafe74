//! `/livez` (the process runs), `/health` (API and database answer),
//! `/ready` (connected to a writable primary with the schema migrated).

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use std::time::Instant;

use crate::state::AppState;

pub async fn livez() -> Response {
    Json(json!({ "status": "alive" })).into_response()
}

fn unavailable(body: serde_json::Value) -> Response {
    let mut r = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

/// One bounded round trip to the primary: its host, latency and whether the schema is current.
async fn check(state: &AppState) -> Result<(String, f64, bool), String> {
    let started = Instant::now();
    let mut conn = state.db.conn().await.map_err(|e| e.to_string())?;
    let current = dash_store::migrate::is_current(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    Ok((
        conn.host().to_string(),
        started.elapsed().as_secs_f64() * 1000.0,
        current,
    ))
}

pub async fn health(State(state): State<AppState>) -> Response {
    let pool = state.db.status();
    match check(&state).await {
        Ok((primary, ms, migrated)) => Json(json!({
            "status": "ok",
            "database": { "status": "up", "primary": primary, "latency_ms": ms, "schema_current": migrated },
            "pool": pool,
            "maintenance": *state.maintenance.read().unwrap_or_else(|p| p.into_inner()),
        }))
        .into_response(),
        Err(reason) => unavailable(json!({
            "status": "unavailable",
            "database": { "status": "down", "reason": reason },
            "pool": pool,
        })),
    }
}

pub async fn ready(State(state): State<AppState>) -> Response {
    match check(&state).await {
        Ok((primary, _, true)) => {
            Json(json!({ "status": "ready", "primary": primary })).into_response()
        }
        Ok((_, _, false)) => unavailable(json!({
            "status": "not_ready", "blocking": "migrations", "reason": "the schema is not migrated yet",
        })),
        Err(reason) => unavailable(json!({
            "status": "not_ready", "blocking": "database", "reason": reason,
        })),
    }
}
