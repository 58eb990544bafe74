//! Per-request middleware: request ids, HTTP metrics by matched route and
//! a bounded method label, logging of each failure's cause, once, panics
//! turned into counted 500s, and the maintenance-mode guard on write routes.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::FutureExt;

use crate::error::{error_response, ApiError, ErrorCause};
use crate::metrics::{HttpLabels, Metrics, RouteLabels};
use crate::state::AppState;

pub const REQUEST_ID: &str = "x-request-id";

/// Gives every request an id (kept from the client when it sent a sane one),
/// echoes it in the response, checks the bearer token on `/api` routes
/// (`auth::authorize`), runs the handler under the request deadline
/// (API routes but the live streams) with a panic turned into a counted
/// 500, records metrics, and logs 5xx causes. One layer for all of it:
/// each `from_fn` layer costs a boxed service and a future per request
/// (callgrind).
pub async fn observe(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request_id(req.headers().get(REQUEST_ID));
    req.headers_mut().insert(REQUEST_ID, id.clone());
    let method = method_label(req.method());
    // The route table is fixed, so matched routes are a bounded set; any
    // path that matched none folds into one value.
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or("unmatched", |p| p.as_str());
    let deadline = (route.starts_with("/api") && !route.ends_with("/stream"))
        .then_some(state.settings.request_timeout);
    let span = tracing::info_span!(
        "request",
        request_id = id.to_str().unwrap_or_default(),
        %method,
        %route
    );
    let guarded = route.starts_with("/api");
    let run = async {
        if guarded {
            if let Err(denied) = crate::auth::authorize(&state.settings, &mut req) {
                return denied.into_response();
            }
        }
        let handler = unwind_to_500(&state.metrics, next.run(req));
        match deadline {
            Some(limit) => tokio::time::timeout(limit, handler)
                .await
                .unwrap_or_else(|_| ApiError::Timeout(limit).into_response()),
            None => handler.await,
        }
    };
    let mut resp = tracing::Instrument::instrument(run, span.clone()).await;
    let status = resp.status();
    let elapsed = started.elapsed();
    // A probe's 503 is its answer (not ready yet, the database away), not
    // a failure: polled at start and by Kubernetes, it would flood the log.
    let probe = matches!(route, "/ready" | "/health");
    state
        .metrics
        .http_requests
        .get_or_create(&HttpLabels {
            method: method.into(),
            route: route.to_string(),
            status: status.as_u16().to_string(),
        })
        .inc();
    state
        .metrics
        .http_duration
        .get_or_create(&RouteLabels {
            method: method.into(),
            route: route.to_string(),
        })
        .observe(elapsed.as_secs_f64());
    if let Some(cause) = resp.extensions().get::<ErrorCause>() {
        // A 503 is the database tier being away (an outage, a failover): an
        // operational condition the metrics and /health report, not a bug.
        span.in_scope(|| {
            if status == axum::http::StatusCode::SERVICE_UNAVAILABLE {
                tracing::warn!(status = status.as_u16(), cause = %cause.0, "request failed")
            } else {
                tracing::error!(status = status.as_u16(), cause = %cause.0, "request failed")
            }
        });
    } else if status.is_server_error() && !probe {
        span.in_scope(|| tracing::warn!(status = status.as_u16(), "request failed"));
    }
    resp.headers_mut().insert(REQUEST_ID, id);
    resp
}

/// The client's request id when it is sane (1 to 128 visible ASCII
/// characters), else a new uuid, encoded without the formatting machinery.
fn request_id(given: Option<&HeaderValue>) -> HeaderValue {
    let sane = |v: &&HeaderValue| {
        let b = v.as_bytes();
        !b.is_empty() && b.len() <= 128 && b.iter().all(u8::is_ascii_graphic)
    };
    if let Some(v) = given.filter(sane) {
        return v.clone();
    }
    let mut buf = uuid::Uuid::encode_buffer();
    let text = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf);
    HeaderValue::from_str(text).expect("a uuid is a valid header value")
}

/// The `method` label: one of the standard methods, or `other` for any
/// method a client made up (each would otherwise be a new time series).
pub fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

/// Runs `handler`, turning a panic into a 500 in the API's error shape,
/// counted in `dash_http_panics_total`, instead of a connection dropped
/// without an answer (`observe` runs every request through it). The
/// panic's message goes to the log, never to the client.
pub async fn unwind_to_500(metrics: &Metrics, handler: impl Future<Output = Response>) -> Response {
    let panic = match std::panic::AssertUnwindSafe(handler).catch_unwind().await {
        Ok(resp) => return resp,
        Err(panic) => panic,
    };
    metrics.http_panics.inc();
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into());
    let mut resp = error_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error",
    );
    resp.extensions_mut()
        .insert(ErrorCause(Arc::new(format!("handler panicked: {what}"))));
    resp
}

/// Refuses a write with 503 `maintenance` while maintenance mode is on.
/// Layered on the write routes only, so reads, health and `/admin` (which
/// turns maintenance off) keep answering.
pub async fn require_writable(State(state): State<AppState>, req: Request, next: Next) -> Response {
    match state.check_writable() {
        Ok(()) => next.run(req).await,
        Err(e) => ApiError::from(e).into_response(),
    }
}
