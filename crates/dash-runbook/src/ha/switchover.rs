//! `dashctl db switchover --etcd`: runbook scenario 3, planned and
//! zero-loss, done by the node agents. This command checks the guard rails,
//! files `Request::Switchover` in etcd, and watches (`request.rs`): the
//! leader narrows the sync set to the target, stops cleanly and releases
//! the key; the target takes it and promotes. Done when another member
//! holds the key and its node API answers `/primary` 200; an agent's
//! refusal is reported with the reason it recorded.

use std::time::Duration;

use dash_dcs::Request;

use super::request::{file_and_watch, none_pending, pick_target, read, Watched};
pub use super::request::{Outcome, RequestReport as SwitchoverReport};
use super::{EtcdTarget, HaView};
use crate::output::duration;
use crate::{confirm, RunbookError};

#[derive(Debug, Clone)]
pub struct SwitchoverOptions {
    /// The standby to hand over to (default: the recorded synchronous standby).
    pub target: Option<String>,
    pub dry_run: bool,
    pub yes: bool,
    /// How long to wait for a new leader whose `/primary` answers 200.
    pub wait: Duration,
}

/// The guard rails: `(from, to)` when a switchover may be filed, else why not.
pub fn check(ha: &HaView, target: Option<&str>) -> Result<(String, String), String> {
    let Some(from) = ha.leader.clone() else {
        return Err("no member holds the leader key: there is no primary to switch over from (the agents promote a synchronous standby on their own)".into());
    };
    let to = pick_target("switchover", target, ha.standbys(), &from)?;
    match ha.member(&to) {
        Some(m) if m.role == "replica" && m.streaming => {}
        Some(m) => {
            return Err(format!(
                "{to} is not streaming from {from} (it reports role {}, streaming {})",
                m.role, m.streaming
            ))
        }
        None => {
            return Err(format!(
                "{to} has no member record: its agent is not running"
            ))
        }
    }
    none_pending(ha.request.as_ref())?;
    Ok((from, to))
}

/// The steps, as `--dry-run` prints them.
pub fn plan(ha: &HaView, from: &str, to: &str, wait: Duration) -> Vec<String> {
    vec![
        format!("1. check: {from} holds the leader key, {to} is a recorded synchronous standby and streams, no request is pending (checked now: ok)"),
        format!("2. file in etcd (cluster {}): switchover from {from} to {to}", ha.cluster),
        format!("3. {from}'s agent narrows the synchronous standby set to {to}, stops PostgreSQL cleanly (its shutdown checkpoint reaches {to}) and releases the leader key"),
        format!("4. {to}'s agent takes the key and promotes; {from} rejoins as its replica"),
        format!("5. check: another member holds the key and its node API answers /primary 200, within {}; a refusal is reported with the agent's reason", duration(wait)),
    ]
}

/// Checks, files the request, and waits for the new leader.
pub async fn switchover(
    etcd: &EtcdTarget,
    opts: &SwitchoverOptions,
) -> Result<SwitchoverReport, RunbookError> {
    let before = read(etcd).await?;
    let ha = &before.ha;
    let (from, to) = check(ha, opts.target.as_deref()).map_err(RunbookError::Refused)?;
    let steps = plan(ha, &from, &to, opts.wait);
    let mut report = SwitchoverReport::planned("switchover", &etcd.cluster, steps);
    (report.from, report.to) = (Some(from.clone()), to.clone());
    if opts.dry_run {
        return Ok(report);
    }
    confirm::confirm(
        &format!("switch the primary over from {from} to {to}"),
        &format!(
            "Switch over cluster {} from {from} to {to}? {from} stops and {to} becomes the primary.",
            etcd.cluster
        ),
        opts.yes,
    )?;
    let watched = Watched {
        kind: "switchover",
        request: Request::Switchover {
            from: from.clone(),
            to: opts.target.clone(),
        },
        wait: opts.wait,
        from: Some(&from),
        to: &to,
        actor: &from,
        waiting: format!(
            "waiting for {from}'s agent: narrow the sync set to {to}, stop cleanly, release the key"
        ),
    };
    file_and_watch(etcd, &before, &watched, &mut report).await?;
    Ok(report)
}
