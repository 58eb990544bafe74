//! `/admin`: live pool size and read-only maintenance mode. Always needs a token.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;

use crate::auth::Caller;
use crate::error::{ApiError, JsonBody};
use crate::state::AppState;

fn require(caller: Option<Extension<Caller>>) -> Result<(), ApiError> {
    caller.map(|_| ()).ok_or_else(|| {
        ApiError::Unauthorized("admin calls need an Authorization: Bearer <token> header".into())
    })
}

pub async fn pool(
    State(st): State<AppState>,
    caller: Option<Extension<Caller>>,
) -> Result<Response, ApiError> {
    require(caller)?;
    Ok(
        Json(json!({ "pool": st.db.status(), "primary": st.db.primary().map(|h| h.to_string()) }))
            .into_response(),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolSize {
    #[serde(deserialize_with = "dash_core::integral::required")]
    pub size: i64,
}

pub async fn resize_pool(
    State(st): State<AppState>,
    caller: Option<Extension<Caller>>,
    body: JsonBody<PoolSize>,
) -> Result<Response, ApiError> {
    require(caller)?;
    let size = body.value.size;
    if !(1..=1000).contains(&size) {
        return Err(dash_core::ValidationError::new(
            "size",
            format!("must be from 1 to 1000 (got {size})"),
        )
        .into());
    }
    let size = size as usize;
    let before = st.db.status().max_size;
    st.db.resize(size);
    let after = st.db.status();
    st.metrics.set_pool(after);
    tracing::info!(before, after = size, "pool resized");
    Ok(Json(json!({ "previous_max_size": before, "pool": after })).into_response())
}

pub async fn maintenance(
    State(st): State<AppState>,
    caller: Option<Extension<Caller>>,
) -> Result<Response, ApiError> {
    require(caller)?;
    let m = st
        .maintenance
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    Ok(
        Json(json!({ "enabled": m.is_some(), "reason": m, "pool": st.db.status() }))
            .into_response(),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Maintenance {
    pub enabled: bool,
    pub reason: Option<String>,
}

pub async fn set_maintenance(
    State(st): State<AppState>,
    caller: Option<Extension<Caller>>,
    body: JsonBody<Maintenance>,
) -> Result<Response, ApiError> {
    require(caller)?;
    let m = body.value;
    let value = m
        .enabled
        .then(|| m.reason.unwrap_or_else(|| "maintenance".into()));
    *st.maintenance.write().unwrap_or_else(|p| p.into_inner()) = value.clone();
    tracing::warn!(enabled = m.enabled, reason = ?value, "maintenance mode changed");
    Ok(Json(json!({ "enabled": m.enabled, "reason": value })).into_response())
}
