//! `/livez` (the process runs), `/health` (API and database answer),
//! `/ready` (connected to a writable primary with the schema migrated).
//!
//! Both reflect whether the database answers, not whether the pool has a
//! free connection: a saturated pool is load, and a readiness probe that
//! failed under load would take the busiest pods out of service. With
//! `DASH_AUTH_READS`, anonymous callers get the verdict without the
//! database's address or the failure's text (which names hosts and ports).

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use dash_store::StoreError;
use serde_json::{json, Value};
use std::time::Instant;

use crate::openapi::bodies::{Alive, Healthy, NotReady, Ready, Unhealthy};
use crate::state::AppState;

#[utoipa::path(
    get, path = "/livez", tag = "health", summary = "The process runs (Kubernetes liveness)",
    responses((status = 200, description = "Alive", body = Alive)),
)]
pub async fn livez() -> Response {
    Json(json!({ "status": "alive" })).into_response()
}

fn unavailable(body: Value) -> Response {
    let mut r = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

/// What one check found out about the database.
struct Probe {
    primary: String,
    latency_ms: Option<f64>,
    schema_current: bool,
    /// Every pool connection was busy: the answer comes from the pool's
    /// record of its last contact and the background probe (`pg_up`, only
    /// ever 1 after migrations) instead of a round trip.
    saturated: bool,
}

/// The answer from the pool's record, when every connection is busy and
/// the last contact with the database worked.
fn from_record(state: &AppState) -> Option<Probe> {
    let healthy = state.db.reachable() && state.metrics.pg_up.get() == 1;
    healthy.then(|| Probe {
        primary: state
            .db
            .primary()
            .map(|h| h.to_string())
            .unwrap_or_default(),
        latency_ms: None,
        schema_current: true,
        saturated: true,
    })
}

/// One bounded round trip to the primary, or the pool's record when every
/// connection is busy (without waiting for one).
async fn check(state: &AppState) -> Result<Probe, String> {
    let pool = state.db.status();
    if pool.idle == 0 && pool.size >= pool.max_size {
        if let Some(p) = from_record(state) {
            return Ok(p);
        }
    }
    let started = Instant::now();
    let mut conn = match state.db.conn().await {
        Ok(c) => c,
        Err(StoreError::PoolExhausted(_)) => {
            return from_record(state).ok_or("pool exhausted".into())
        }
        Err(e) => return Err(e.to_string()),
    };
    let current = dash_store::migrate::is_current(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Probe {
        primary: conn.host().to_string(),
        latency_ms: Some(started.elapsed().as_secs_f64() * 1000.0),
        schema_current: current,
        saturated: false,
    })
}

/// Whether this caller may see addresses and failure text.
fn detailed(state: &AppState, headers: &HeaderMap) -> bool {
    !state.settings.auth_reads || crate::auth::authenticate(&state.settings, headers).is_some()
}

#[utoipa::path(
    get, path = "/health", tag = "health", summary = "The API and its database are healthy",
    responses(
        (status = 200, description = "Healthy", body = Healthy),
        (status = 503, description = "The database is unreachable; Retry-After", body = Unhealthy),
    ),
)]
pub async fn health(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let detail = detailed(&state, &headers);
    let pool = state.db.status();
    match check(&state).await {
        Ok(p) => {
            let mut db = json!({ "status": "up", "schema_current": p.schema_current,
                                 "latency_ms": p.latency_ms, "pool_saturated": p.saturated });
            let mut body = json!({ "status": "ok", "database": db.take(), "pool": pool });
            let maintenance = state.maintenance.read().unwrap_or_else(|e| e.into_inner());
            if detail {
                body["database"]["primary"] = json!(p.primary);
                body["maintenance"] = json!(*maintenance);
            } else {
                body["maintenance"] = json!(maintenance.is_some());
            }
            Json(body).into_response()
        }
        Err(reason) => {
            let mut body =
                json!({ "status": "unavailable", "database": { "status": "down" }, "pool": pool });
            if detail {
                body["database"]["reason"] = json!(reason);
            }
            unavailable(body)
        }
    }
}

#[utoipa::path(
    get, path = "/ready", tag = "health",
    summary = "Connected to a writable primary with the schema migrated (Kubernetes readiness)",
    responses(
        (status = 200, description = "Ready", body = Ready),
        (status = 503, description = "Not ready, naming what blocks it; Retry-After", body = NotReady),
    ),
)]
pub async fn ready(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let detail = detailed(&state, &headers);
    match check(&state).await {
        Ok(p) if p.schema_current => {
            let mut body = json!({ "status": "ready", "pool_saturated": p.saturated });
            if detail {
                body["primary"] = json!(p.primary);
            }
            Json(body).into_response()
        }
        Ok(_) => unavailable(json!({
            "status": "not_ready", "blocking": "migrations", "reason": "the schema is not migrated yet",
        })),
        Err(reason) => {
            let mut body = json!({ "status": "not_ready", "blocking": "database" });
            if detail {
                body["reason"] = json!(reason);
            }
            unavailable(body)
        }
    }
}
