//! Why a failover or switchover did not happen (or did not finish): the
//! operator's answer says it, and `metric_label` names it in a bounded set.

use dash_pg::PgError;

use crate::local::ClusterError;

#[derive(Debug, thiserror::Error)]
pub enum FailoverError {
    /// No replica may be promoted without losing acknowledged writes.
    #[error("{0}")]
    Refused(String),
    /// The candidate is further behind the primary than the operator allows.
    #[error("{node} is {lag} bytes behind the primary's last known position (limit {limit})")]
    LagLimit { node: String, lag: u64, limit: u64 },
    /// The operator's target is behind the most advanced replica.
    #[error("{target} is behind {best}; promoting it would lose writes")]
    TargetBehind { target: String, best: String },
    #[error("fencing {node} failed: {source}")]
    Fence { node: String, source: ClusterError },
    #[error("promoting {node} failed: {source}")]
    Promote { node: String, source: ClusterError },
    /// The promoted node did not accept the confirming write.
    #[error("promoting {node} failed: {reason}")]
    Confirm { node: String, reason: String },
    #[error("no primary recorded")]
    NoPrimary,
    #[error("the primary is not answering; use dashctl db failover")]
    PrimaryDown,
    #[error("{0} is not a healthy replica")]
    UnhealthyTarget(String),
    /// A switchover's target has not caught up with the primary.
    #[error("{node} is {lag} bytes behind the primary (limit {limit}); wait for it to catch up")]
    NotCaughtUp { node: String, lag: u64, limit: u64 },
    #[error("stopping {node} failed: {source}")]
    Stop { node: String, source: Box<PgError> },
    #[error("pg_controldata did not report the latest checkpoint")]
    NoCheckpoint,
    /// The target did not receive the old primary's last WAL; the old primary took writes back.
    #[error("{node} did not receive the final checkpoint {lsn}; switchover undone")]
    CheckpointNotReceived { node: String, lsn: String },
    #[error("{new} is primary, but restarting {old} as its replica failed: {source}")]
    RestartOldPrimary {
        new: String,
        old: String,
        source: Box<PgError>,
    },
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// A blocking task (pg_ctl, a server stop or start) panicked or was cancelled.
    #[error("{0}")]
    Task(#[from] tokio::task::JoinError),
}

impl From<PgError> for FailoverError {
    fn from(e: PgError) -> Self {
        FailoverError::Cluster(e.into())
    }
}

impl FailoverError {
    /// A short, stable label per variant, for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            FailoverError::Refused(_) => "refused",
            FailoverError::LagLimit { .. } => "lag_limit",
            FailoverError::TargetBehind { .. } => "target_behind",
            FailoverError::Fence { .. } => "fence",
            FailoverError::Promote { .. } => "promote",
            FailoverError::Confirm { .. } => "confirm",
            FailoverError::NoPrimary => "no_primary",
            FailoverError::PrimaryDown => "primary_down",
            FailoverError::UnhealthyTarget(_) => "unhealthy_target",
            FailoverError::NotCaughtUp { .. } => "not_caught_up",
            FailoverError::Stop { .. } => "stop",
            FailoverError::NoCheckpoint => "no_checkpoint",
            FailoverError::CheckpointNotReceived { .. } => "checkpoint_not_received",
            FailoverError::RestartOldPrimary { .. } => "restart_old_primary",
            FailoverError::Cluster(_) => "cluster",
            FailoverError::Task(_) => "task",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pg_error() -> PgError {
        PgError::io("x", std::io::Error::other("y"))
    }

    fn cluster_error() -> ClusterError {
        ClusterError::Invalid("x".into())
    }

    #[tokio::test]
    async fn each_variant_has_its_own_stable_label() {
        let join_error = tokio::spawn(async { panic!("task failed") })
            .await
            .unwrap_err();
        let node = || "node1".to_string();
        let cases = vec![
            (FailoverError::Refused("r".into()), "refused"),
            (
                FailoverError::LagLimit {
                    node: node(),
                    lag: 2,
                    limit: 1,
                },
                "lag_limit",
            ),
            (
                FailoverError::TargetBehind {
                    target: node(),
                    best: "node2".into(),
                },
                "target_behind",
            ),
            (
                FailoverError::Fence {
                    node: node(),
                    source: cluster_error(),
                },
                "fence",
            ),
            (
                FailoverError::Promote {
                    node: node(),
                    source: cluster_error(),
                },
                "promote",
            ),
            (
                FailoverError::Confirm {
                    node: node(),
                    reason: "r".into(),
                },
                "confirm",
            ),
            (FailoverError::NoPrimary, "no_primary"),
            (FailoverError::PrimaryDown, "primary_down"),
            (FailoverError::UnhealthyTarget(node()), "unhealthy_target"),
            (
                FailoverError::NotCaughtUp {
                    node: node(),
                    lag: 2,
                    limit: 1,
                },
                "not_caught_up",
            ),
            (
                FailoverError::Stop {
                    node: node(),
                    source: Box::new(pg_error()),
                },
                "stop",
            ),
            (FailoverError::NoCheckpoint, "no_checkpoint"),
            (
                FailoverError::CheckpointNotReceived {
                    node: node(),
                    lsn: "0/1".into(),
                },
                "checkpoint_not_received",
            ),
            (
                FailoverError::RestartOldPrimary {
                    new: node(),
                    old: "node0".into(),
                    source: Box::new(pg_error()),
                },
                "restart_old_primary",
            ),
            (FailoverError::from(pg_error()), "cluster"),
            (FailoverError::Task(join_error), "task"),
        ];
        let mut seen = std::collections::HashSet::new();
        for (e, label) in &cases {
            assert_eq!(e.metric_label(), *label, "{e:?}");
            assert!(seen.insert(*label), "{label} used twice");
        }
    }
}
