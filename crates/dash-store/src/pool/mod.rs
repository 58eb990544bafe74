//! The failover-aware connection pool: it only ever holds connections to the
//! writable primary, discards any connection that died, hung or reached a
//! demoted node, and bounds every wait and every call with a deadline.

mod breaker;
mod conn;
mod connect;
mod observer;

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use deadpool::managed::{self, Metrics, PoolError, RecycleError, RecycleResult};
use serde::Serialize;

pub use conn::{Conn, Tx};
pub use connect::{describe, driver_config, find_primary, AttemptError};
pub use observer::{ConnErrorReason, NoopObserver, StoreObserver};

use crate::config::{DbSettings, HostPort};
use crate::error::StoreError;

const NO_PRIMARY: usize = usize::MAX;

/// A pooled connection to the primary.
pub struct PgConn {
    pub(crate) client: tokio_postgres::Client,
    pub(crate) generation: u64,
    pub(crate) host: HostPort,
    /// Set when a call on this connection failed in a way that makes it unusable.
    pub(crate) poisoned: bool,
    /// This connection's prepared statements.
    pub(crate) stmts: conn::StmtCache,
}

/// State shared by the pool, its manager and every checked-out connection.
pub(crate) struct Shared {
    pub(crate) settings: DbSettings,
    /// Open while every host is gone: callers are answered at once.
    pub(crate) breaker: breaker::Breaker,
    /// Hosts added while running ([`Db::add_hosts`]), tried after the
    /// listed ones; only ever appended, so an index keeps naming one host.
    added: RwLock<Vec<HostPort>>,
    /// Connections from an older generation are discarded on return.
    generation: AtomicU64,
    primary: AtomicUsize,
    /// The primary's address (also when it was reached through a standby).
    primary_host: Mutex<Option<HostPort>>,
    pub(crate) observer: Arc<dyn StoreObserver>,
    last_error: Mutex<Option<String>>,
}

impl Shared {
    /// The settings with every host added while running.
    fn effective(&self) -> Cow<'_, DbSettings> {
        let added = self.added.read().unwrap_or_else(|p| p.into_inner());
        if added.is_empty() {
            return Cow::Borrowed(&self.settings);
        }
        let mut s = self.settings.clone();
        s.hosts.extend(added.iter().cloned());
        Cow::Owned(s)
    }

    /// Retires every pooled connection: called when one of them shows the
    /// primary died, hung or was demoted, since the others share its fate.
    pub(crate) fn retire_all(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
}

pub(crate) struct Manager {
    shared: Arc<Shared>,
}

impl managed::Manager for Manager {
    type Type = PgConn;
    type Error = StoreError;

    async fn create(&self) -> Result<PgConn, StoreError> {
        let sh = &self.shared;
        let prefer = match sh.primary.load(Ordering::SeqCst) {
            NO_PRIMARY => None,
            i => Some(i),
        };
        let settings = sh.effective();
        let found = find_primary(&settings, prefer, |e| {
            sh.observer.connection_error(e.reason)
        })
        .await
        .map_err(|errors| {
            let text = describe(&errors);
            *sh.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(text.clone());
            if breaker::all_gone(&errors) {
                breaker::trip(sh);
            }
            StoreError::Unavailable(text)
        })?;
        // Compared by address: a followed host's index can name an added
        // host once hosts are added.
        sh.primary.store(found.host_index, Ordering::SeqCst);
        *sh.last_error.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let previous = sh
            .primary_host
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .replace(found.host.clone());
        if let Some(from) = previous.filter(|p| *p != found.host) {
            sh.retire_all();
            sh.observer.failover();
            tracing::warn!(%from, to = %found.host, "the writable primary moved; following it");
        }
        Ok(PgConn {
            client: found.client,
            generation: sh.generation.load(Ordering::SeqCst),
            host: found.host,
            poisoned: false,
            stmts: conn::StmtCache::default(),
        })
    }

    async fn recycle(&self, c: &mut PgConn, _: &Metrics) -> RecycleResult<StoreError> {
        if c.poisoned {
            return Err(RecycleError::message(
                "connection poisoned by a failed call",
            ));
        }
        if c.client.is_closed() {
            return Err(RecycleError::message("connection closed"));
        }
        if c.generation < self.shared.generation.load(Ordering::SeqCst) {
            return Err(RecycleError::message("connection predates a failover"));
        }
        Ok(())
    }
}

/// The pool's numbers, as `pg_pool_*` reports them.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct PoolStatus {
    pub max_size: usize,
    pub size: usize,
    pub idle: usize,
    pub in_use: usize,
    pub waiting: usize,
}

/// Cheap to clone; all clones share one pool.
#[derive(Clone)]
pub struct Db {
    pool: managed::Pool<Manager>,
    shared: Arc<Shared>,
}

impl Db {
    /// Builds the pool. It connects lazily: a database that is down at start
    /// does not stop the caller from starting.
    pub fn new(settings: DbSettings, observer: Arc<dyn StoreObserver>) -> Db {
        let hosts = settings.hosts.len().max(1) as u32;
        let create_timeout = settings.connect_timeout * hosts + Duration::from_millis(200);
        let shared = Arc::new(Shared {
            generation: AtomicU64::new(0),
            primary: AtomicUsize::new(NO_PRIMARY),
            primary_host: Mutex::new(None),
            added: RwLock::new(Vec::new()),
            breaker: Default::default(),
            observer,
            last_error: Mutex::new(None),
            settings,
        });
        let pool = managed::Pool::builder(Manager {
            shared: shared.clone(),
        })
        .max_size(shared.settings.pool_size)
        .wait_timeout(Some(shared.settings.acquire_timeout))
        .create_timeout(Some(create_timeout))
        .recycle_timeout(Some(Duration::from_secs(1)))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .expect("a runtime is configured, so the pool always builds");
        Db { pool, shared }
    }

    pub fn settings(&self) -> &DbSettings {
        &self.shared.settings
    }

    /// Every host the pool tries: the listed ones, then those added since.
    pub fn hosts(&self) -> Vec<HostPort> {
        self.shared.effective().hosts.clone()
    }

    /// Adds hosts to try while running (a replica added to the cluster, so
    /// that the pool still finds the primary if it is promoted); returns
    /// those that were new. Connections already pooled are kept.
    pub fn add_hosts(&self, hosts: impl IntoIterator<Item = HostPort>) -> Vec<HostPort> {
        let mut added = self.shared.added.write().unwrap_or_else(|p| p.into_inner());
        let mut new = Vec::new();
        for h in hosts {
            if !self.shared.settings.hosts.contains(&h) && !added.contains(&h) {
                added.push(h.clone());
                new.push(h);
            }
        }
        if !new.is_empty() {
            // A new host may be the one that answers.
            self.shared.breaker.close();
        }
        new
    }

    /// A connection to the writable primary. While no primary is reachable
    /// it keeps trying until the acquire timeout, then answers `Unavailable`.
    pub async fn conn(&self) -> Result<Conn, StoreError> {
        let started = Instant::now();
        let deadline = started + self.shared.settings.acquire_timeout;
        let mut pause = Duration::from_millis(10);
        loop {
            if self.shared.breaker.is_open() {
                return Err(StoreError::Unavailable(format!(
                    "every database host is down ({}); answering at once until one is back",
                    self.last_error().unwrap_or_default()
                )));
            }
            match self.pool.get().await {
                Ok(obj) => {
                    self.shared.observer.acquire(started.elapsed());
                    return Ok(Conn::new(obj, self.shared.clone()));
                }
                Err(PoolError::Timeout(kind)) => {
                    self.shared.observer.acquire_timeout();
                    // Waiting for a free slot while the last contact worked is
                    // load; a hung connect or an unknown primary is not.
                    let busy = matches!(kind, managed::TimeoutType::Wait) && self.reachable();
                    return Err(StoreError::acquire_timed_out(
                        self.shared.settings.acquire_timeout,
                        busy,
                    ));
                }
                Err(PoolError::Backend(e))
                    if e.is_retryable() && Instant::now() + pause < deadline =>
                {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(100));
                }
                Err(PoolError::Backend(e)) => return Err(e),
                Err(PoolError::Closed) => {
                    return Err(StoreError::Unavailable("the pool is closed".into()))
                }
                Err(PoolError::NoRuntimeSpecified) | Err(PoolError::PostCreateHook(_)) => {
                    return Err(StoreError::Unavailable("pool misconfigured".into()))
                }
            }
        }
    }

    pub fn status(&self) -> PoolStatus {
        let s = self.pool.status();
        PoolStatus {
            max_size: s.max_size,
            size: s.size,
            idle: s.available,
            in_use: s.size.saturating_sub(s.available),
            waiting: s.waiting,
        }
    }

    /// Changes the maximum pool size live; shrinking closes idle connections first.
    pub fn resize(&self, max_size: usize) {
        self.pool.resize(max_size);
    }

    /// The host currently believed to be the primary, if any.
    pub fn primary(&self) -> Option<HostPort> {
        match self.shared.primary.load(Ordering::SeqCst) {
            NO_PRIMARY => None,
            _ => self
                .shared
                .primary_host
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }

    /// Whether the pool's last contact with the database worked: a primary
    /// was found and no attempt to connect has failed since.
    pub fn reachable(&self) -> bool {
        self.primary().is_some() && self.last_error().is_none()
    }

    /// Why the last attempt to find a primary failed, if it did.
    pub fn last_error(&self) -> Option<String> {
        self.shared
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Closes the pool: waiting callers fail, connections are dropped.
    pub fn close(&self) {
        self.shared.breaker.stop();
        self.pool.close();
    }
}
