//! Prometheus metrics on the metrics port, with the names the runbook greps:
//! `pg_up`, `pg_pool_*`, `pg_connection_errors_total`, `pg_failovers_total`,
//! `pg_query_seconds`, `dash_http_*`, `dash_agents`, `dash_swarms`.

use std::time::Duration;

use dash_store::pool::ConnErrorReason;
use dash_store::{PoolStatus, StoreObserver};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

// Every label value comes from a fixed set: `method` from
// `middleware::method_label`, `route` from the route table (or `unmatched`),
// `status` from the statuses Dash answers, `reason` from `ConnErrorReason`,
// the by-status gauges from the domain's status enums.

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: String,
    pub route: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: String,
}

fn latency_histogram() -> Histogram {
    Histogram::new([
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ])
}

/// Every metric Dash exports, registered once per process (no globals).
pub struct Metrics {
    registry: Registry,
    pub pg_up: Gauge,
    pub pool_max_size: Gauge,
    pub pool_size: Gauge,
    pub pool_idle: Gauge,
    pub pool_in_use: Gauge,
    pub pool_waiting: Gauge,
    pub acquire_timeouts: Counter,
    pub acquire_seconds: Histogram,
    pub connection_errors: Family<ReasonLabel, Counter>,
    pub failovers: Counter,
    pub query_seconds: Histogram,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    pub http_panics: Counter,
    pub agents: Family<StatusLabel, Gauge>,
    pub swarms: Family<StatusLabel, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut r = Registry::default();
        let m = Metrics {
            pg_up: Gauge::default(),
            pool_max_size: Gauge::default(),
            pool_size: Gauge::default(),
            pool_idle: Gauge::default(),
            pool_in_use: Gauge::default(),
            pool_waiting: Gauge::default(),
            acquire_timeouts: Counter::default(),
            acquire_seconds: latency_histogram(),
            connection_errors: Family::default(),
            failovers: Counter::default(),
            query_seconds: latency_histogram(),
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            http_panics: Counter::default(),
            agents: Family::default(),
            swarms: Family::default(),
            registry: Registry::default(),
        };
        r.register(
            "pg_up",
            "1 when connected to a writable primary",
            m.pg_up.clone(),
        );
        r.register(
            "pg_pool_max_size",
            "Maximum pool connections",
            m.pool_max_size.clone(),
        );
        r.register("pg_pool_size", "Open pool connections", m.pool_size.clone());
        r.register("pg_pool_idle", "Idle pool connections", m.pool_idle.clone());
        r.register(
            "pg_pool_in_use",
            "Pool connections checked out",
            m.pool_in_use.clone(),
        );
        r.register(
            "pg_pool_waiting",
            "Callers waiting for a pool connection",
            m.pool_waiting.clone(),
        );
        r.register(
            "pg_pool_acquire_timeouts",
            "Callers that gave up waiting for a pool connection",
            m.acquire_timeouts.clone(),
        );
        r.register(
            "pg_pool_acquire_seconds",
            "Time to obtain a pool connection",
            m.acquire_seconds.clone(),
        );
        r.register(
            "pg_connection_errors",
            "Failed connection attempts and lost connections, by reason",
            m.connection_errors.clone(),
        );
        r.register(
            "pg_failovers",
            "Primary changes the API followed",
            m.failovers.clone(),
        );
        r.register(
            "pg_query_seconds",
            "Duration of database calls",
            m.query_seconds.clone(),
        );
        r.register(
            "dash_http_requests",
            "HTTP requests by route and status",
            m.http_requests.clone(),
        );
        r.register(
            "dash_http_request_duration_seconds",
            "HTTP request latency by route",
            m.http_duration.clone(),
        );
        r.register(
            "dash_http_panics",
            "Requests whose handler panicked (answered 500)",
            m.http_panics.clone(),
        );
        r.register("dash_agents", "Agents by status", m.agents.clone());
        r.register("dash_swarms", "Swarms by status", m.swarms.clone());
        // Export every reason at 0 from the start, so `pg_connection_errors_total`
        // exists (and `rate()` works) before the first error.
        for reason in ConnErrorReason::ALL {
            let _ = m.connection_errors.get_or_create(&ReasonLabel {
                reason: reason.as_str().into(),
            });
        }
        Metrics { registry: r, ..m }
    }

    /// Copies the pool's numbers into the `pg_pool_*` gauges.
    pub fn set_pool(&self, s: PoolStatus) {
        self.pool_max_size.set(s.max_size as i64);
        self.pool_size.set(s.size as i64);
        self.pool_idle.set(s.idle as i64);
        self.pool_in_use.set(s.in_use as i64);
        self.pool_waiting.set(s.waiting as i64);
    }

    /// Replaces the counts of a by-status gauge family; statuses that vanished go to 0.
    pub fn set_counts(
        family: &Family<StatusLabel, Gauge>,
        known: &[&str],
        counts: &[(String, i64)],
    ) {
        for s in known {
            let n = counts.iter().find(|(k, _)| k == s).map_or(0, |(_, n)| *n);
            family
                .get_or_create(&StatusLabel {
                    status: s.to_string(),
                })
                .set(n);
        }
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

impl StoreObserver for Metrics {
    fn acquire(&self, waited: Duration) {
        self.acquire_seconds.observe(waited.as_secs_f64());
    }
    fn acquire_timeout(&self) {
        self.acquire_timeouts.inc();
    }
    fn query(&self, took: Duration) {
        self.query_seconds.observe(took.as_secs_f64());
    }
    fn connection_error(&self, reason: ConnErrorReason) {
        self.connection_errors
            .get_or_create(&ReasonLabel {
                reason: reason.as_str().into(),
            })
            .inc();
    }
    fn failover(&self) {
        self.failovers.inc();
    }
}
