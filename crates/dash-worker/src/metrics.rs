//! The worker's metrics: `dash_worker_claims_total`,
//! `dash_worker_leases_lost_total`, `dash_worker_running`, and the
//! completions the database rejected as stale.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

pub struct WorkerMetrics {
    registry: Registry,
    pub claims: Counter,
    pub leases_lost: Counter,
    pub running: Gauge,
    pub stale_finishes: Counter,
    pub completed: Counter,
    pub failed: Counter,
}

impl Default for WorkerMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl WorkerMetrics {
    pub fn new() -> WorkerMetrics {
        let mut registry = Registry::default();
        let m = WorkerMetrics {
            claims: Counter::default(),
            leases_lost: Counter::default(),
            running: Gauge::default(),
            stale_finishes: Counter::default(),
            completed: Counter::default(),
            failed: Counter::default(),
            registry: Registry::default(),
        };
        registry.register("dash_worker_claims", "Agents claimed", m.claims.clone());
        registry.register(
            "dash_worker_leases_lost",
            "Running agents whose lease was lost (killed, paused, reclaimed, or not renewed in time)",
            m.leases_lost.clone(),
        );
        registry.register(
            "dash_worker_running",
            "Agents running here now",
            m.running.clone(),
        );
        registry.register(
            "dash_worker_stale_finishes",
            "Completions or failures rejected because their attempt no longer ran",
            m.stale_finishes.clone(),
        );
        registry.register(
            "dash_worker_completed",
            "Runs that completed",
            m.completed.clone(),
        );
        registry.register("dash_worker_failed", "Runs that failed", m.failed.clone());
        WorkerMetrics { registry, ..m }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}
