//! `/events`: the log after a cursor, and a live SSE stream fed by the
//! process's one reader of the log (`feed.rs`) that resumes from `Last-Event-ID`.

use std::convert::Infallible;
use std::time::Duration;

use crate::json::Json;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use dash_store::EventCursor;
use futures::Stream;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{broadcast, watch, OwnedSemaphorePermit};
use uuid::Uuid;

use crate::error::extract::Query;
use crate::error::{error_response, ApiError};
use crate::feed::{FeedEvent, FeedMsg, Subscription, READ_LIMIT};
use crate::openapi::bodies::EventPage;
use crate::openapi::{LastEventId, ListErrors};
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    /// An event's `cursor`; omitted or `0` means the start of the log.
    pub after: Option<String>,
    /// Page size; 50 when not given.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// Only this swarm's events.
    pub swarm_id: Option<Uuid>,
    /// Only this agent's events.
    pub agent_id: Option<Uuid>,
    /// `true`: the newest `limit` events (in log order) instead of those after a cursor.
    pub newest: Option<bool>,
}

#[utoipa::path(
    get, path = "/events", tag = "events", operation_id = "list_events",
    summary = "Events after a cursor, in log order, or the newest ones (newest=true)",
    params(EventQuery),
    responses((status = 200, description = "A page of events", body = EventPage), ListErrors),
)]
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

#[utoipa::path(
    get, path = "/events/stream", tag = "events", operation_id = "stream_events",
    summary = "Live event stream (server-sent events); resumes from Last-Event-ID",
    description = "Each event is an SSE message whose id is its cursor, whose event is its \
        kind and whose data is the event as /events shows it; an `error` message says the \
        database is out of reach. Starts after `after` or Last-Event-ID, else at the newest event.",
    params(EventQuery, LastEventId),
    responses(
        (status = 200, description = "The stream", content_type = "text/event-stream", body = String),
        ListErrors,
    ),
)]
/// Streams events as they commit. Starts after `after` or `Last-Event-ID`,
/// else at the newest event. Ends when the server shuts down. Past
/// `DASH_MAX_EVENT_STREAMS` open streams, answers 503 with `Retry-After`.
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
    let resume = resume.map(|c| EventCursor::parse(&c)).transpose()?;
    let Some(permit) = st.events.admit() else {
        return Ok(too_many_streams(st.events.max_streams()));
    };
    // Subscribe before reading the log, so that nothing published in between is lost.
    let sub = st.events.subscribe();
    let (cursor, fresh) = match resume {
        Some(c) => (c, false),
        None => (st.db.latest_event_cursor().await?, true),
    };
    let live = Live {
        db: st.db.clone(),
        cursor,
        filter: (q.swarm_id, q.agent_id),
    };
    let events = live.run(sub, fresh, st.shutdown.clone(), permit);
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

/// A stream that failed to catch up tries again after this, doubling up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);

pub(crate) fn too_many_streams(max: usize) -> Response {
    let message =
        format!("{max} event streams are open, the most this server allows; retry shortly");
    let mut r = error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        "too_many_streams",
        &message,
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

fn sse(e: &FeedEvent) -> SseEvent {
    SseEvent::default()
        .id(e.cursor.encode())
        .event(e.kind.clone())
        .data(e.json.clone())
}

fn unavailable(message: &str) -> SseEvent {
    let body = json!({"error": {"code": "database_unavailable", "message": message}});
    SseEvent::default().event("error").data(body.to_string())
}

/// One stream's position and subscription filter.
struct Live {
    db: dash_store::Db,
    /// The last event sent (or where the stream started).
    cursor: EventCursor,
    filter: (Option<Uuid>, Option<Uuid>),
}

impl Live {
    /// Sends the feed's batches for this subscription. The database is read
    /// only to catch up: after a resume, and when a batch does not start
    /// where the last one this stream saw ended (it lagged, or the feed
    /// restarted). A catch-up begun after a batch arrived covers that batch.
    fn run(
        mut self,
        mut sub: Subscription,
        fresh: bool,
        mut stop: watch::Receiver<bool>,
        permit: OwnedSemaphorePermit,
    ) -> impl Stream<Item = Result<SseEvent, Infallible>> {
        async_stream::stream! {
            let _permit = permit;
            let (swarm_id, agent_id) = self.filter;
            // The end of the newest batch known to be published.
            let mut last_seen = sub.head;
            // Where the next batch must start for this stream to have seen everything.
            let mut expected = if fresh { sub.head } else { None };
            let mut behind = !fresh;
            let mut retry = RETRY_FIRST;
            loop {
                if behind {
                    let mut failed = None;
                    loop {
                        match self.db.list_events(self.cursor, READ_LIMIT, swarm_id, agent_id).await {
                            Ok(page) => {
                                let full = page.len() as i64 == READ_LIMIT;
                                for e in &page {
                                    let e = FeedEvent::from_event(e);
                                    self.cursor = e.cursor;
                                    yield Ok(sse(&e));
                                }
                                if !full { break; }
                            }
                            Err(e) => { failed = Some(e.to_string()); break; }
                        }
                    }
                    match failed {
                        None => { behind = false; expected = last_seen; retry = RETRY_FIRST; }
                        // The database is away (a failover, say): tell the client and try
                        // again on the feed's next batch (it sends one when the log is
                        // readable again) or after a backoff.
                        Some(m) => {
                            retry = (retry * 2).min(RETRY_MAX);
                            yield Ok(unavailable(&m));
                        }
                    }
                }
                let msg = tokio::select! {
                    m = sub.rx.recv() => m,
                    _ = tokio::time::sleep(retry), if behind => continue,
                    _ = stop.wait_for(|s| *s) => break,
                };
                match msg {
                    Ok(FeedMsg::Batch(b)) => {
                        last_seen = Some(b.to);
                        if behind || expected != Some(b.from) {
                            behind = true;
                            continue;
                        }
                        let from = self.cursor;
                        for e in b.events.iter().filter(|e| e.cursor > from && e.matches(swarm_id, agent_id)) {
                            self.cursor = e.cursor;
                            yield Ok(sse(e));
                        }
                        expected = Some(b.to);
                    }
                    Ok(FeedMsg::Unavailable(m)) => yield Ok(unavailable(&m)),
                    Err(broadcast::error::RecvError::Lagged(_)) => behind = true,
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        }
    }
}
