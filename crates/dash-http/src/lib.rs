//! The HTTP/1.1 listener Dash's API and its node agents share: the server
//! loop of one listener (hyper-util's connection builder,
//! not `axum::serve`, which has no header timeout and no connection cap):
//! each connection is closed after `DASH_HEADER_READ_TIMEOUT` without a
//! complete request head and after `DASH_KEEPALIVE_TIMEOUT` idle. At the
//! connection cap the oldest idle connection (past a 1 s grace) is shed for
//! the new one, so a crowd of slow or idle clients cannot lock anyone out.
//! Otherwise the new connection goes to one of two small overflow lanes (one
//! for clients whose whole request head arrives within 100 ms, one for the
//! rest; each sheds its oldest idle connection when full) that give it
//! 500 ms to send one request: served when idle clients hold the slots,
//! answered 503 with `Retry-After` when every slot is busy with requests
//! (`/livez`, `/health` and `/ready` are always served). A connection that
//! finds a lane busy throughout is closed at once: never a hang.

pub mod conns;
pub mod rlimit;

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tower::ServiceExt;

use conns::{Admit, Busy, Registry, Slot, Tracked};

/// What ties a connection to the graceful shutdown: the shutdown itself
/// (from the accept loop), or a watcher of it (from a task of its own).
enum WatchBy<'a> {
    Graceful(&'a GracefulShutdown),
    Watcher(Watcher),
}

/// Connections each of the two overflow lanes serves at once.
pub const OVERFLOW_LANE: usize = 64;
/// Descriptors the overflow lanes may hold.
pub const OVERFLOW_DESCRIPTORS: usize = 2 * OVERFLOW_LANE;
/// The overflow lanes' header and idle timeout: a client that is not slow
/// sends its request head at once. A lane serves one request per connection.
const OVERFLOW_TIMEOUT: Duration = Duration::from_millis(500);
/// How long a newcomer at the cap may take to send a whole request head and
/// count as an ordinary client rather than a slow one.
const HEAD_WAIT: Duration = Duration::from_millis(100);
/// Newcomers at the cap waiting out HEAD_WAIT at once (each holds a
/// descriptor); beyond, a newcomer is sorted on what it has sent so far.
pub const SORTING: usize = 128;

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
    // The lanes shed their oldest idle connection at once (no grace).
    let overflow = Registry::with_grace(OVERFLOW_LANE, Duration::ZERO);
    let proven = Registry::with_grace(OVERFLOW_LANE, Duration::ZERO);
    let lane_limits = Limits {
        header_read_timeout: OVERFLOW_TIMEOUT,
        keepalive_timeout: OVERFLOW_TIMEOUT,
        ..limits
    };
    let graceful = GracefulShutdown::new();
    // Newcomers at the cap waiting to show whether they send a request.
    let sorting = Arc::new(Semaphore::new(SORTING));
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
            Admit::Slot(slot) => {
                let conn = Conn::new(stream, slot, router.clone(), limits, None);
                conn.run(WatchBy::Graceful(&graceful));
            }
            Admit::Full { any_idle } => {
                // Slots held by idle clients (a crowd of slow heads, say):
                // a complete request is served all the same. Every slot
                // busy with requests: the server is full, 503.
                let serves_all = limits.overflow_serves_all || any_idle;
                // A whole head already here: an ordinary client.
                if sent_whole_head(&stream) {
                    if let Some(slot) = proven.admit().slot() {
                        let conn =
                            Conn::new(stream, slot, router.clone(), lane_limits, Some(serves_all));
                        conn.run(WatchBy::Graceful(&graceful));
                    }
                    continue;
                }
                // Not yet: while few newcomers wait, give this one HEAD_WAIT
                // to send one (its first bytes may simply not have arrived:
                // looking only at once put ordinary requests into the slow
                // lane, where a churning crowd of slow heads shed them);
                // otherwise it goes to the slow lane at once.
                let Ok(permit) = sorting.clone().try_acquire_owned() else {
                    if let Some(slot) = overflow.admit().slot() {
                        let conn =
                            Conn::new(stream, slot, router.clone(), lane_limits, Some(serves_all));
                        conn.run(WatchBy::Graceful(&graceful));
                    }
                    continue;
                };
                let (proven, overflow) = (proven.clone(), overflow.clone());
                let (watcher, router) = (graceful.watcher(), router.clone());
                tokio::spawn(async move {
                    let whole = tokio::time::timeout(HEAD_WAIT, whole_head(&stream)).await;
                    drop(permit);
                    let lane = match whole {
                        Ok(true) => &proven,
                        Ok(false) => return, // closed before a request
                        Err(_) => &overflow,
                    };
                    if let Some(slot) = lane.admit().slot() {
                        let conn = Conn::new(stream, slot, router, lane_limits, Some(serves_all));
                        conn.run(WatchBy::Watcher(watcher));
                    }
                });
            }
        }
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// One admitted connection, ready to be served on its own task.
struct Conn {
    stream: TcpStream,
    slot: Slot,
    router: Router,
    limits: Limits,
    lane: Option<bool>,
}

impl Conn {
    fn new(
        stream: TcpStream,
        slot: Slot,
        router: Router,
        limits: Limits,
        lane: Option<bool>,
    ) -> Conn {
        Conn {
            stream,
            slot,
            router,
            limits,
            lane,
        }
    }

    /// Serves it until it ends, idles out, is shed, or the server drains
    /// (`watch` ties it to the graceful shutdown).
    fn run(self, watch: WatchBy<'_>) {
        let Conn {
            stream,
            slot,
            router,
            limits,
            lane,
        } = self;
        let info = slot.info.clone();
        let io = TokioIo::new(Tracked {
            inner: stream,
            info: info.clone(),
        });
        let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
            let busy = Busy::start(&info);
            let router = router.clone();
            let refuse = lane.is_some_and(|all| !lane_serves(req.uri().path(), all));
            async move {
                let resp = match refuse {
                    true => too_many_connections(),
                    false => router.oneshot(req).await?,
                };
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
            .header_read_timeout(limits.header_read_timeout + limits.keepalive_timeout)
            // An overflow lane serves one request per connection.
            .keep_alive(lane.is_none());
        let conn = builder.serve_connection(io, svc);
        let watched: Pin<Box<dyn std::future::Future<Output = _> + Send>> = match watch {
            WatchBy::Graceful(g) => Box::pin(g.watch(conn)),
            WatchBy::Watcher(w) => Box::pin(w.watch(conn)),
        };
        tokio::spawn(async move {
            let info = slot.info.clone();
            let idle = async {
                loop {
                    let deadline =
                        info.deadline(limits.header_read_timeout, limits.keepalive_timeout);
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
}

/// True when a whole request head has already arrived on `stream` (looked
/// at without waiting and without consuming it).
fn sent_whole_head(stream: &TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    match futures::FutureExt::now_or_never(stream.peek(&mut buf)) {
        Some(Ok(n)) => buf[..n].windows(4).any(|w| w == b"\r\n\r\n"),
        _ => false,
    }
}

/// Waits until a whole request head has arrived on `stream` (true), looking
/// without consuming it; false when the client closes first.
async fn whole_head(stream: &TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        if stream.readable().await.is_err() {
            return false;
        }
        match stream.peek(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") => return true,
            // A head larger than the buffer is no ordinary request head.
            Ok(n) if n == buf.len() => return false,
            // Part of a head: wait for more (peek alone would spin).
            Ok(_) => tokio::time::sleep(Duration::from_millis(2)).await,
        }
    }
}

/// Whether the overflow lane serves `path` rather than refusing it (it
/// serves one short request: never an event stream).
fn lane_serves(path: &str, all: bool) -> bool {
    matches!(path, "/livez" | "/health" | "/ready") || (all && !path.ends_with("/events/stream"))
}

fn too_many_connections() -> Response<Body> {
    // The API's error shape (dash-api's `error_response`).
    let body = serde_json::json!({ "error": {
        "code": "too_many_connections",
        "message": "the server is at its connection limit; retry shortly",
    }});
    let mut r = Response::new(Body::from(body.to_string()));
    *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
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
        assert!(lane_serves("/api/v1/swarms", true));
        assert!(!lane_serves("/api/v1/events/stream", true));
    }
}
