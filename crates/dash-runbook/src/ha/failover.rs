//! `dashctl db failover --etcd`: runbook scenario 3 ("promote the replica")
//! by the node agents, from any host. The command checks the guard rails,
//! files `Request::Failover` in etcd and watches (`request.rs`):
//! - a leader holds the key: its agent fences its PostgreSQL at once (no
//!   clean shutdown) and releases the key; the target, a recorded
//!   synchronous standby (so no acknowledged write is lost), takes it and
//!   promotes; the old leader rejoins by a rewind. A leader whose node API
//!   does not answer keeps its key until its agent acts or its lease
//!   expires: nobody deletes another member's key.
//! - the key is free and no recorded synchronous standby runs: only with
//!   `--accept-data-loss` may the named standby take it (it may lack
//!   acknowledged writes); its agent records that choice in the history.

use std::time::Duration;

use dash_dcs::Request;

use super::render::list;
use super::request::{file_and_watch, none_pending, pick_target, read, RequestReport, Watched};
use super::{ask_node_apis, EtcdTarget, HaView};
use crate::output::duration;
use crate::{confirm, RunbookError};

#[derive(Debug, Clone)]
pub struct FailoverOptions {
    /// The member to promote (default: the recorded synchronous standby).
    pub target: Option<String>,
    /// With the key free: promote `target` although it is not a recorded
    /// synchronous standby (it may lack acknowledged writes).
    pub accept_data_loss: bool,
    pub dry_run: bool,
    pub yes: bool,
    /// How long to wait for a new leader whose `/primary` answers 200.
    pub wait: Duration,
}

/// What the guard rails found: the failover that may be filed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The key holder (none: the key is free).
    pub from: Option<String>,
    pub to: String,
    /// `to` is not a recorded synchronous standby: it may lack writes the
    /// last leader acknowledged (`--accept-data-loss` was given).
    pub data_loss: bool,
    /// The key holder's node API did not answer (its lease is alive).
    pub leader_silent: bool,
}

/// The guard rails, as pure rules over the HA view.
pub fn check(ha: &HaView, target: Option<&str>, accept_data_loss: bool) -> Result<Checked, String> {
    none_pending(ha.request.as_ref())?;
    if let Some(from) = &ha.leader {
        if accept_data_loss {
            return Err(format!("--accept-data-loss is only for a free leader key; {from} holds it, so the failover goes to a recorded synchronous standby, which holds every acknowledged write: run it again without --accept-data-loss"));
        }
        let to = pick_target("failover", target, ha.standbys(), from)?;
        runs_as_standby(ha, &to)?;
        return Ok(Checked {
            from: Some(from.clone()),
            to,
            data_loss: false,
            leader_silent: ha.member(from).is_none_or(|m| !m.node_api.reachable),
        });
    }
    let (last, recorded) = match &ha.sync {
        Some(s) => (s.leader.as_str(), s.standbys.as_slice()),
        None => ("the last leader", &[][..]),
    };
    let runs = |name: &&String| ha.member(name).is_some_and(|m| m.role == "replica");
    let to = match target {
        Some(t) => t.to_string(),
        None => recorded.iter().find(runs).cloned().ok_or_else(|| {
            format!("no member holds the leader key and no recorded synchronous standby of {last} runs ({}): name the member to promote with --target; one that is not a recorded synchronous standby needs --accept-data-loss", standbys_state(ha, recorded))
        })?,
    };
    runs_as_standby(ha, &to)?;
    let holds_everything = recorded.contains(&to) || last == to;
    if !holds_everything {
        if !accept_data_loss {
            return Err(format!("{to} is not a recorded synchronous standby of {last}: it may lack writes {last} acknowledged, and promoting it would lose them for good. The recorded synchronous standby: {}. Bring it back (its agent then takes the key with nothing lost), or run again with --accept-data-loss to promote {to} anyway", standbys_state(ha, recorded)));
        }
        if let Some(s) = recorded.iter().find(runs) {
            return Err(format!("{s}, a recorded synchronous standby of {last}, runs and takes the leader key with nothing lost: --accept-data-loss is not needed (wait, or pass --target {s})"));
        }
    }
    Ok(Checked {
        from: None,
        to,
        data_loss: !holds_everything,
        leader_silent: false,
    })
}

/// The target must have an agent whose server runs as a standby.
fn runs_as_standby(ha: &HaView, to: &str) -> Result<(), String> {
    match ha.member(to) {
        Some(m) if m.role == "replica" => Ok(()),
        Some(m) => Err(format!(
            "{to} is not running as a standby (its agent reports role {})",
            m.role
        )),
        None => Err(format!(
            "{to} has no member record: its agent is not running"
        )),
    }
}

/// `a2 (its agent is not running)`, one per recorded standby.
fn standbys_state(ha: &HaView, recorded: &[String]) -> String {
    let each: Vec<String> = (recorded.iter())
        .map(|s| match ha.member(s) {
            Some(m) => format!("{s} (role {})", m.role),
            None => format!("{s} (its agent is not running)"),
        })
        .collect();
    list(&each)
}

/// The steps, as `--dry-run` prints them.
pub fn plan(ha: &HaView, c: &Checked, wait: Duration) -> Vec<String> {
    let (to, cluster, waited) = (&c.to, &ha.cluster, duration(wait));
    let last = ha.sync.as_ref().map_or("the last leader", |s| &s.leader);
    let mut steps = match &c.from {
        Some(from) => vec![
            format!("1. check: {from} holds the leader key, {to} is a recorded synchronous standby of {from} and runs as a standby, no request is pending (checked now: ok)"),
            format!("2. file in etcd (cluster {cluster}): failover from {from} to {to}"),
            format!("3. {from}'s agent fences its PostgreSQL at once (SIGKILL every process of its data directory, no clean shutdown; it can only start again as a rewound standby) and releases the leader key"),
            format!("4. {to}'s agent takes the key and promotes; as the synchronous standby it holds every write {from} acknowledged; {from} rejoins as its replica by pg_rewind"),
        ],
        None => vec![
            match c.data_loss {
                true => format!("1. check: no member holds the leader key, {to} runs as a standby, no recorded synchronous standby of {last} runs, no request is pending (checked now: ok); {to} is NOT a recorded synchronous standby of {last}: writes {last} acknowledged may be lost (--accept-data-loss)"),
                false => format!("1. check: no member holds the leader key, {to} is a recorded synchronous standby of {last} and runs as a standby, no request is pending (checked now: ok)"),
            },
            format!("2. file in etcd (cluster {cluster}): failover to {to}{}; while it stands no other member takes the key", if c.data_loss { ", accepting data loss" } else { "" }),
            format!("3. {to}'s agent takes the key (the /sync record rewritten for {to}: no standby until one catches up), promotes on a new timeline, and records its choice in the HA history; the others rewind onto it when they return"),
        ],
    };
    if let (Some(from), true) = (&c.from, c.leader_silent) {
        steps[0].push_str(&format!("; but {from}'s node API does not answer and its lease is alive, so nobody may take or delete its key: its agent acts on the request if it still reaches etcd, or its lease expires and the agents promote the synchronous standby"));
    }
    steps.push(format!("{}. check: another member holds the key and its node API answers /primary 200, within {waited}; a request nobody acted on is then withdrawn; a refusal is reported with the agent's reason", steps.len() + 1));
    steps
}

/// Checks, files the request, and waits for the new leader.
pub async fn failover(
    etcd: &EtcdTarget,
    opts: &FailoverOptions,
) -> Result<RequestReport, RunbookError> {
    let mut before = read(etcd).await?;
    ask_node_apis(&mut before.ha).await;
    let ha = &before.ha;
    let c =
        check(ha, opts.target.as_deref(), opts.accept_data_loss).map_err(RunbookError::Refused)?;
    let mut report = RequestReport::planned("failover", &etcd.cluster, plan(ha, &c, opts.wait));
    (report.from, report.to) = (c.from.clone(), c.to.clone());
    report.accept_data_loss = c.data_loss;
    if opts.dry_run {
        return Ok(report);
    }
    let (action, question) = confirmation(ha, &c);
    confirm::confirm(&action, &question, opts.yes)?;
    let to = c.to.as_str();
    let request = Request::Failover {
        from: c.from.clone(),
        to: Some(c.to.clone()),
        accept_data_loss: c.data_loss,
    };
    let (actor, waiting) = match c.from.as_deref() {
        Some(from) if c.leader_silent => (from, format!("{from}'s node API does not answer and its lease is alive: waiting for its agent to act, or for its lease to expire (nobody deletes its key)")),
        Some(from) => (from, format!("waiting for {from}'s agent: fence PostgreSQL at once, release the key to {to}")),
        None => (to, format!("waiting for {to}'s agent to take the free leader key and promote")),
    };
    let watched = Watched {
        kind: "failover",
        request,
        wait: opts.wait,
        from: c.from.as_deref(),
        to,
        actor,
        waiting,
    };
    file_and_watch(etcd, &before, &watched, &mut report).await?;
    Ok(report)
}

/// What the operator confirms: `(action, question)`.
fn confirmation(ha: &HaView, c: &Checked) -> (String, String) {
    let (to, cluster) = (&c.to, &ha.cluster);
    let last = ha.sync.as_ref().map_or("the last leader", |s| &s.leader);
    match (&c.from, c.data_loss) {
        (Some(from), _) => (
            format!("fail over from {from} to {to}"),
            format!("Fail over cluster {cluster} from {from} to {to}? {from}'s PostgreSQL is killed at once and {to} becomes the primary."),
        ),
        (None, false) => (
            format!("promote {to}"),
            format!("Promote {to} in cluster {cluster}, whose leader key is free?"),
        ),
        (None, true) => (
            format!("promote {to} accepting data loss"),
            format!("Promote {to} in cluster {cluster} although it is not a recorded synchronous standby of {last}? Writes {last} acknowledged that {to} lacks are LOST for good."),
        ),
    }
}
