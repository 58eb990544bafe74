//! Operator requests in the decision (pure, like the rest of `decide`):
//! - the key holder's switchover (clean stop) and failover (fence at once),
//!   each only to a recorded synchronous standby whose agent runs;
//! - a failover filed while the key is free: only its target may take the
//!   key, and only if it is a recorded synchronous standby or the operator
//!   accepted that it may lack acknowledged writes (and no recorded standby
//!   runs, which would take the key with nothing lost). The other members
//!   hold back while it stands.

use dash_dcs::{ClusterView, Request};

use super::{list, Action, Facts};

/// What a failover filed while the key was free asks of this member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Standing {
    /// This member is the target, and this is its step.
    Act(Action),
    /// This member is the target but must run as a standby first: the
    /// usual rules start it.
    Prepare,
    /// Another member is the target: this one must not take the key.
    HoldBack(String),
}

/// The standbys recorded for `leader` (none when the set is another's).
fn recorded_for<'a>(view: &'a ClusterView, leader: &str) -> &'a [String] {
    match &view.sync {
        Some(s) if s.value.leader == leader => &s.value.standbys,
        _ => &[],
    }
}

/// `to` when it is a recorded standby, else the first recorded one.
fn recorded_target(to: Option<&String>, standbys: &[String]) -> Result<String, String> {
    match to {
        Some(t) if standbys.contains(t) => Ok(t.clone()),
        Some(t) => Err(format!(
            "{t} is not a synchronous standby (recorded: {})",
            list(standbys)
        )),
        None => standbys
            .first()
            .cloned()
            .ok_or_else(|| "no synchronous standby is recorded to take over".into()),
    }
}

fn refuse(revision: i64, reason: String) -> Action {
    Action::Refuse {
        request_revision: revision,
        reason,
    }
}

/// The key holder's planned work, once its server answered: a switchover,
/// or a failover still waiting for its target.
pub(super) fn leader_request(f: &Facts, view: &ClusterView) -> Action {
    let Some(req) = &view.request else {
        return Action::Steady;
    };
    let revision = req.mod_revision;
    let (from, to) = match &req.value {
        Request::Switchover { from, to } => (from, to),
        Request::Failover { .. } => return holder_failover(f, view).unwrap_or(Action::Steady),
    };
    if from != f.me {
        return refuse(
            revision,
            format!("switchover from {from}, but {} is the primary", f.me),
        );
    }
    let target = match recorded_target(to.as_ref(), recorded_for(view, f.me)) {
        Ok(t) => t,
        Err(why) => return refuse(revision, why),
    };
    let ready = view
        .member(&target)
        .is_some_and(|m| m.role == "replica" && m.streaming);
    if !ready {
        return Action::Wait(format!("switchover: {target} is not streaming yet"));
    }
    Action::SwitchOver {
        to: target,
        request_revision: revision,
    }
}

/// The key holder and a failover request, whatever its own server's state
/// (it is often sick): fence and release to the target, wait for the
/// target, or refuse. `None` without a failover request.
pub(super) fn holder_failover(f: &Facts, view: &ClusterView) -> Option<Action> {
    let req = view.request.as_ref()?;
    let Request::Failover { from, to, .. } = &req.value else {
        return None;
    };
    let revision = req.mod_revision;
    if from.as_deref() != Some(f.me) {
        let why = match (from, to) {
            (_, Some(t)) if t == f.me => format!("{} already holds the leader key", f.me),
            (Some(from), _) => format!("failover from {from}, but {} holds the leader key", f.me),
            (None, _) => format!(
                "the failover was filed while the leader key was free; {} holds it now",
                f.me
            ),
        };
        return Some(refuse(revision, why));
    }
    let target = match recorded_target(to.as_ref(), recorded_for(view, f.me)) {
        Ok(t) => t,
        Err(why) => return Some(refuse(revision, why)),
    };
    Some(match view.member(&target) {
        None => refuse(
            revision,
            format!("{target} has no member record: its agent is not running"),
        ),
        Some(m) if m.role != "replica" => Action::Wait(format!(
            "failover: {target} is not running as a standby (role {})",
            m.role
        )),
        Some(_) => Action::FailOver {
            to: target,
            request_revision: revision,
        },
    })
}

/// [`holder_failover`] when it changes something now: a key holder whose
/// server is sick or stopped keeps to the usual rules while it waits.
pub(super) fn holder_failover_now(f: &Facts, view: &ClusterView) -> Option<Action> {
    holder_failover(f, view).filter(|a| !matches!(a, Action::Wait(_)))
}

/// A member while the key is free and a failover filed meanwhile stands.
/// `None`: no such request (a failover with a leader is carried on by the
/// usual rules once the leader released the key).
pub(super) fn free_key(f: &Facts, view: &ClusterView) -> Option<Standing> {
    let req = view.request.as_ref()?;
    let Request::Failover {
        from: None,
        to: Some(to),
        accept_data_loss,
    } = &req.value
    else {
        return None;
    };
    if to != f.me {
        return Some(Standing::HoldBack(format!(
            "an operator failover to {to} stands: only {to} may take the leader key"
        )));
    }
    let revision = req.mod_revision;
    let last = view.sync.as_ref().map(|s| s.value.leader.as_str());
    let recorded = last.map_or(&[][..], |l| recorded_for(view, l));
    let last = last.unwrap_or("the last leader");
    let holds_everything = recorded.iter().any(|s| s == f.me) || last == f.me;
    if !holds_everything && !accept_data_loss {
        return Some(Standing::Act(refuse(
            revision,
            format!(
                "{} is not a recorded synchronous standby of {last} (recorded: {}): it may lack writes {last} acknowledged",
                f.me,
                list(recorded)
            ),
        )));
    }
    let running_standby = recorded
        .iter()
        .find(|s| *s != f.me && view.member(s).is_some_and(|m| m.role == "replica"));
    if let (false, Some(s)) = (holds_everything, running_standby) {
        return Some(Standing::Act(refuse(
            revision,
            format!("{s}, a recorded synchronous standby of {last}, runs: it takes the leader key with no acknowledged write lost"),
        )));
    }
    let local = &f.local;
    if !(local.running && local.in_recovery == Some(true)) {
        return Some(Standing::Prepare);
    }
    if !f.lease.is_some_and(|l| l.valid_at(f.now)) {
        return Some(Standing::Act(Action::Wait(
            "failover: our etcd lease is not certainly valid".into(),
        )));
    }
    let why = match holds_everything {
        true => format!("operator failover to {}", f.me),
        false => format!(
            "operator failover accepting data loss: {} is not a recorded synchronous standby of {last} (recorded: {}); writes {last} acknowledged may be lost",
            f.me,
            list(recorded)
        ),
    };
    Some(Standing::Act(Action::TakeOver {
        request_revision: revision,
        why,
    }))
}
