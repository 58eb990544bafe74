//! Prometheus metrics on the metrics port, with the names the runbook greps:
//! `pg_up`, `pg_pool_*`, `pg_connection_errors_total`, `pg_failovers_total`,
//! `pg_query_seconds`, `dash_http_*`, `dash_agents`, `dash_swarms`.

use std::time::Duration;

use dash_store::pool::ConnErrorReason;
use dash_store::{PoolStatus, StoreObserver};
use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Metric, Registry};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

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

/// A metric of any type, so that all of them are registered from one table.
#[derive(Debug)]
struct Exported(Box<dyn Metric>);

impl EncodeMetric for Exported {
    fn encode(&self, encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        self.0.encode(encoder)
    }

    fn metric_type(&self) -> MetricType {
        self.0.metric_type()
    }
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
            agents: Family::default(),
            swarms: Family::default(),
            registry: Registry::default(),
        };
        let exported: [(&str, &str, Box<dyn Metric>); 15] = [
            (
                "pg_up",
                "1 when connected to a writable primary",
                Box::new(m.pg_up.clone()),
            ),
            (
                "pg_pool_max_size",
                "Maximum pool connections",
                Box::new(m.pool_max_size.clone()),
            ),
            (
                "pg_pool_size",
                "Open pool connections",
                Box::new(m.pool_size.clone()),
            ),
            (
                "pg_pool_idle",
                "Idle pool connections",
                Box::new(m.pool_idle.clone()),
            ),
            (
                "pg_pool_in_use",
                "Pool connections checked out",
                Box::new(m.pool_in_use.clone()),
            ),
            (
                "pg_pool_waiting",
                "Callers waiting for a pool connection",
                Box::new(m.pool_waiting.clone()),
            ),
            (
                "pg_pool_acquire_timeouts",
                "Callers that gave up waiting for a pool connection",
                Box::new(m.acquire_timeouts.clone()),
            ),
            (
                "pg_pool_acquire_seconds",
                "Time to obtain a pool connection",
                Box::new(m.acquire_seconds.clone()),
            ),
            (
                "pg_connection_errors",
                "Failed connection attempts and lost connections, by reason",
                Box::new(m.connection_errors.clone()),
            ),
            (
                "pg_failovers",
                "Primary changes the API followed",
                Box::new(m.failovers.clone()),
            ),
            (
                "pg_query_seconds",
                "Duration of database calls",
                Box::new(m.query_seconds.clone()),
            ),
            (
                "dash_http_requests",
                "HTTP requests by route and status",
                Box::new(m.http_requests.clone()),
            ),
            (
                "dash_http_request_duration_seconds",
                "HTTP request latency by route",
                Box::new(m.http_duration.clone()),
            ),
            (
                "dash_agents",
                "Agents by status",
                Box::new(m.agents.clone()),
            ),
            (
                "dash_swarms",
                "Swarms by status",
                Box::new(m.swarms.clone()),
            ),
        ];
        for (name, help, metric) in exported {
            r.register(name, help, Exported(metric));
        }
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
