//! The HTTP/1.1 server loop of a listener (hyper-util's connection builder,
//! not `axum::serve`, which has no header timeout and no connection cap):
//! each connection is closed after `DASH_HEADER_READ_TIMEOUT` without a
//! complete request head and after `DASH_KEEPALIVE_TIMEOUT` idle. At the
//! connection cap the oldest idle connection is shed for the new one (so a
//! crowd of slow or idle clients cannot lock anyone out); when every
//! connection is busy the new one is served by a small overflow lane that
//! answers `/livez`, `/health` and `/ready` and 503 with `Retry-After` to
//! everything else, and past that lane is closed at once: never a hang.

pub mod conns;
pub mod rlimit;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tower::ServiceExt;

use conns::{Busy, Registry, Slot, Tracked};

/// Connections the overflow lane serves at once.
pub const OVERFLOW_LANE: usize = 64;
/// The overflow lane's header timeout (and the most its answer may take).
const OVERFLOW_TIMEOUT: Duration = Duration::from_secs(2);

/// How one listener treats its connections.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub keepalive_timeout: Duration,
    /// The overflow lane serves every path (the metrics listener), not only health.
    pub overflow_serves_all: bool,
}

/// Serves `router` on `listener` until `stop` turns true, then waits for open
/// connections to finish (the caller bounds that wait).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let registry = Registry::new(limits.max_connections);
    let overflow = Arc::new(Semaphore::new(OVERFLOW_LANE));
    let graceful = GracefulShutdown::new();
    let mut last_warning: Option<Instant> = None;
    loop {
        let stream = tokio::select! {
            r = listener.accept() => r,
            _ = stop.wait_for(|s| *s) => break,
        };
        let stream = match stream {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors, say: the caps are meant to prevent it.
                if last_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(5)) {
                    tracing::warn!(error = %e, open = registry.open(), "accept failed");
                    last_warning = Some(Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        match registry.admit() {
            Some(slot) => spawn_connection(&graceful, stream, slot, router.clone(), limits),
            None => match overflow.clone().try_acquire_owned() {
                Ok(permit) => {
                    let router = router.clone();
                    tokio::spawn(async move {
                        overflow_lane(stream, router, limits.overflow_serves_all).await;
                        drop(permit);
                    });
                }
                Err(_) => drop(stream),
            },
        }
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Serves one admitted connection on its own task until it ends, idles
/// out, is shed, or the server drains.
fn spawn_connection(
    graceful: &GracefulShutdown,
    stream: TcpStream,
    slot: Slot,
    router: Router,
    limits: Limits,
) {
    let info = slot.info.clone();
    let io = TokioIo::new(Tracked {
        inner: stream,
        info: info.clone(),
    });
    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
        let busy = Busy::start(&info);
        let router = router.clone();
        async move {
            let resp = router.oneshot(req).await?;
            // The connection stays busy until its response body is sent.
            Ok::<_, std::convert::Infallible>(resp.map(|b| {
                Body::new(b.map_err(move |e| {
                    let _ = &busy;
                    e
                }))
            }))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    // hyper's own header timer runs from when it starts waiting for a head,
    // idle time included: a backstop behind the two clocks of `conns`.
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout + limits.keepalive_timeout);
    let watched = graceful.watch(builder.serve_connection(io, svc));
    tokio::spawn(async move {
        let info = slot.info.clone();
        let idle = async {
            loop {
                let deadline = info.deadline(limits.header_read_timeout, limits.keepalive_timeout);
                if deadline <= Instant::now() {
                    return;
                }
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline.into()) => {}
                    _ = info.clock.notified() => {}
                }
            }
        };
        tokio::select! {
            _ = watched => {}
            _ = idle => {}
            _ = info.shed.notified() => {}
        }
        drop(slot);
    });
}

/// Whether the overflow lane serves `path` rather than refusing it.
fn lane_serves(path: &str, all: bool) -> bool {
    all || matches!(path, "/livez" | "/health" | "/ready")
}

async fn overflow_lane(stream: TcpStream, router: Router, serves_all: bool) {
    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
        let router = router.clone();
        async move {
            if lane_serves(req.uri().path(), serves_all) {
                return router.oneshot(req).await;
            }
            Ok(too_many_connections())
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(OVERFLOW_TIMEOUT)
        .keep_alive(false);
    let conn = builder.serve_connection(TokioIo::new(stream), svc);
    let _ = tokio::time::timeout(OVERFLOW_TIMEOUT * 2, conn).await;
}

fn too_many_connections() -> Response<Body> {
    let mut r = crate::error::error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        "too_many_connections",
        "the server is at its connection limit; retry shortly",
    );
    let h = r.headers_mut();
    h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_overflow_lane_serves_only_health_on_the_api() {
        for p in ["/livez", "/health", "/ready"] {
            assert!(lane_serves(p, false), "{p}");
        }
        for p in ["/api/v1/swarms", "/health/x", "/", "/metrics"] {
            assert!(!lane_serves(p, false), "{p}");
        }
        assert!(lane_serves("/metrics", true));
    }
}
