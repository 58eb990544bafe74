//! The node API (default port 8008), what load balancers and Patroni users
//! already probe: `GET /primary` is 200 only on the key-holding writable
//! primary, `GET /replica` 200 only on a streaming replica, `/health` 200
//! while PostgreSQL answers, `/status` the agent's view as JSON, `/metrics`.
//! Read-only; nothing here changes the node. `POST /backup` (with a
//! pgBackRest repository) copies the primary into it (`backup_api.rs`).

use std::sync::{Arc, RwLock};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
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

pub fn router(
    status: Arc<RwLock<Status>>,
    metrics: Arc<NodeMetrics>,
    backups: Option<Arc<crate::backup_api::BackupService>>,
) -> Router {
    let backup = Router::new()
        .route("/backup", post(crate::backup_api::backup))
        .with_state((status.clone(), backups));
    Router::new()
        .route("/primary", get(primary))
        .route("/replica", get(replica))
        .route("/health", get(health))
        .route("/status", get(status_json))
        .route("/metrics", get(metrics_text))
        .with_state(ApiState { status, metrics })
        .merge(backup)
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

impl Status {
    /// Is the cluster highly available, by what its members' `/status`
    /// say? `Ok((leader, standby))` indexes into `all`: the member holding
    /// the key as a writable primary, and a replica streaming from it (in
    /// synchronous mode, one the leader records as its synchronous standby).
    /// Otherwise why not, in words.
    pub fn ha_pair(all: &[Status], synchronous: bool) -> Result<(usize, usize), String> {
        let Some(l) = all.iter().position(|s| s.role == "primary" && s.holds_key) else {
            return Err("no member holds the leader key as a writable primary yet".into());
        };
        let leader = &all[l];
        let follows = |s: &Status| {
            s.role == "replica" && s.streaming && s.leader.as_deref() == Some(leader.name.as_str())
        };
        let standby = all
            .iter()
            .position(|s| follows(s) && (!synchronous || leader.sync_standbys.contains(&s.name)));
        match standby {
            Some(s) => Ok((l, s)),
            None if all.iter().any(follows) => Err(format!(
                "{} leads; a replica streams, not yet its recorded synchronous standby",
                leader.name
            )),
            None => Err(format!(
                "{} leads; no replica streams from it yet",
                leader.name
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, role: &str, leader: &str) -> Status {
        Status {
            name: name.into(),
            role: role.into(),
            holds_key: role == "primary",
            streaming: role == "replica",
            leader: Some(leader.into()),
            ..Status::default()
        }
    }

    #[test]
    fn ha_needs_a_key_holding_primary_and_a_recorded_streaming_standby() {
        let mut all = vec![member("a", "replica", "b"), member("b", "primary", "b")];
        let e = Status::ha_pair(&all, true).unwrap_err();
        assert!(
            e.contains("not yet its recorded synchronous standby"),
            "{e}"
        );
        assert_eq!(Status::ha_pair(&all, false), Ok((1, 0)));
        all[1].sync_standbys = vec!["a".into()];
        assert_eq!(Status::ha_pair(&all, true), Ok((1, 0)));
        all[0].leader = Some("c".into());
        assert!(
            Status::ha_pair(&all, true).is_err(),
            "it follows someone else"
        );
        all[1].holds_key = false;
        let e = Status::ha_pair(&all, true).unwrap_err();
        assert!(e.contains("no member holds the leader key"), "{e}");
    }
}
