//! `/swarms`: create, list, get, update, delete, lifecycle, agents, budget.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, MethodRouter};
use axum::Extension;

use crate::json::Json;
use dash_core::{SwarmAction, SwarmStatus};
use dash_store::model::{Agent, BudgetPatch, BudgetView, NewSwarm, Page, Swarm, SwarmPatch};
use uuid::Uuid;

use super::ListQuery;
use crate::auth::Caller;
use crate::error::extract::{Path, Query};
use crate::error::{ApiError, JsonBody};
use crate::openapi::{
    ActionErrors, ChangeErrors, Created, GetErrors, IdempotencyKey, ListErrors, OwnedListErrors,
    SwarmId, WriteErrors,
};
use crate::state::AppState;

/// Reads `Idempotency-Key` and scopes it to the route and caller.
pub fn idempotency(
    headers: &HeaderMap,
    route: &str,
    caller: Option<&Caller>,
    raw: &[u8],
) -> Result<Option<dash_store::IdemRequest>, ApiError> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = v
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 255)
        .ok_or_else(|| ApiError::BadRequest {
            code: "invalid_header",
            message: "Idempotency-Key must be 1 to 255 visible ASCII characters".into(),
        })?;
    let Some(caller) = caller else {
        // Creates always need a token, so this is not reached; without a
        // caller there is no one to scope the key to.
        return Ok(None);
    };
    Ok(Some(
        dash_store::IdemRequest::new(format!("{route} {}", caller.scope), key, raw)
            .with_legacy_scope(format!("{route} {}", caller.legacy_scope)),
    ))
}

/// The response of a create: the stored status and body, marked when replayed.
pub fn created(c: dash_store::model::Created) -> Response {
    let status = StatusCode::from_u16(c.status).unwrap_or(StatusCode::CREATED);
    let mut r = (status, Json(c.body)).into_response();
    if c.replayed {
        r.headers_mut().insert(
            "idempotent-replayed",
            axum::http::HeaderValue::from_static("true"),
        );
    }
    r
}

#[utoipa::path(
    post, path = "/swarms", tag = "swarms", operation_id = "create_swarm",
    summary = "Create a swarm (honours Idempotency-Key and client ids)",
    params(IdempotencyKey),
    request_body = NewSwarm,
    responses(
        Created<Swarm>,
        WriteErrors,
    ),
)]
pub async fn create(
    State(st): State<AppState>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    body: JsonBody<NewSwarm>,
) -> Result<Response, ApiError> {
    let idem = idempotency(&headers, "POST /swarms", caller.as_deref(), &body.raw)?;
    Ok(created(st.db.create_swarm(body.value, idem).await?))
}

#[utoipa::path(
    get, path = "/swarms", tag = "swarms", operation_id = "list_swarms",
    summary = "List swarms, oldest first unless sort=-created_at",
    params(ListQuery),
    responses((status = 200, description = "A page of swarms", body = Page<Swarm>), ListErrors),
)]
pub async fn list(
    State(st): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    if q.swarm_id.is_some() {
        return Err(ApiError::bad_request("swarm_id is not a filter of /swarms"));
    }
    let page = st
        .db
        .list_swarms(
            q.status::<SwarmStatus>()?,
            q.limit()?,
            q.cursor.as_deref(),
            q.order()?,
        )
        .await?;
    Ok(Json(page).into_response())
}

#[utoipa::path(
    get, path = "/swarms/{id}", tag = "swarms", operation_id = "get_swarm", summary = "Get a swarm",
    params(SwarmId),
    responses((status = 200, description = "The swarm", body = Swarm), GetErrors),
)]
pub async fn get(State(st): State<AppState>, Path(id): Path<Uuid>) -> Result<Response, ApiError> {
    Ok(Json(st.db.get_swarm(id).await?).into_response())
}

#[utoipa::path(
    patch, path = "/swarms/{id}", tag = "swarms", operation_id = "update_swarm",
    summary = "Change a swarm's name, task, strategy or config",
    params(SwarmId),
    request_body = SwarmPatch,
    responses((status = 200, description = "The swarm as changed", body = Swarm), ChangeErrors),
)]
pub async fn update(
    State(st): State<AppState>,
    Path(id): Path<Uuid>,
    body: JsonBody<SwarmPatch>,
) -> Result<Response, ApiError> {
    Ok(Json(st.db.update_swarm(id, body.value).await?).into_response())
}

#[utoipa::path(
    delete, path = "/swarms/{id}", tag = "swarms", operation_id = "delete_swarm",
    summary = "Delete a swarm with no live agents",
    params(SwarmId),
    responses((status = 204, description = "Deleted"), ActionErrors),
)]
pub async fn delete(
    State(st): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Response, ApiError> {
    st.db.delete_swarm(id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

crate::openapi::action_doc!(
    "swarms",
    SwarmId,
    Swarm,
    pause_swarm,
    "/swarms/{id}/pause",
    "Pause an active swarm"
);
crate::openapi::action_doc!(
    "swarms",
    SwarmId,
    Swarm,
    resume_swarm,
    "/swarms/{id}/resume",
    "Resume a paused swarm"
);
crate::openapi::action_doc!(
    "swarms",
    SwarmId,
    Swarm,
    complete_swarm,
    "/swarms/{id}/complete",
    "Mark a swarm completed"
);
crate::openapi::action_doc!(
    "swarms",
    SwarmId,
    Swarm,
    destroy_swarm,
    "/swarms/{id}/destroy",
    "Destroy a swarm and kill its live agents"
);

/// The route of a lifecycle action: answers the swarm as it is after it.
pub fn act(action: SwarmAction) -> MethodRouter<AppState> {
    post(
        move |State(st): State<AppState>, Path(id): Path<Uuid>| async move {
            Ok::<_, ApiError>(Json(st.db.swarm_action(id, action).await?).into_response())
        },
    )
}

#[utoipa::path(
    get, path = "/swarms/{id}/agents", tag = "swarms", operation_id = "list_swarm_agents",
    summary = "List a swarm's agents (the filters of /agents but swarm_id)",
    params(SwarmId, ListQuery),
    responses((status = 200, description = "A page of agents", body = Page<Agent>), OwnedListErrors),
)]
pub async fn agents(
    State(st): State<AppState>,
    Path(id): Path<Uuid>,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    st.db.get_swarm(id).await?;
    super::agents::list_page(&st, &q, Some(id)).await
}

#[utoipa::path(
    get, path = "/swarms/{id}/budget", tag = "swarms", operation_id = "get_budget",
    summary = "Get a swarm's budget",
    params(SwarmId),
    responses((status = 200, description = "The budget", body = BudgetView), GetErrors),
)]
pub async fn budget(
    State(st): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Response, ApiError> {
    Ok(Json(st.db.get_swarm(id).await?.budget).into_response())
}

#[utoipa::path(
    patch, path = "/swarms/{id}/budget", tag = "swarms", operation_id = "patch_budget",
    summary = "Change a swarm's budget; crossing a level records its event",
    params(SwarmId),
    request_body = BudgetPatch,
    responses((status = 200, description = "The budget as changed", body = BudgetView), ChangeErrors),
)]
pub async fn patch_budget(
    State(st): State<AppState>,
    Path(id): Path<Uuid>,
    body: JsonBody<BudgetPatch>,
) -> Result<Response, ApiError> {
    Ok(Json(st.db.patch_budget(id, body.value).await?.budget).into_response())
}
