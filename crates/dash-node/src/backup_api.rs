//! `POST /backup?type=full|diff|incr` on the node API: a pgBackRest backup
//! taken where this member's data directory is, for callers that have no
//! such access (a Kubernetes backup job). Only the key-holding primary
//! takes one (it copies its own files; pgBackRest needs the primary
//! local), one at a time; the answer says what was taken. The caller must
//! present `Authorization: Bearer $DASH_NODE_TOKEN`: a backup reads every
//! byte of the database, so it is no anonymous call. An agent started
//! without that token refuses every request.

use std::sync::{Arc, RwLock};

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use dash_backrest::{BackupType, PgServer, Repo};
use serde::Deserialize;
use serde_json::json;

use crate::api::Status;

/// What a backup needs: the repository and this node as pgBackRest sees it.
pub struct BackupService {
    pub repo: Repo,
    pub server: PgServer,
    /// `DASH_NODE_TOKEN`; `None` refuses every request.
    token: Option<String>,
    busy: tokio::sync::Mutex<()>,
}

impl BackupService {
    pub fn new(repo: Repo, server: PgServer, token: Option<String>) -> BackupService {
        BackupService {
            repo,
            server,
            token: token.filter(|t| !t.is_empty()),
            busy: tokio::sync::Mutex::new(()),
        }
    }

    /// Why `headers` may not ask for a backup, when they may not.
    fn unauthorized(&self, headers: &HeaderMap) -> Option<Response> {
        let Some(token) = &self.token else {
            return Some(refuse(
                StatusCode::FORBIDDEN,
                "this agent was started without DASH_NODE_TOKEN, so it takes no backup on request"
                    .into(),
            ));
        };
        let value = headers.get(header::AUTHORIZATION);
        let presented = value
            .and_then(|v| v.to_str().ok())
            .and_then(dash_core::bearer::presented);
        match presented {
            Some(p) if dash_core::bearer::same(token.as_bytes(), p.as_bytes()) => None,
            Some(_) => Some(refuse(
                StatusCode::UNAUTHORIZED,
                "the bearer token is not this agent's DASH_NODE_TOKEN".into(),
            )),
            None => Some(refuse(
                StatusCode::UNAUTHORIZED,
                "this call needs an Authorization: Bearer <DASH_NODE_TOKEN> header".into(),
            )),
        }
    }
}

/// The route's state: the agent's status, and the service when configured.
pub type BackupState = (Arc<RwLock<Status>>, Option<Arc<BackupService>>);

#[derive(Debug, Deserialize)]
pub struct BackupQuery {
    #[serde(rename = "type", default)]
    ty: Option<String>,
}

fn refuse(code: StatusCode, why: String) -> Response {
    (code, Json(json!({ "error": why }))).into_response()
}

pub async fn backup(
    State((status, service)): State<BackupState>,
    headers: HeaderMap,
    Query(q): Query<BackupQuery>,
) -> Response {
    let Some(service) = service else {
        return refuse(
            StatusCode::NOT_FOUND,
            "no pgBackRest repository is configured on this member (--pgbackrest-config)".into(),
        );
    };
    if let Some(refused) = service.unauthorized(&headers) {
        return refused;
    }
    let ty = match q.ty.as_deref().unwrap_or("diff").parse::<BackupType>() {
        Ok(t) => t,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let st = status.read().map(|g| g.clone()).unwrap_or_default();
    if !(st.role == "primary" && st.holds_key && st.postgres_up) {
        return refuse(
            StatusCode::CONFLICT,
            format!(
                "{} is not the primary (role {}); ask the leader's agent{}",
                st.name,
                st.role,
                st.leader.map(|l| format!(" ({l})")).unwrap_or_default()
            ),
        );
    }
    let Ok(_running) = service.busy.try_lock() else {
        return refuse(
            StatusCode::CONFLICT,
            "a backup is already running on this member".into(),
        );
    };
    let s = service.clone();
    let done = tokio::task::spawn_blocking(move || {
        let done = s.repo.backup(ty, &s.server, None)?;
        let window = s.repo.info().ok().and_then(|c| c.window);
        Ok::<_, dash_backrest::BackrestError>((done, window))
    })
    .await;
    match done {
        Ok(Ok((d, window))) => Json(json!({
            "label": d.label,
            "type": d.ty.to_string(),
            "seconds": d.duration.as_secs_f64(),
            "size": d.info.size,
            "repo_size": d.info.repo_size,
            "window": window,
        }))
        .into_response(),
        Ok(Err(e)) => refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            dash_core::error_chain(&e),
        ),
        Err(e) => refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("backup task: {e}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    /// The node API of a replica whose agent has `token`, with a repository
    /// config that exists (nothing here reaches pgBackRest).
    fn node_api(token: Option<&str>) -> (axum::Router, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("pgbackrest.conf");
        std::fs::write(&conf, "[global]\n").unwrap();
        let repo = Repo::open(&conf, "dash").unwrap();
        let server = PgServer {
            data_dir: dir.path().join("data"),
            port: 5432,
            socket_dir: dir.path().into(),
            user: "dash_user".into(),
        };
        let status = Arc::new(RwLock::new(Status {
            name: "n1".into(),
            role: "replica".into(),
            ..Status::default()
        }));
        let service = BackupService::new(repo, server, token.map(String::from));
        let metrics = Arc::new(crate::metrics::NodeMetrics::new());
        let router = crate::api::router(status, metrics, Some(Arc::new(service)));
        (router, dir)
    }

    async fn post(app: &axum::Router, authorization: Option<&str>) -> (StatusCode, String) {
        let mut req = Request::post("/backup?type=full");
        if let Some(a) = authorization {
            req = req.header(header::AUTHORIZATION, a);
        }
        let resp = app
            .clone()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn an_agent_without_a_token_takes_no_backup_on_request() {
        let (app, _dir) = node_api(None);
        for auth in [None, Some("Bearer anything"), Some("Bearer ")] {
            let (status, body) = post(&app, auth).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{auth:?}: {body}");
            assert!(body.contains("DASH_NODE_TOKEN"), "{body}");
        }
        let (app, _dir) = node_api(Some(""));
        assert_eq!(post(&app, Some("Bearer ")).await.0, StatusCode::FORBIDDEN);
    }

    #[tokio::test]
    async fn only_the_agents_token_gets_past_the_door() {
        let (app, _dir) = node_api(Some("t0k-3n"));
        for auth in [
            None,
            Some("Bearer wrong"),
            Some("Bearer t0k-3"),
            Some("Bearer t0k-3n-"),
            Some("Basic t0k-3n"),
            Some("t0k-3n"),
        ] {
            let (status, body) = post(&app, auth).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{auth:?}: {body}");
        }
        // The right token reaches the next rule: only the primary backs up.
        for auth in ["Bearer t0k-3n", "bearer   t0k-3n "] {
            let (status, body) = post(&app, Some(auth)).await;
            assert_eq!(status, StatusCode::CONFLICT, "{auth}: {body}");
            assert!(body.contains("is not the primary"), "{body}");
        }
    }
}
