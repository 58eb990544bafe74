//! What `diagnose` names and what it reads: the runbook's situations, a
//! finding with its evidence and fix, and the signals classification works
//! from. Plain data shared by [`crate::classify`] (pure rules) and
//! [`crate::diagnose`] (the I/O that gathers the signals).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::amcheck::Amcheck;
use super::connections::Session;
use super::ha::HaView;
use super::metrics::ApiMetrics;
use super::pool_advice::PoolAdvice;
use super::probe::NodeProbe;
use super::sequences::SequenceState;

/// The situations diagnose can name, each with its own exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Situation {
    Healthy,
    /// Scenario 1: a temporary connection issue (or a node that needs a restart).
    TransientConnection,
    /// Scenario 2: data corruption.
    Corruption,
    /// Scenario 3: the primary is lost and a replica can be promoted.
    PrimaryLost,
    /// Scenario 4: connection pool exhaustion.
    PoolExhaustion,
}

impl Situation {
    /// 0 healthy, 10 × the scenario number otherwise.
    pub fn exit_code(self) -> u8 {
        match self {
            Situation::Healthy => 0,
            Situation::TransientConnection => 10,
            Situation::Corruption => 20,
            Situation::PrimaryLost => 30,
            Situation::PoolExhaustion => 40,
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Situation::Healthy => "healthy",
            Situation::TransientConnection => "scenario 1: connection issue",
            Situation::Corruption => "scenario 2: database corruption",
            Situation::PrimaryLost => "scenario 3: primary lost, a replica can be promoted",
            Situation::PoolExhaustion => "scenario 4: connection pool exhaustion",
        }
    }

    /// Which finding wins when several are present: the one whose fix also
    /// removes the others' symptoms.
    pub(crate) fn rank(self) -> u8 {
        match self {
            Situation::PrimaryLost => 0,
            Situation::Corruption => 1,
            Situation::PoolExhaustion => 2,
            Situation::TransientConnection => 3,
            Situation::Healthy => 4,
        }
    }
}

/// One situation with its evidence and the commands that fix it.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub situation: Situation,
    pub evidence: Vec<String>,
    pub fix: Vec<String>,
}

/// Everything classification reads (no I/O: unit-testable).
#[derive(Debug, Clone, Default)]
pub struct Signals {
    /// The first probe of every node.
    pub first: Vec<NodeProbe>,
    /// The last probe of every node (same order).
    pub last: Vec<NodeProbe>,
    /// Nodes that failed at first and answered within the window: after how long.
    pub recovered_after: BTreeMap<String, Duration>,
    pub window: Duration,
    pub metrics_before: Option<ApiMetrics>,
    pub metrics_after: Option<ApiMetrics>,
    pub metrics_gap: Duration,
    /// Idle-in-transaction sessions on the primary older than `idle_threshold`.
    pub idle_in_transaction: Vec<Session>,
    pub idle_threshold: Duration,
    pub connection_ratio: f64,
    pub amcheck: Option<Amcheck>,
    /// etcd and the node agents, when etcd is configured.
    pub ha: Option<HaView>,
    /// Every sequence owned by a column, read on the primary.
    pub sequences: Vec<SequenceState>,
    /// The pool size the observation supports (see [`crate::pool_advice`]).
    pub pool_advice: Option<PoolAdvice>,
}
