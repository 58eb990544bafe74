//! Shared state of one API process.

use std::sync::{Arc, RwLock};

use dash_store::{Db, StoreError};
use tokio::sync::watch;

use crate::feed::EventHub;
use crate::metrics::Metrics;
use crate::settings::ApiSettings;

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub metrics: Arc<Metrics>,
    pub settings: Arc<ApiSettings>,
    /// The event log fanned out to every live event stream.
    pub events: Arc<EventHub>,
    /// `Some(reason)` while writes are paused for maintenance.
    pub maintenance: Arc<RwLock<Option<String>>>,
    /// Flips to true when the process starts shutting down; ends event streams.
    pub shutdown: watch::Receiver<bool>,
}

impl AppState {
    /// Refuses a write while maintenance mode is on.
    pub fn check_writable(&self) -> Result<(), StoreError> {
        match &*self.maintenance.read().unwrap_or_else(|p| p.into_inner()) {
            Some(reason) => Err(StoreError::Maintenance(reason.clone())),
            None => Ok(()),
        }
    }
}
