//! Per-request middleware: request ids, HTTP metrics by matched route and
//! a bounded method label, logging of each failure's cause, once, panics
//! turned into counted 500s, and the maintenance-mode guard on write routes.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{error_response, ApiError, ErrorCause};
use crate::metrics::{HttpLabels, Metrics, RouteLabels};
use crate::state::AppState;

pub const REQUEST_ID: &str = "x-request-id";

/// Gives every request an id (kept from the client when it sent a sane one),
/// echoes it in the response, records metrics, and logs 5xx causes.
pub async fn observe(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.chars().all(|c| c.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    if let Ok(v) = HeaderValue::from_str(&id) {
        req.headers_mut().insert(REQUEST_ID, v);
    }
    let method = method_label(req.method());
    // The route table is fixed, so matched routes are a bounded set; any
    // path that matched none folds into one value.
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let span = tracing::info_span!("request", request_id = %id, %method, %route);
    let mut resp = {
        let _enter = span.enter();
        drop(_enter);
        tracing::Instrument::instrument(next.run(req), span.clone()).await
    };
    let status = resp.status();
    let elapsed = started.elapsed();
    // A probe's 503 is its answer (not ready yet, the database away), not
    // a failure: polled at start and by Kubernetes, it would flood the log.
    let probe = matches!(route.as_str(), "/ready" | "/health");
    state
        .metrics
        .http_requests
        .get_or_create(&HttpLabels {
            method: method.into(),
            route: route.clone(),
            status: status.as_u16().to_string(),
        })
        .inc();
    state
        .metrics
        .http_duration
        .get_or_create(&RouteLabels {
            method: method.into(),
            route,
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
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    resp
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

/// Turns a panic in a handler into a 500 in the API's error shape, counted
/// in `dash_http_panics_total`, instead of a connection dropped without an
/// answer. The panic's message goes to the log, never to the client.
pub async fn catch_panic(
    State(metrics): State<Arc<Metrics>>,
    req: Request,
    next: Next,
) -> Response {
    use futures::FutureExt;
    match std::panic::AssertUnwindSafe(next.run(req))
        .catch_unwind()
        .await
    {
        Ok(resp) => resp,
        Err(panic) => {
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
    }
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
