//! `dashctl worker`: claims pending agents from PostgreSQL and runs each
//! through a runtime command (the task on stdin; id, model, attempt and
//! remaining budget in its environment; output streamed back as agent
//! events; usage, progress and a result reported as JSON lines, see
//! [`protocol`]). Claims respect the global and per-swarm running caps;
//! leases are fenced by attempt (see `dash_store::repo::agents::lease`);
//! any worker reclaims expired leases. Wake-ups come from LISTEN
//! `dash_agents`, and the worker polls as well, since a listener can die
//! silently across a failover. Many workers, on any hosts, share one
//! database.

pub mod demo;
pub mod guard;
pub mod metrics;
mod process;
pub mod protocol;
pub mod runner;
pub mod settings;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use dash_store::pool::NoopObserver;
use dash_store::Db;
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use metrics::WorkerMetrics;
pub use runner::RunEnd;
pub use settings::WorkerSettings;

/// How long one claim may take before the worker looks again.
const CLAIM_TIMEOUT: Duration = Duration::from_secs(5);
/// How long stopped runs may take to hand their agents back.
const HALT_TIMEOUT: Duration = Duration::from_secs(15);

/// What a worker did, when it stopped.
#[derive(Debug, Default, Clone)]
pub struct WorkerReport {
    pub claimed: u64,
    pub ends: Vec<RunEnd>,
}

pub struct Worker {
    settings: Arc<WorkerSettings>,
    db: Db,
    metrics: Arc<WorkerMetrics>,
}

impl Worker {
    pub fn new(settings: WorkerSettings) -> Result<Worker, String> {
        settings.validate()?;
        let db = Db::new(settings.database.clone(), Arc::new(NoopObserver));
        Ok(Worker {
            settings: Arc::new(settings),
            db,
            metrics: Arc::new(WorkerMetrics::new()),
        })
    }

    /// Brings the schema up to date (the same migrations the API runs,
    /// safe beside it), waiting for the database for at most `limit`.
    pub async fn migrate(&self, limit: Duration) -> Result<usize, dash_store::StoreError> {
        let until = std::time::Instant::now() + limit;
        runner::persist(until, || async {
            let mut conn = self.db.conn().await?;
            dash_store::migrate::migrate(&mut conn).await
        })
        .await
    }

    /// Serves `/metrics` on the configured port (none when it is 0) until
    /// the process ends; returns the address bound.
    pub async fn serve_metrics(&self) -> std::io::Result<Option<std::net::SocketAddr>> {
        if self.settings.metrics_port == 0 {
            return Ok(None);
        }
        let metrics = self.metrics.clone();
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let m = metrics.clone();
                async move { m.encode() }
            }),
        );
        let listener =
            tokio::net::TcpListener::bind(("0.0.0.0", self.settings.metrics_port)).await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Some(addr))
    }

    pub fn metrics(&self) -> Arc<WorkerMetrics> {
        self.metrics.clone()
    }

    /// Runs until `shutdown` resolves; then claims nothing more, lets
    /// running agents finish for the drain time, and hands back the rest.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) -> WorkerReport {
        let s = self.settings.clone();
        let (stop_tx, mut stop_rx) = watch::channel(false);
        let (halt_tx, halt_rx) = watch::channel(false);
        let listener_stop = {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        };
        let bell = dash_store::listen::spawn_channel_listener(
            s.database.clone(),
            "dash_agents",
            listener_stop,
        );
        let mut wake = bell.subscribe();
        let ctx = Arc::new(runner::Ctx {
            db: self.db.clone(),
            settings: s.clone(),
            metrics: self.metrics.clone(),
            halt: halt_rx,
        });
        let mut runs: JoinSet<RunEnd> = JoinSet::new();
        let mut report = WorkerReport::default();
        let mut poll = tokio::time::interval(s.poll);
        let mut reap = tokio::time::interval(s.heartbeat);
        tokio::pin!(shutdown);
        let mut said = String::new();
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = poll.tick() => {}
                _ = wake.changed() => {}
                Some(end) = runs.join_next(), if !runs.is_empty() => {
                    report.ends.extend(end.ok());
                    self.metrics.running.set(runs.len() as i64);
                }
                _ = reap.tick() => {
                    match self.db.reap_expired().await {
                        Ok(0) | Err(_) => {}
                        Ok(n) => tracing::info!(reclaimed = n, "reclaimed agents whose lease expired"),
                    }
                    continue;
                }
            }
            // Every run that ended meanwhile frees its slot first, so that
            // one claim fills them all (claims are serialized cluster-wide).
            while let Some(end) = runs.try_join_next() {
                report.ends.extend(end.ok());
            }
            // Fill the free slots, in one claim.
            let free = s.slots.saturating_sub(runs.len());
            let claims = self.db.claim_agents(&s.name, s.lease, s.caps, free);
            let claims = match tokio::time::timeout(CLAIM_TIMEOUT, claims).await {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => {
                    let e = e.to_string();
                    if e != said {
                        tracing::warn!(error = %e, "cannot claim agents; retrying");
                        said = e;
                    }
                    continue;
                }
                Err(_) => continue,
            };
            said.clear();
            for claim in claims {
                report.claimed += 1;
                self.metrics.claims.inc();
                tracing::info!(agent = %claim.id, attempt = claim.attempt, "claimed");
                let ctx = ctx.clone();
                runs.spawn(async move { runner::run(&ctx, claim).await });
            }
            self.metrics.running.set(runs.len() as i64);
        }
        let _ = stop_tx.send(true);
        let _ = stop_rx.borrow_and_update();
        if !runs.is_empty() {
            tracing::info!(running = runs.len(), drain = ?s.drain, "stopping: letting running agents finish");
        }
        let drained = tokio::time::timeout(s.drain, async {
            while let Some(end) = runs.join_next().await {
                report.ends.extend(end.ok());
            }
        })
        .await;
        if drained.is_err() {
            let _ = halt_tx.send(true);
            let _ = tokio::time::timeout(HALT_TIMEOUT, async {
                while let Some(end) = runs.join_next().await {
                    report.ends.extend(end.ok());
                }
            })
            .await;
            runs.abort_all();
        }
        self.metrics.running.set(0);
        self.db.close();
        report
    }
}
