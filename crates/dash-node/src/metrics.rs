//! The agent's Prometheus metrics (served at `/metrics` on the node port):
//! `dash_node_leader`, `dash_node_lease_remaining_seconds`,
//! `dash_node_role{role}`, `dash_node_decisions_total{decision,outcome}`,
//! `dash_node_replication_lag_bytes`, `dash_node_etcd_up`, and WAL
//! archiving's `dash_node_archive_*` (`archive.rs`).

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RoleLabel {
    pub role: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    pub decision: String,
    pub outcome: String,
}

/// Every role label value, so each series exists from the start.
pub const ROLES: [&str; 5] = ["primary", "replica", "stopped", "fenced", "starting"];

pub struct NodeMetrics {
    registry: Registry,
    pub leader: Gauge,
    pub lease_remaining: Gauge<f64, AtomicU64>,
    pub role: Family<RoleLabel, Gauge>,
    pub decisions: Family<DecisionLabels, Counter>,
    pub lag_bytes: Gauge,
    pub etcd_up: Gauge,
    pub archive: crate::archive::ArchiveMetrics,
}

impl NodeMetrics {
    pub fn new() -> NodeMetrics {
        let mut registry = Registry::default();
        let m = NodeMetrics {
            leader: Gauge::default(),
            lease_remaining: Gauge::default(),
            role: Family::default(),
            decisions: Family::default(),
            lag_bytes: Gauge::default(),
            etcd_up: Gauge::default(),
            archive: Default::default(),
            registry: Registry::default(),
        };
        registry.register(
            "dash_node_leader",
            "1 while this member holds the leader key",
            m.leader.clone(),
        );
        registry.register(
            "dash_node_lease_remaining_seconds",
            "Time left of certain validity of this member's etcd lease",
            m.lease_remaining.clone(),
        );
        registry.register(
            "dash_node_role",
            "1 for the role this member's PostgreSQL has now",
            m.role.clone(),
        );
        registry.register(
            "dash_node_decisions",
            "HA decisions taken by this agent, by outcome",
            m.decisions.clone(),
        );
        registry.register(
            "dash_node_replication_lag_bytes",
            "Replica: bytes behind the leader's last reported LSN",
            m.lag_bytes.clone(),
        );
        registry.register(
            "dash_node_etcd_up",
            "1 when etcd answered this agent's last read",
            m.etcd_up.clone(),
        );
        m.archive.register(&mut registry);
        for r in ROLES {
            let _ = m.role.get_or_create(&RoleLabel { role: r.into() });
        }
        NodeMetrics { registry, ..m }
    }

    pub fn set_role(&self, role: &str) {
        for r in ROLES {
            self.role
                .get_or_create(&RoleLabel { role: r.into() })
                .set(i64::from(r == role));
        }
    }

    pub fn decision(&self, decision: &str, ok: bool) {
        self.decisions
            .get_or_create(&DecisionLabels {
                decision: decision.into(),
                outcome: if ok { "ok" } else { "error" }.into(),
            })
            .inc();
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

impl Default for NodeMetrics {
    fn default() -> Self {
        NodeMetrics::new()
    }
}
