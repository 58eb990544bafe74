//! `/agents`: spawn, list, get, delete, lifecycle, and the worker's calls.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, MethodRouter};
use axum::Extension;

use crate::json::Json;
use dash_core::AgentAction;
use dash_store::model::{Agent, NewAgent, Outcome, Page, ProgressReport};
use uuid::Uuid;

use super::swarms::{created, idempotency};
use super::ListQuery;
use crate::auth::Caller;
use crate::error::extract::{Path, Query};
use crate::error::{check_json_content_type, parse_json, ApiError, JsonBody, RawBody};
use crate::openapi::{
    ActionErrors, AgentId, ChangeErrors, Created, GetErrors, IdempotencyKey, ListErrors,
};
use crate::state::AppState;

#[utoipa::path(
    post, path = "/agents", tag = "agents", operation_id = "spawn_agent",
    summary = "Spawn an agent, alone or in a swarm (honours Idempotency-Key and client ids)",
    params(IdempotencyKey),
    request_body = NewAgent,
    responses(
        Created<Agent>,
        ChangeErrors,
        (status = 429, description = "Past DASH_SPAWN_RATE: retry after Retry-After seconds", body = crate::openapi::bodies::ErrorBody),
    ),
)]
pub async fn spawn(
    State(st): State<AppState>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    body: JsonBody<NewAgent>,
) -> Result<Response, ApiError> {
    if let Err(retry_after) = st.spawns.take() {
        return Err(ApiError::RateLimited {
            message: format!(
                "more than {} agent spawns a second (DASH_SPAWN_RATE) on this server; retry after {retry_after:?}",
                st.settings.spawn_rate
            ),
            retry_after,
        });
    }
    let idem = idempotency(&headers, "POST /agents", caller.as_deref(), &body.raw)?;
    Ok(created(st.db.spawn_agent(body.value, idem).await?))
}

#[utoipa::path(
    get, path = "/agents", tag = "agents", operation_id = "list_agents",
    summary = "List agents, oldest first unless sort=-created_at",
    params(ListQuery),
    responses((status = 200, description = "A page of agents", body = Page<Agent>), ListErrors),
)]
pub async fn list(
    State(st): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    list_page(&st, &q, q.swarm_id).await
}

/// A page of agents, of `swarm_id` when given, as `q` asks.
pub async fn list_page(
    st: &AppState,
    q: &ListQuery,
    swarm_id: Option<Uuid>,
) -> Result<Response, ApiError> {
    let (status, limit, order) = (q.status()?, q.limit()?, q.order()?);
    let page = st
        .db
        .list_agents(status, swarm_id, limit, q.cursor.as_deref(), order)
        .await?;
    Ok(Json(page).into_response())
}

#[utoipa::path(
    get, path = "/agents/{id}", tag = "agents", operation_id = "get_agent", summary = "Get an agent",
    params(AgentId),
    responses((status = 200, description = "The agent", body = Agent), GetErrors),
)]
pub async fn get(State(st): State<AppState>, Path(id): Path<Uuid>) -> Result<Response, ApiError> {
    Ok(Json(st.db.get_agent(id).await?).into_response())
}

#[utoipa::path(
    delete, path = "/agents/{id}", tag = "agents", operation_id = "delete_agent",
    summary = "Delete an agent that is not running",
    params(AgentId),
    responses((status = 204, description = "Deleted"), ActionErrors),
)]
pub async fn delete(
    State(st): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Response, ApiError> {
    st.db.delete_agent(id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

crate::openapi::action_doc!(
    "agents",
    AgentId,
    Agent,
    kill_agent,
    "/agents/{id}/kill",
    "Kill an agent"
);
crate::openapi::action_doc!(
    "agents",
    AgentId,
    Agent,
    pause_agent,
    "/agents/{id}/pause",
    "Pause a running agent"
);
crate::openapi::action_doc!(
    "agents",
    AgentId,
    Agent,
    resume_agent,
    "/agents/{id}/resume",
    "Resume a paused agent"
);
crate::openapi::action_doc!(
    "agents",
    AgentId,
    Agent,
    start_agent,
    "/agents/{id}/start",
    "Worker: start a pending agent"
);

/// The route of a lifecycle action: answers the agent as it is after it.
pub fn act(action: AgentAction) -> MethodRouter<AppState> {
    post(
        move |State(st): State<AppState>, Path(id): Path<Uuid>| async move {
            Ok::<_, ApiError>(Json(st.db.agent_action(id, action).await?).into_response())
        },
    )
}

#[utoipa::path(
    post, path = "/agents/{id}/progress", tag = "agents", operation_id = "report_progress",
    summary = "Worker: report progress and the cost since the last report",
    params(AgentId),
    request_body = ProgressReport,
    responses(
        (status = 200, description = "The agent, and whether its worker should go on: `directive` is `stop` (with a `reason`) once its swarm is paused or its budget spent (the cost reported is recorded all the same)", body = ProgressAnswer),
        ChangeErrors,
    ),
)]
pub async fn progress(
    State(st): State<AppState>,
    Path(id): Path<Uuid>,
    body: JsonBody<ProgressReport>,
) -> Result<Response, ApiError> {
    let agent = st.db.record_progress(id, body.value).await?;
    let reason = st.db.stop_reason(agent.swarm_id).await?;
    let directive = if reason.is_some() { "stop" } else { "continue" };
    Ok(Json(ProgressAnswer {
        agent,
        directive,
        reason,
    })
    .into_response())
}

/// The answer to a progress report: the agent, and the order for its worker.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ProgressAnswer {
    #[serde(flatten)]
    pub agent: Agent,
    /// `continue`, or `stop`: stop the runtime at the next step boundary.
    #[schema(value_type = String, pattern = "^(continue|stop)$")]
    pub directive: &'static str,
    /// Why to stop.
    pub reason: Option<String>,
}

/// The outcome body is optional: an empty body means "no cost, no result".
/// A body that is there must be JSON, and say so.
fn outcome(headers: &HeaderMap, raw: &[u8]) -> Result<Outcome, ApiError> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Ok(Outcome::default());
    }
    check_json_content_type(headers)?;
    parse_json(raw)
}

#[utoipa::path(
    post, path = "/agents/{id}/complete", tag = "agents", operation_id = "complete_agent",
    summary = "Worker: complete, with the final cost and result",
    params(AgentId),
    request_body(content = Option<Outcome>, description = "Optional: an empty body means no cost and no result"),
    responses((status = 200, description = "The agent", body = Agent), ChangeErrors),
)]
pub async fn complete(
    State(st): State<AppState>,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    Ok(Json(st.db.complete_agent(id, outcome(&headers, &body)?).await?).into_response())
}

#[utoipa::path(
    post, path = "/agents/{id}/fail", tag = "agents", operation_id = "fail_agent",
    summary = "Worker: fail; retried while retries remain",
    params(AgentId),
    request_body(content = Option<Outcome>, description = "Optional: an empty body means no cost and no result"),
    responses((status = 200, description = "The agent", body = Agent), ChangeErrors),
)]
pub async fn fail(
    State(st): State<AppState>,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    Ok(Json(st.db.fail_agent(id, outcome(&headers, &body)?).await?).into_response())
}
