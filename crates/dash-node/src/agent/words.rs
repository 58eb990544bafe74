//! The agent's small pure helpers: how a decision reads in the log and the
//! history, which role a server has, the names in a synchronous setting.

use dash_dcs::ClusterView;

use crate::decide::Action;
use crate::local::Observed;

/// The standbys recorded for `me` as leader (none if another led last).
pub(super) fn own_sync_standbys(view: Option<&ClusterView>, me: &str) -> Vec<String> {
    view.and_then(|v| v.sync.as_ref())
        .filter(|s| s.value.leader == me)
        .map(|s| s.value.standbys.clone())
        .unwrap_or_default()
}

pub(super) fn role_of(obs: &Observed, needs_rewind: bool) -> &'static str {
    match (obs.running, obs.in_recovery) {
        (true, Some(false)) => "primary",
        (true, Some(true)) => "replica",
        (true, None) => "starting",
        (false, _) if needs_rewind => "fenced",
        (false, _) => "stopped",
    }
}

pub(super) fn describe(action: &Action) -> String {
    match action {
        Action::Fence(why) => format!("fence: {why}"),
        Action::Release(why) => format!("release the leader key: {why}"),
        Action::ClaimInitialize => "claim the initialization of a new cluster".into(),
        Action::Clone(m) => format!("clone from {}", m.name),
        Action::StartReplica(Some(m)) => format!("start as a standby of {}", m.name),
        Action::StartReplica(None) => "start as a standby (no leader yet)".into(),
        Action::RestartPrimary => "restart postgres as primary".into(),
        Action::Acquire => "take the leader key".into(),
        Action::Reclaim { old_lease } => {
            format!("move the leader key from our old lease {old_lease:x}")
        }
        Action::Promote => "promote".into(),
        Action::Follow(m) => format!("follow {}", m.name),
        Action::SwitchOver { to, .. } => format!("switch over to {to}"),
        Action::FailOver { to, .. } => {
            format!("fail over to {to}: fence postgres at once and release the leader key")
        }
        Action::TakeOver { why, .. } => format!("take the leader key and promote: {why}"),
        Action::Refuse { reason, .. } => format!("refuse the request: {reason}"),
        Action::HaltStop(why) => format!("stop postgres and give up the key: {why}"),
        Action::SetAside(why) => format!("set the data directory aside: {why}"),
        Action::Wait(_) | Action::Steady => String::new(),
    }
}

/// Names in `FIRST 1 ("a", "b")`.
pub(super) fn quoted_names(setting: &str) -> Vec<String> {
    setting
        .split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

pub(super) fn done<T>(r: Result<T, dash_pg::PgError>) -> Result<(), String> {
    r.map(drop).map_err(|e| dash_core::error_chain(&e))
}

pub(super) fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_names_of_the_synchronous_setting() {
        assert_eq!(
            super::quoted_names("FIRST 1 (\"b\", \"c-1\")"),
            vec!["b", "c-1"]
        );
        assert!(super::quoted_names("").is_empty());
        // What the agent writes, it reads back.
        let names = vec!["m1".to_string(), "postgres-replica-0".to_string()];
        let value = crate::control::sync_names_value(&names);
        assert_eq!(value, "FIRST 1 (\"m1\", \"postgres-replica-0\")");
        assert_eq!(super::quoted_names(&value), names);
        assert_eq!(crate::control::sync_names_value(&[]), "");
    }
}
