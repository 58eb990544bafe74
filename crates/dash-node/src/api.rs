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

/// The node API's connections: probes (HAProxy, the kubelet, Prometheus,
/// the other agents, dashctl) are few and short; past the cap the oldest idle
/// connection makes room, and every path is served in the overflow lanes.
/// At most 64 + 2 x 64 (lanes) + 128 (newcomers being sorted) descriptors.
pub const LIMITS: dash_http::Limits = dash_http::Limits {
    max_connections: 64,
    header_read_timeout: std::time::Duration::from_secs(5),
    keepalive_timeout: std::time::Duration::from_secs(60),
    overflow_serves_all: true,
};

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
    use std::time::Duration;

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

    /// A crowd of clients that never finish a request head (three times the
    /// cap) and a crowd that connect and say nothing: a prober still gets
    /// `/health` answered, and the half-sent heads are cut off.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hostile_clients_cannot_lock_a_prober_out() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        use tokio::net::TcpStream;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let status = Arc::new(RwLock::new(Status {
            name: "n1".into(),
            role: "replica".into(),
            postgres_up: true,
            ..Status::default()
        }));
        let app = router(status, Arc::new(NodeMetrics::new()), None);
        let (_serving, stop) = tokio::sync::watch::channel(false);
        let server = tokio::spawn(dash_http::serve(listener, app, LIMITS, stop));

        let mut crowd = Vec::new();
        for i in 0..3 * LIMITS.max_connections {
            let mut c = TcpStream::connect(addr).await.unwrap();
            if i % 2 == 0 {
                c.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
                    .await
                    .unwrap();
            }
            crowd.push(c);
        }

        let mut probe = TcpStream::connect(addr).await.unwrap();
        probe
            .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        let read = probe.read_to_end(&mut answer);
        tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .expect("the prober was answered within 10 s")
            .unwrap();
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

        // A half-sent head is closed (past the header timeout, or shed).
        let mut buf = [0u8; 512];
        let half = &mut crowd[0];
        let closed = tokio::time::timeout(LIMITS.header_read_timeout * 3, async {
            loop {
                match half.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => continue,
                }
            }
        });
        assert!(closed.await.is_ok(), "a half-sent head was kept open");
        server.abort();
    }
}
