//! `/dashboard`: one snapshot of what the dashboard shows, and its live SSE
//! stream. The stream counts against `DASH_MAX_EVENT_STREAMS` like
//! `/events/stream`, and sends:
//! - `snapshot`: the whole snapshot, at connect and whenever it changes;
//! - `database`: `{reachable, primary, error}` from the API's own pool, at
//!   connect and the moment reachability or the primary changes.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use super::events::too_many_streams;
use crate::state::AppState;

/// Longest a `GET` waits for a snapshot when nobody was watching.
const FIRST_SNAPSHOT_WAIT: Duration = Duration::from_secs(3);

#[utoipa::path(
    get, path = "/dashboard", tag = "dashboard", operation_id = "dashboard_snapshot",
    summary = "What the dashboard shows: the database as the API's pool sees it, the cluster, swarms with budgets, agents by status, recent events",
    responses(
        (status = 200, description = "One snapshot", body = crate::dashboard::snapshot::Snapshot),
        crate::openapi::TokenErrors,
    ),
)]
pub async fn snapshot(State(st): State<AppState>) -> Response {
    let mut snap = (*st.dashboard.fresh(FIRST_SNAPSHOT_WAIT).await).clone();
    // The pool's state now, not as of the last refresh.
    snap.body.database = crate::dashboard::database_state(&st.db);
    Json(snap).into_response()
}

fn event(kind: &str, data: &impl Serialize) -> SseEvent {
    SseEvent::default()
        .event(kind)
        .data(serde_json::to_string(data).unwrap_or_default())
}

#[utoipa::path(
    get, path = "/dashboard/stream", tag = "dashboard", operation_id = "dashboard_stream",
    summary = "The dashboard, live (server-sent events)",
    description = "A `database` message ({reachable, primary, error}) at connect and the moment the \
        pool's reachability or primary changes; a `snapshot` message (as GET /dashboard answers) at \
        connect and whenever it changes. Counts against DASH_MAX_EVENT_STREAMS: past it, 503.",
    responses(
        (status = 200, description = "The stream", content_type = "text/event-stream", body = String),
        crate::openapi::TokenErrors,
    ),
)]
pub async fn stream(State(st): State<AppState>) -> Response {
    let Some(permit) = st.events.admit() else {
        return too_many_streams(st.events.max_streams());
    };
    let mut snapshots = st.dashboard.snapshots();
    let mut database = st.dashboard.database();
    let mut stop = st.shutdown.clone();
    let db = st.db.clone();
    let events = async_stream::stream! {
        let _permit = permit;
        yield Ok::<_, Infallible>(event("database", &crate::dashboard::database_state(&db)));
        let first = snapshots.borrow_and_update().clone();
        yield Ok(event("snapshot", &*first));
        loop {
            // The arms only pick; the yield happens once select's futures are gone.
            let next = tokio::select! {
                r = snapshots.changed() => r.ok().map(|_| {
                    event("snapshot", &**snapshots.borrow_and_update())
                }),
                r = database.changed() => r.ok().map(|_| {
                    event("database", &*database.borrow_and_update())
                }),
                _ = stop.wait_for(|s| *s) => None,
            };
            match next {
                Some(e) => yield Ok(e),
                None => break,
            }
        }
    };
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}
