//! `/admin`: the pool size and read-only maintenance mode, cluster-wide.
//! Always needs a token. A change is applied on this process at once, then
//! written to the settings row that every API process follows within a
//! second or so; when the database is out of reach it still applies here
//! (the answer says `cluster_wide: false`) and is written once it answers.

use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use dash_store::repo::control::{ClusterSettings, SettingChange};
use dash_store::StoreError;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::error::{ApiError, JsonBody};
use crate::openapi::bodies::{
    AdminMaintenance, AdminMaintenanceChange, AdminPool, AdminPoolChange,
};
use crate::openapi::{Actor, AdminWriteErrors, TokenErrors};
use crate::state::AppState;

/// Names the person or tool behind an admin call in the change log.
pub const ACTOR_HEADER: &str = "x-dash-actor";
const MAX_ACTOR_CHARS: usize = 100;
/// The longest maintenance reason accepted.
pub const MAX_REASON_CHARS: usize = 500;
/// How long an admin call waits for the database before answering that the
/// change applies on this process only.
const STORE_DEADLINE: Duration = Duration::from_secs(5);

fn require(caller: Option<Extension<Caller>>) -> Result<Caller, ApiError> {
    caller.map(|Extension(c)| c).ok_or_else(|| {
        ApiError::Unauthorized("admin calls need an Authorization: Bearer <token> header".into())
    })
}

/// Who made a change, for the log: the `X-Dash-Actor` header (cleaned and
/// cut), a short keyed fingerprint of the token (never the token), and
/// the process that took the call.
fn changed_by(st: &AppState, caller: &Caller, headers: &HeaderMap) -> String {
    let actor: String = headers
        .get(ACTOR_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_ACTOR_CHARS)
        .collect();
    let actor = match actor.trim() {
        "" => "an API caller",
        a => a,
    };
    let token = caller.scope.get(..8).unwrap_or("?");
    format!(
        "{actor} (token {token}, via {} pid {})",
        st.cluster.host, st.cluster.pid
    )
}

fn this_instance(st: &AppState) -> Value {
    json!({ "id": st.cluster.id, "host": st.cluster.host, "pid": st.cluster.pid })
}

fn cluster_json(s: &ClusterSettings) -> Value {
    json!({
        "enabled": s.maintenance.is_some(),
        "reason": s.maintenance,
        "pool_size": s.pool_size,
        "version": s.version,
        "changed_at": s.changed_at,
        "changed_by": s.changed_by,
    })
}

/// The cluster as the database knows it: the settings row, every instance
/// seen lately with what it applied, and whether every live one applied it.
async fn cluster_view(st: &AppState) -> Value {
    let read =
        async { Ok::<_, StoreError>((st.db.cluster_settings().await?, st.db.instances().await?)) };
    let (row, instances) = match tokio::time::timeout(STORE_DEADLINE, read).await {
        Ok(Ok(found)) => found,
        Ok(Err(e)) => {
            tracing::warn!(error = %dash_core::error_chain(&e), "cannot read the cluster settings");
            return json!({ "cluster": null, "instances": [], "all_applied": null, "cluster_wide": false });
        }
        Err(_) => {
            tracing::warn!("reading the cluster settings timed out");
            return json!({ "cluster": null, "instances": [], "all_applied": null, "cluster_wide": false });
        }
    };
    let all_applied = instances.iter().filter(|i| i.live).all(|i| i.follows(&row));
    let listed: Vec<Value> = instances
        .iter()
        .map(|i| {
            json!({
                "id": i.id, "host": i.host, "pid": i.pid, "started_at": i.started_at,
                "last_seen": i.last_seen, "seen_secs_ago": i.seen_secs_ago, "live": i.live,
                "maintenance": i.maintenance.is_some(), "reason": i.maintenance,
                "pool_size": i.pool_size, "settings_version": i.settings_version,
                "applied": i.follows(&row), "this": i.id == st.cluster.id,
            })
        })
        .collect();
    json!({
        "cluster": cluster_json(&row),
        "instances": listed,
        "all_applied": all_applied,
        "cluster_wide": st.cluster.pending().is_empty(),
    })
}

/// Writes `change` (already applied here as change `seq`) to the settings
/// row; the answer's `cluster_wide`, `cluster` and, when it could not be
/// written, `note`.
async fn store(st: &AppState, seq: u64, change: &SettingChange, by: &str) -> Value {
    let written =
        tokio::time::timeout(STORE_DEADLINE, st.db.change_setting(change, by, None)).await;
    match written {
        Ok(Ok(Some(row))) => {
            st.cluster.settle(seq, Some(row.clone()));
            json!({ "cluster_wide": true, "cluster": cluster_json(&row) })
        }
        other => {
            let cause = match other {
                Ok(Err(e)) => dash_core::error_chain(&e),
                _ => format!("no answer within {STORE_DEADLINE:?}"),
            };
            tracing::warn!(%cause, ?change, "the cluster setting could not be written; applied on this process only");
            json!({ "cluster_wide": false, "cluster": null,
                "note": "applied on this API process only: the database is out of reach; \
                         the change is written for every process once it answers" })
        }
    }
}

/// Adds `extra`'s fields to `base`.
fn merged(mut base: Value, extra: Value) -> Value {
    if let (Some(b), Value::Object(e)) = (base.as_object_mut(), extra) {
        b.extend(e);
    }
    base
}

#[utoipa::path(
    get, path = "/admin/pool", tag = "admin", operation_id = "get_pool",
    summary = "This process's pool, the cluster-wide setting and every API instance with the size it applied",
    responses((status = 200, description = "The pools", body = AdminPool), TokenErrors),
)]
pub async fn pool(
    State(st): State<AppState>,
    caller: Option<Extension<Caller>>,
) -> Result<Response, ApiError> {
    require(caller)?;
    let here = json!({ "pool": st.db.status(), "primary": st.db.primary().map(|h| h.to_string()),
                       "instance": this_instance(&st) });
    Ok(Json(merged(here, cluster_view(&st).await)).into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PoolSize {
    #[serde(deserialize_with = "dash_core::integral::required")]
    #[schema(minimum = 1, maximum = 1000)]
    pub size: i64,
}

#[utoipa::path(
    put, path = "/admin/pool", tag = "admin", operation_id = "resize_pool",
    summary = "Resize the pool on every API process",
    description = "Applied here at once, kept in the database, followed by every process within a second or so.",
    params(Actor),
    request_body = PoolSize,
    responses((status = 200, description = "The change", body = AdminPoolChange), AdminWriteErrors),
)]
pub async fn resize_pool(
    State(st): State<AppState>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    body: JsonBody<PoolSize>,
) -> Result<Response, ApiError> {
    let caller = require(caller)?;
    let size = body.value.size;
    if !(1..=1000).contains(&size) {
        return Err(dash_core::ValidationError::new(
            "size",
            format!("must be from 1 to 1000 (got {size})"),
        )
        .into());
    }
    let by = changed_by(&st, &caller, &headers);
    let before = st.db.status().max_size;
    let change = SettingChange::PoolSize(size as i32);
    let seq = st.cluster.decide(change.clone(), by.clone(), || {
        st.set_local_pool_size(size as usize)
    });
    tracing::info!(before, after = size, %by, "pool resized");
    let here = json!({ "previous_max_size": before, "pool": st.db.status(),
                       "instance": this_instance(&st) });
    Ok(Json(merged(here, store(&st, seq, &change, &by).await)).into_response())
}

#[utoipa::path(
    get, path = "/admin/maintenance", tag = "admin", operation_id = "get_maintenance",
    summary = "Maintenance mode here and in the cluster setting, and every API instance with what it applied",
    responses((status = 200, description = "Maintenance mode", body = AdminMaintenance), TokenErrors),
)]
pub async fn maintenance(
    State(st): State<AppState>,
    caller: Option<Extension<Caller>>,
) -> Result<Response, ApiError> {
    require(caller)?;
    let m = st.local_maintenance();
    let here = json!({ "enabled": m.is_some(), "reason": m, "pool": st.db.status(),
                       "instance": this_instance(&st) });
    Ok(Json(merged(here, cluster_view(&st).await)).into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Maintenance {
    pub enabled: bool,
    /// Shown in every refused write; `maintenance` when none is given.
    #[schema(max_length = 500, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")]
    pub reason: Option<String>,
}

/// The reason to store: trimmed, `maintenance` when none is given, at most
/// [`MAX_REASON_CHARS`] characters and no control characters (it is shown
/// in every refused write's answer and in logs).
fn reason(given: Option<String>) -> Result<String, ApiError> {
    let r = given.as_deref().unwrap_or_default().trim();
    if r.chars().count() > MAX_REASON_CHARS {
        return Err(dash_core::ValidationError::new(
            "reason",
            format!("must be at most {MAX_REASON_CHARS} characters"),
        )
        .into());
    }
    if r.chars().any(char::is_control) {
        return Err(dash_core::ValidationError::new(
            "reason",
            "must not contain control characters",
        )
        .into());
    }
    Ok(match r {
        "" => "maintenance".into(),
        r => r.into(),
    })
}

#[utoipa::path(
    put, path = "/admin/maintenance", tag = "admin", operation_id = "set_maintenance",
    summary = "Turn read-only maintenance mode on or off on every API process",
    description = "Applied here at once, even when the database is out of reach (then cluster_wide is false).",
    params(Actor),
    request_body = Maintenance,
    responses((status = 200, description = "The change", body = AdminMaintenanceChange), AdminWriteErrors),
)]
pub async fn set_maintenance(
    State(st): State<AppState>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    body: JsonBody<Maintenance>,
) -> Result<Response, ApiError> {
    let caller = require(caller)?;
    let m = body.value;
    let value = match m.enabled {
        true => Some(reason(m.reason)?),
        false => None,
    };
    let by = changed_by(&st, &caller, &headers);
    let change = SettingChange::Maintenance(value.clone());
    // Applied here first, whatever the database says: stopping writes on
    // this process never waits for, or depends on, the database.
    let seq = st.cluster.decide(change.clone(), by.clone(), || {
        st.set_local_maintenance(value.clone())
    });
    tracing::warn!(enabled = m.enabled, reason = ?value, %by, "maintenance mode changed");
    let here = json!({ "enabled": m.enabled, "reason": value, "instance": this_instance(&st) });
    Ok(Json(merged(here, store(&st, seq, &change, &by).await)).into_response())
}
