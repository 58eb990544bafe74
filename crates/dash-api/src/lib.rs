//! Dash's HTTP surface: the REST API, health endpoints, the dashboard, and
//! the Prometheus metrics listener. `App::build` is the one start-up path,
//! used by `dashctl serve` and by every test.

pub mod auth;
pub mod background;
pub mod dashboard;
pub mod error;
pub mod feed;
pub mod json;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod ratelimit;
pub mod routes;
pub use dash_http as serve;
pub mod settings;
pub mod state;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use dash_store::Db;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use settings::ApiSettings;
pub use state::AppState;

/// A built, bound, not yet running API.
pub struct App {
    api: TcpListener,
    metrics: TcpListener,
    state: AppState,
    stop_tx: watch::Sender<bool>,
    api_limits: serve::Limits,
}

/// Connections of the metrics listener (scrapers, `dashctl db status`).
const METRICS_CONNECTIONS: usize = 64;
/// Descriptors kept back for everything else: the listeners, the event
/// listener, logs, DNS, etcd and the like.
const OTHER_DESCRIPTORS: usize = 64;

/// The API listener's limits, lowered to fit `nofile` descriptors beside the
/// pool, the metrics listener and the overflow lane; and the stream cap.
fn fit_limits(settings: &ApiSettings, nofile: Option<u64>) -> (serve::Limits, usize) {
    let reserve = settings.database.pool_size
        + METRICS_CONNECTIONS
        + serve::OVERFLOW_DESCRIPTORS
        + OTHER_DESCRIPTORS;
    let room = nofile.map_or(usize::MAX, |n| {
        usize::try_from(n)
            .unwrap_or(usize::MAX)
            .saturating_sub(reserve)
    });
    let max_connections = settings.max_connections.min(room).max(4);
    // Streams never take every connection: a quarter stays for requests.
    let max_streams = settings
        .max_event_streams
        .min(max_connections - max_connections / 4)
        .max(1);
    let limits = serve::Limits {
        max_connections,
        header_read_timeout: settings.header_read_timeout,
        keepalive_timeout: settings.keepalive_timeout,
        overflow_serves_all: false,
    };
    (limits, max_streams)
}

/// The API listener's accept queue. Tokio's `bind` asks for 1024; a crowd
/// that reconnects faster than connections are accepted overflows it, and
/// ordinary clients then see their connects refused. The kernel caps this at
/// `net.core.somaxconn` (4096 on current kernels).
const BACKLOG: u32 = 4096;

/// Binds `addr` with SO_REUSEADDR (as `TcpListener::bind` does) and the
/// larger accept queue.
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

impl App {
    /// Binds both ports and prepares the state. Does not need the database
    /// to be up: it connects, migrates and reports readiness in the background.
    pub async fn build(settings: ApiSettings) -> std::io::Result<App> {
        let api = listen(SocketAddr::new(settings.bind, settings.api_port))?;
        let metrics_listener =
            TcpListener::bind(SocketAddr::new(settings.bind, settings.metrics_port)).await?;
        let metrics = Arc::new(metrics::Metrics::new());
        let db = Db::new(settings.database.clone(), metrics.clone());
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut bell_stop = stop_rx.clone();
        let bell = dash_store::listen::spawn_listener(settings.database.clone(), async move {
            let _ = bell_stop.wait_for(|s| *s).await;
        });
        let nofile = serve::rlimit::raise_nofile();
        let (api_limits, max_streams) = fit_limits(&settings, nofile);
        tracing::info!(
            descriptors = nofile,
            max_connections = api_limits.max_connections,
            max_event_streams = max_streams,
            "connection limits"
        );
        let events = feed::EventHub::new(max_streams);
        tokio::spawn(feed::run(events.clone(), db.clone(), bell, stop_rx.clone()));
        if settings.tokens.is_empty() {
            tracing::warn!(
                "DASH_API_TOKENS is empty: every mutating API call will be refused with 401"
            );
        }
        let spawns = crate::ratelimit::SpawnLimiter::new(settings.spawn_rate, settings.spawn_burst);
        let state = AppState::new(state::AppParts {
            db,
            metrics,
            spawns: Arc::new(spawns),
            settings: Arc::new(settings),
            events,
            maintenance: Arc::new(RwLock::new(None)),
            shutdown: stop_rx,
            cluster: Default::default(),
            dashboard: Default::default(),
        });
        Ok(App {
            api,
            metrics: metrics_listener,
            state,
            stop_tx,
            api_limits,
        })
    }

    pub fn port(&self) -> u16 {
        self.api.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn metrics_port(&self) -> u16 {
        self.metrics.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Runs the app on the current runtime until [`RunningApp::stop`] or
    /// drop: `dashctl up`, chaos's private platform, `bench compare
    /// --in-process` and every test use this one handle.
    pub fn spawn(self) -> RunningApp {
        let host = match self.state.settings.bind {
            ip if ip.is_unspecified() => "127.0.0.1".to_string(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        };
        let base_url = format!("http://{host}:{}", self.port());
        let metrics_url = format!("http://{host}:{}/metrics", self.metrics_port());
        let db = self.state.db.clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(self.run_until_stopped(async {
            let _ = rx.await;
        }));
        RunningApp {
            base_url,
            metrics_url,
            db,
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Serves until `shutdown` resolves, then drains in-flight requests for
    /// at most the configured shutdown timeout.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let App {
            api,
            metrics,
            state,
            stop_tx,
            api_limits,
        } = self;
        let drain = state.settings.shutdown_timeout;
        let mut stopped = state.shutdown.clone();
        let background = tokio::spawn(background::run(state.clone()));
        let api_router = routes::router(state.clone());
        let metrics_router = routes::metrics_router(state.clone());
        let metrics_limits = serve::Limits {
            max_connections: METRICS_CONNECTIONS,
            overflow_serves_all: true,
            ..api_limits
        };
        let api_server = serve::serve(api, api_router, api_limits, stopped.clone());
        let metrics_server = serve::serve(metrics, metrics_router, metrics_limits, stopped.clone());
        let servers = async { tokio::try_join!(api_server, metrics_server) };
        tokio::pin!(servers);
        tokio::select! {
            r = &mut servers => { r?; }
            _ = shutdown => {
                tracing::info!("shutting down: draining in-flight requests");
                let _ = stop_tx.send(true);
                match tokio::time::timeout(drain, &mut servers).await {
                    Ok(r) => { r?; }
                    Err(_) => tracing::warn!(?drain, "in-flight requests did not finish in time; stopping anyway"),
                }
            }
        }
        let _ = stop_tx.send(true);
        let _ = stopped.wait_for(|s| *s).await;
        background.abort();
        state.db.close();
        Ok(())
    }
}

/// An [`App`] running on a task: its URLs, a graceful [`RunningApp::stop`],
/// and an abort on drop so that nothing outlives its owner.
pub struct RunningApp {
    base_url: String,
    metrics_url: String,
    db: dash_store::Db,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl RunningApp {
    /// `http://host:port` of the REST API.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `http://host:port/metrics`.
    pub fn metrics_url(&self) -> &str {
        &self.metrics_url
    }

    /// The app's database pool (e.g. to add a host it should try).
    pub fn db(&self) -> &dash_store::Db {
        &self.db
    }

    /// Starts the graceful shutdown and hands back the server task.
    pub fn begin_shutdown(&mut self) -> Option<tokio::task::JoinHandle<std::io::Result<()>>> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.task.take()
    }

    /// Stops the app: in-flight requests drain for at most the configured
    /// shutdown timeout.
    pub async fn stop(mut self) -> std::io::Result<()> {
        match self.begin_shutdown() {
            Some(task) => task.await.map_err(std::io::Error::other)?,
            None => Ok(()),
        }
    }
}

impl Drop for RunningApp {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
