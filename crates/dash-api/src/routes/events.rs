//! `/events`: the log after a cursor, and a live SSE stream woken by
//! LISTEN/NOTIFY that resumes from `Last-Event-ID`.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use dash_store::EventCursor;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::error::extract::Query;
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    /// An event's `cursor`; omitted or `0` means the start of the log.
    pub after: Option<String>,
    pub limit: Option<i64>,
    pub swarm_id: Option<Uuid>,
    pub agent_id: Option<Uuid>,
    /// `true`: the newest `limit` events (in log order) instead of those after a cursor.
    pub newest: Option<bool>,
}

pub async fn list(
    State(st): State<AppState>,
    Query(q): Query<EventQuery>,
) -> Result<Response, ApiError> {
    let limit = dash_core::page::validate_limit(q.limit)?;
    let after = EventCursor::parse(q.after.as_deref().unwrap_or(""))?;
    if q.newest == Some(true) {
        if q.after.is_some() {
            return Err(ApiError::bad_request(
                "newest=true and after cannot be used together",
            ));
        }
        let items = st
            .db
            .list_newest_events(limit, q.swarm_id, q.agent_id)
            .await?;
        let next = items.last().map_or(after.encode(), |e| e.cursor.clone());
        return Ok(Json(json!({ "items": items, "next_cursor": next })).into_response());
    }
    let items = st
        .db
        .list_events(after, limit, q.swarm_id, q.agent_id)
        .await?;
    let next = items.last().map_or(after.encode(), |e| e.cursor.clone());
    Ok(Json(json!({ "items": items, "next_cursor": next })).into_response())
}

/// Streams events as they commit. Starts after `after` or `Last-Event-ID`,
/// else at the newest event. Ends when the server shuts down.
pub async fn stream(
    State(st): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<EventQuery>,
) -> Result<Response, ApiError> {
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or(q.after.clone());
    let mut cursor = match resume {
        Some(c) => EventCursor::parse(&c)?,
        None => st.db.latest_event_cursor().await?,
    };
    let mut bell = st.bell.subscribe();
    let mut stop = st.shutdown.clone();
    let (swarm_id, agent_id) = (q.swarm_id, q.agent_id);
    let events = async_stream::stream! {
        loop {
            match st.db.list_events(cursor, 500, swarm_id, agent_id).await {
                Ok(batch) => {
                    let full = batch.len() == 500;
                    for e in batch {
                        cursor = EventCursor::parse(&e.cursor).unwrap_or(cursor);
                        let data = serde_json::to_string(&e).unwrap_or_default();
                        yield Ok::<_, Infallible>(SseEvent::default().id(e.cursor.clone()).event(e.kind.clone()).data(data));
                    }
                    if full { continue; }
                }
                Err(e) => {
                    // The database is away (a failover, say): tell the client and keep waiting.
                    yield Ok(SseEvent::default().event("error").data(json!({"error": {"code": "database_unavailable", "message": e.to_string()}}).to_string()));
                }
            }
            tokio::select! {
                _ = bell.changed() => {}
                // Events held back behind a long transaction are picked up without a new notification.
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
    };
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}
