//! `POST /backup?type=full|diff|incr` on the node API: a pgBackRest backup
//! taken where this member's data directory is, for callers that have no
//! such access (a Kubernetes backup job). Only the key-holding primary
//! takes one (it copies its own files; pgBackRest needs the primary
//! local), one at a time; the answer says what was taken.

use std::sync::{Arc, RwLock};

use axum::extract::{Query, State};
use axum::http::StatusCode;
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
    busy: tokio::sync::Mutex<()>,
}

impl BackupService {
    pub fn new(repo: Repo, server: PgServer) -> BackupService {
        BackupService {
            repo,
            server,
            busy: tokio::sync::Mutex::new(()),
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
    Query(q): Query<BackupQuery>,
) -> Response {
    let Some(service) = service else {
        return refuse(
            StatusCode::NOT_FOUND,
            "no pgBackRest repository is configured on this member (--pgbackrest-config)".into(),
        );
    };
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
