//! `/agents`: spawn, list, get, delete, lifecycle, and the worker's calls.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use dash_core::AgentAction;
use dash_store::model::{NewAgent, Outcome, ProgressReport};
use uuid::Uuid;

use super::swarms::{created, idempotency};
use super::ListQuery;
use crate::auth::Caller;
use crate::error::extract::{Path, Query};
use crate::error::{parse_json, ApiError, JsonBody, RawBody};
use crate::state::AppState;

pub async fn spawn(
    State(st): State<AppState>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    body: JsonBody<NewAgent>,
) -> Result<Response, ApiError> {
    let idem = idempotency(&headers, "POST /agents", caller.as_deref(), &body.raw)?;
    Ok(created(st.db.spawn_agent(body.value, idem).await?))
}

pub async fn list(
    State(st): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let page = st
        .db
        .list_agents(
            q.status()?,
            q.swarm_id,
            q.limit()?,
            q.cursor.as_deref(),
            q.order()?,
        )
        .await?;
    Ok(Json(page).into_response())
}

pub async fn get(State(st): State<AppState>, Path(id): Path<Uuid>) -> Result<Response, ApiError> {
    Ok(Json(st.db.get_agent(id).await?).into_response())
}

pub async fn delete(
    State(st): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Response, ApiError> {
    st.db.delete_agent(id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn act(st: AppState, id: Uuid, action: AgentAction) -> Result<Response, ApiError> {
    Ok(Json(st.db.agent_action(id, action).await?).into_response())
}

pub async fn kill(State(st): State<AppState>, Path(id): Path<Uuid>) -> Result<Response, ApiError> {
    act(st, id, AgentAction::Kill).await
}

pub async fn pause(State(st): State<AppState>, Path(id): Path<Uuid>) -> Result<Response, ApiError> {
    act(st, id, AgentAction::Pause).await
}

pub async fn resume(
    State(st): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Response, ApiError> {
    act(st, id, AgentAction::Resume).await
}

pub async fn start(State(st): State<AppState>, Path(id): Path<Uuid>) -> Result<Response, ApiError> {
    act(st, id, AgentAction::Start).await
}

pub async fn progress(
    State(st): State<AppState>,
    Path(id): Path<Uuid>,
    body: JsonBody<ProgressReport>,
) -> Result<Response, ApiError> {
    Ok(Json(st.db.record_progress(id, body.value).await?).into_response())
}

/// The outcome body is optional: an empty body means "no cost, no result".
fn outcome(raw: &[u8]) -> Result<Outcome, ApiError> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Ok(Outcome::default());
    }
    parse_json(raw)
}

pub async fn complete(
    State(st): State<AppState>,
    Path(id): Path<Uuid>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    Ok(Json(st.db.complete_agent(id, outcome(&body)?).await?).into_response())
}

pub async fn fail(
    State(st): State<AppState>,
    Path(id): Path<Uuid>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    Ok(Json(st.db.fail_agent(id, outcome(&body)?).await?).into_response())
}
