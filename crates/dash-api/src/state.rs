//! Shared state of one API process.

pub mod cluster;

use std::sync::{Arc, RwLock};

use dash_store::{Db, StoreError};
use tokio::sync::watch;

use crate::feed::EventHub;
use crate::metrics::Metrics;
use crate::settings::ApiSettings;

pub use cluster::ClusterLink;

/// What every handler shares, behind one `Arc`: the router clones the state
/// for every request and for each middleware layer, and one reference count
/// is cheaper than a dozen (the profile of `GET /agents/{id}` showed the
/// clones and drops of the field-by-field state at ~8 % of the API's CPU).
#[derive(Clone)]
pub struct AppState(Arc<AppParts>);

impl std::ops::Deref for AppState {
    type Target = AppParts;

    fn deref(&self) -> &AppParts {
        &self.0
    }
}

impl AppState {
    pub fn new(parts: AppParts) -> AppState {
        AppState(Arc::new(parts))
    }
}

pub struct AppParts {
    pub db: Db,
    pub metrics: Arc<Metrics>,
    pub settings: Arc<ApiSettings>,
    /// The event log fanned out to every live event stream.
    pub events: Arc<EventHub>,
    /// `Some(reason)` while writes are paused for maintenance.
    pub maintenance: Arc<RwLock<Option<String>>>,
    /// Flips to true when the process starts shutting down; ends event streams.
    pub shutdown: watch::Receiver<bool>,
    /// This process in the cluster: its identity, and the cluster-wide
    /// settings it follows (maintenance mode, pool size).
    pub cluster: Arc<ClusterLink>,
    /// The dashboard's live snapshot and the pool's reachability as it flips.
    pub dashboard: Arc<crate::dashboard::Dashboard>,
    /// The spawn-rate limit of `POST /agents`.
    pub spawns: Arc<crate::ratelimit::SpawnLimiter>,
}

impl AppState {
    /// Refuses a write while maintenance mode is on.
    pub fn check_writable(&self) -> Result<(), StoreError> {
        match &*self.maintenance.read().unwrap_or_else(|p| p.into_inner()) {
            Some(reason) => Err(StoreError::Maintenance(reason.clone())),
            None => Ok(()),
        }
    }

    /// This process's maintenance reason (`None`: it accepts writes).
    pub fn local_maintenance(&self) -> Option<String> {
        self.maintenance
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Sets this process's maintenance state at once.
    pub(crate) fn set_local_maintenance(&self, reason: Option<String>) {
        *self.maintenance.write().unwrap_or_else(|p| p.into_inner()) = reason;
    }

    /// Sets this process's pool size at once (and its gauge).
    pub(crate) fn set_local_pool_size(&self, size: usize) {
        if self.db.status().max_size != size {
            self.db.resize(size);
            self.metrics.set_pool(self.db.status());
        }
    }
}
