//! The routers: the REST API (under `/api/v1` and, identically, `/api`),
//! health endpoints and dashboard on the API port; `/metrics` on the other.

pub(crate) mod admin;
pub(crate) mod agents;
pub(crate) mod dashboard;
pub(crate) mod events;
pub(crate) mod health;
pub(crate) mod swarms;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use axum::Router;
use dash_core::{AgentAction, SwarmAction};
use serde::Deserialize;

use crate::error::ApiError;
use crate::state::AppState;

/// Largest accepted request body.
pub const MAX_BODY: usize = 1 << 20;

fn api_routes(state: &AppState) -> Router<AppState> {
    // Writes answer 503 `maintenance` while maintenance mode is on; the
    // check runs before the handler, after authentication.
    let writes = Router::new()
        .route("/swarms", post(swarms::create))
        .route("/swarms/{id}", patch(swarms::update).delete(swarms::delete))
        .route("/swarms/{id}/pause", swarms::act(SwarmAction::Pause))
        .route("/swarms/{id}/resume", swarms::act(SwarmAction::Resume))
        .route("/swarms/{id}/complete", swarms::act(SwarmAction::Complete))
        .route("/swarms/{id}/destroy", swarms::act(SwarmAction::Destroy))
        .route("/swarms/{id}/budget", patch(swarms::patch_budget))
        .route("/agents", post(agents::spawn))
        .route("/agents/{id}", delete(agents::delete))
        .route("/agents/{id}/kill", agents::act(AgentAction::Kill))
        .route("/agents/{id}/pause", agents::act(AgentAction::Pause))
        .route("/agents/{id}/resume", agents::act(AgentAction::Resume))
        .route("/agents/{id}/start", agents::act(AgentAction::Start))
        .route("/agents/{id}/progress", post(agents::progress))
        .route("/agents/{id}/complete", post(agents::complete))
        .route("/agents/{id}/fail", post(agents::fail))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::middleware::require_writable,
        ));
    let plain = Router::new()
        .route("/swarms", get(swarms::list))
        .route("/swarms/{id}", get(swarms::get))
        .route("/swarms/{id}/agents", get(swarms::agents))
        .route("/swarms/{id}/budget", get(swarms::budget))
        .route("/agents", get(agents::list))
        .route("/agents/{id}", get(agents::get))
        .route("/events", get(events::list))
        .route("/dashboard", get(dashboard::snapshot))
        .route("/admin/pool", get(admin::pool).put(admin::resize_pool))
        .route(
            "/admin/maintenance",
            get(admin::maintenance).put(admin::set_maintenance),
        )
        .merge(writes)
        // Nested routers answer 405 themselves: give them the JSON shape
        // too (before `layer`, which hides the method routers).
        .method_not_allowed_fallback(method_not_allowed);
    plain
        // The live streams are long-lived by design: `observe` gives every
        // other /api route the request deadline.
        .route("/events/stream", get(events::stream))
        .route("/dashboard/stream", get(dashboard::stream))
        .route("/openapi.json", get(openapi))
        .method_not_allowed_fallback(method_not_allowed)
}

/// The API port's router.
pub fn router(state: AppState) -> Router {
    let api = api_routes(&state);
    Router::new()
        .nest("/api/v1", api.clone())
        .nest("/api", api)
        .route("/livez", get(health::livez))
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/", get(crate::dashboard::page))
        .fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::middleware::observe,
        ))
        .with_state(state)
}

/// The metrics port's router.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/livez", get(health::livez))
        .fallback(fallback)
        .with_state(state)
}

async fn metrics(State(state): State<AppState>) -> Response {
    state.metrics.set_pool(state.db.status());
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}

/// This document.
#[utoipa::path(
    get, path = "/openapi.json", tag = "openapi", operation_id = "openapi",
    responses(
        (status = 200, description = "This document", content_type = "application/json"),
        crate::openapi::TokenErrors,
    ),
)]
pub(crate) async fn openapi(State(state): State<AppState>) -> Response {
    axum::Json(crate::openapi::document(state.settings.auth_reads)).into_response()
}

async fn fallback(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!("no route for {}", uri.path()))
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("{method} is not allowed on {}", uri.path()))
}

/// Query of every list endpoint.
#[derive(Debug, Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only this status: a swarm's (active, paused, completed, failed,
    /// destroyed) on /swarms, an agent's (pending, running, paused,
    /// completed, failed, killed) on agents.
    pub status: Option<String>,
    /// Only this swarm's agents; a filter of /agents alone (/swarms refuses it).
    pub swarm_id: Option<uuid::Uuid>,
    /// Page size; 50 when not given.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// The previous page's `next_cursor`, unchanged.
    #[param(max_length = 4096)]
    pub cursor: Option<String>,
    /// `created_at` (default, oldest first) or `-created_at` (newest first).
    #[param(pattern = "^-?created_at$")]
    pub sort: Option<String>,
}

impl ListQuery {
    pub fn order(&self) -> Result<dash_store::model::Order, ApiError> {
        match self.sort.as_deref() {
            None | Some("created_at") => Ok(dash_store::model::Order::Asc),
            Some("-created_at") => Ok(dash_store::model::Order::Desc),
            Some(other) => Err(ApiError::BadRequest {
                code: "invalid_query",
                message: format!("sort must be created_at or -created_at, not {other:?}"),
            }),
        }
    }

    pub fn limit(&self) -> Result<i64, ApiError> {
        Ok(dash_core::page::validate_limit(self.limit)?)
    }

    pub fn status<T: std::str::FromStr<Err = dash_core::ParseEnumError>>(
        &self,
    ) -> Result<Option<T>, ApiError> {
        self.status
            .as_deref()
            .map(|s| {
                s.parse::<T>().map_err(|e| ApiError::BadRequest {
                    code: "invalid_query",
                    message: e.to_string(),
                })
            })
            .transpose()
    }
}
