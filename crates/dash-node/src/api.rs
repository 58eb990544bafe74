//! The node API (default port 8008), what load balancers and Patroni users
//! already probe: `GET /primary` is 200 only on the key-holding writable
//! primary, `GET /replica` 200 only on a streaming replica, `/health` 200
//! while PostgreSQL answers, `/status` the agent's view as JSON, `/metrics`.
//! Read-only; nothing here changes the node.

use std::sync::{Arc, RwLock};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::metrics::NodeMetrics;

/// What the agent knows, as `/status` shows it (and as its clients read
/// it back: `dashctl db status`, the chaos drills).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Status {
    pub name: String,
    /// `primary`, `replica`, `stopped`, `fenced`, `starting`.
    pub role: String,
    /// PostgreSQL answered the last look.
    pub postgres_up: bool,
    pub timeline: Option<u32>,
    pub lsn: Option<String>,
    pub streaming: bool,
    pub lag_bytes: Option<u64>,
    /// The leader key's holder, as last read from etcd.
    pub leader: Option<String>,
    /// This member holds the key under a lease that is certainly valid.
    pub holds_key: bool,
    pub lease_remaining_ms: Option<u64>,
    pub sync_standbys: Vec<String>,
    pub etcd_up: bool,
    /// The last decision and why.
    pub last_action: String,
}

#[derive(Clone)]
struct ApiState {
    status: Arc<RwLock<Status>>,
    metrics: Arc<NodeMetrics>,
}

pub fn router(status: Arc<RwLock<Status>>, metrics: Arc<NodeMetrics>) -> Router {
    Router::new()
        .route("/primary", get(primary))
        .route("/replica", get(replica))
        .route("/health", get(health))
        .route("/status", get(status_json))
        .route("/metrics", get(metrics_text))
        .with_state(ApiState { status, metrics })
}

fn snapshot(s: &ApiState) -> Status {
    s.status.read().map(|g| g.clone()).unwrap_or_default()
}

fn answer(ok: bool, status: Status) -> Response {
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(status)).into_response()
}

async fn primary(State(s): State<ApiState>) -> Response {
    let st = snapshot(&s);
    answer(st.role == "primary" && st.holds_key && st.postgres_up, st)
}

async fn replica(State(s): State<ApiState>) -> Response {
    let st = snapshot(&s);
    answer(st.role == "replica" && st.streaming && st.postgres_up, st)
}

async fn health(State(s): State<ApiState>) -> Response {
    let st = snapshot(&s);
    answer(st.postgres_up, st)
}

async fn status_json(State(s): State<ApiState>) -> Response {
    Json(snapshot(&s)).into_response()
}

async fn metrics_text(State(s): State<ApiState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
        .into_response()
}
