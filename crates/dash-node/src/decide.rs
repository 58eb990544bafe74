//! What the agent does next, as a pure function of what it sees: its own
//! PostgreSQL, the cluster in etcd, and its lease. No I/O here; every rule
//! is unit-tested below.
//!
//! The invariants, in the order they are checked:
//! 1. A writable PostgreSQL runs only while this member certainly holds the
//!    leader key (its lease valid on our clock, the key naming us under that
//!    lease). Otherwise it is fenced at once.
//! 2. Only a member recorded in the `sync` key may take the key from a
//!    leader that is gone (or the last leader itself, which holds everything
//!    it acknowledged).
//! 3. A leader whose PostgreSQL died releases the key at once when a
//!    recorded standby is there to take over (the fast path); otherwise it
//!    restarts PostgreSQL in place.
//! 4. Operator requests (`requests.rs`) never bend 1 and 2, except that a
//!    failover filed while the key is free may let exactly its target take
//!    it when the operator accepted the loss of acknowledged writes.
//! 5. A halt (`halt.rs`, filed by a physical restore) comes before all of
//!    them: every server stops and nothing starts until it is lifted.

use std::time::Instant;

use dash_dcs::{ClusterView, LeaseState, MemberState};

use requests::{free_key, holder_failover_now, leader_request, Standing};

mod halt;
mod requests;

/// What the agent knows of its own PostgreSQL this tick.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Local {
    /// A postmaster runs on the data directory.
    pub running: bool,
    /// `pg_is_in_recovery()` answered this tick (`None`: no answer).
    pub in_recovery: Option<bool>,
    /// The server has not answered for longer than the hang limit.
    pub hung: bool,
    /// The data directory holds a cluster.
    pub has_data: bool,
    /// It was a primary (or fenced one) and must be rewound before following.
    pub needs_rewind: bool,
    /// The member its `primary_conninfo` points at.
    pub following: Option<String>,
    /// A restart is allowed now (the crash backoff elapsed).
    pub may_start: bool,
    /// This agent released the key recently (a switchover or the fast path):
    /// it must not take it back before a standby had its chance.
    pub released_recently: bool,
    /// A promotion was asked for moments ago and is still under way.
    pub promoting: bool,
    /// A running standby whose position has not grown for [`STALL_LIMIT`]
    /// (or longer, after re-follows): the timeline it is on (see
    /// [`cannot_follow`]).
    pub stalled_on: Option<u32>,
}

/// How long a standby's position may stay still before the agent looks at
/// whether it can follow its leader at all.
pub const STALL_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Everything a decision reads.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    pub me: &'a str,
    /// `None`: etcd could not be read this tick.
    pub view: Option<&'a ClusterView>,
    pub lease: Option<LeaseState>,
    pub now: Instant,
    pub local: Local,
    pub synchronous: bool,
}

/// The next step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Stop PostgreSQL at once (SIGKILL every process of the data directory)
    /// and make it start only as a standby that rewinds first.
    Fence(String),
    /// Fence, then delete the leader key so a standby takes over now.
    Release(String),
    /// Claim the one-time right to run `initdb`, and run it: start as
    /// primary (the key follows on the next tick).
    ClaimInitialize,
    /// Copy the leader's data directory (`pg_basebackup`).
    Clone(MemberState),
    /// Start as a standby following `leader` (rewinding first if needed), or
    /// following nobody while no leader is known.
    StartReplica(Option<MemberState>),
    /// Start again as primary after a crash or hang (leftover processes
    /// killed first; crash recovery; we hold the key).
    RestartPrimary,
    /// Take the free leader key; promote when running as a standby, start as
    /// primary when stopped (only the last leader does that: it holds every
    /// write it acknowledged, so it needs no rewind).
    Acquire,
    /// The key names us under an older lease of ours (the agent restarted):
    /// move it to the current lease in one conditional write.
    Reclaim { old_lease: i64 },
    /// We hold the key and run as a standby: promote.
    Promote,
    /// Follow a new leader: stop, rewind against it (nothing to do unless
    /// this standby received WAL the new leader never had), start.
    Follow(MemberState),
    /// Planned hand-over to a recorded standby: clean stop, release the key.
    SwitchOver { to: String, request_revision: i64 },
    /// Operator failover from this leader: fence at once (no clean stop),
    /// release the key to `to`, a recorded standby.
    FailOver { to: String, request_revision: i64 },
    /// Operator failover to this standby while the key is free: take it
    /// (the sync record rewritten for us) and promote; `why` goes to the
    /// history (it says when acknowledged writes may be lost).
    TakeOver { request_revision: i64, why: String },
    /// A request that cannot be carried out: drop it, saying why.
    Refuse {
        request_revision: i64,
        reason: String,
    },
    /// A halt stands: stop PostgreSQL cleanly (fast shutdown, no fence
    /// marker: the data stays fit to lead again if the restore is abandoned)
    /// and give up the leader key if this member holds it.
    HaltStop(String),
    /// A restore put another member's data in place: move this member's
    /// data directory aside (kept as `<data>.before-restore`), so that it is
    /// cloned from the restored primary once the halt is lifted.
    SetAside(String),
    /// Nothing to change (the reason is shown in `/status`).
    Wait(String),
    /// All is as it should be.
    Steady,
}

impl Action {
    /// The `decision` label of `dash_node_decisions_total`, or `None` for
    /// ticks that change nothing.
    pub fn metric_label(&self) -> Option<&'static str> {
        Some(match self {
            Action::Fence(_) => "fence",
            Action::Release(_) => "release",
            Action::ClaimInitialize => "bootstrap",
            Action::Clone(_) => "clone",
            Action::StartReplica(_) => "rejoin",
            Action::RestartPrimary => "restart",
            Action::Acquire | Action::Promote => "promote",
            Action::Reclaim { .. } => "reclaim",
            Action::Follow(_) => "follow",
            Action::SwitchOver { .. } => "demote",
            Action::FailOver { .. } => "fence",
            Action::TakeOver { .. } => "promote",
            Action::Refuse { .. } => "refuse",
            Action::HaltStop(_) => "halt",
            Action::SetAside(_) => "set_aside",
            Action::Wait(_) | Action::Steady => return None,
        })
    }
}

/// Decides the next step.
pub fn decide(f: &Facts) -> Action {
    let lease_ok = f.lease.is_some_and(|l| l.valid_at(f.now));
    let local = &f.local;
    let writable_or_unknown = local.running && local.in_recovery != Some(true);
    if let Some(h) = f.view.and_then(|v| v.halt.as_ref()) {
        return halt::halted(f, &h.value);
    }

    // Invariant 1: no writable server without certain leadership.
    if writable_or_unknown && !local.needs_rewind {
        if !lease_ok {
            return Action::Fence("the etcd lease is not certainly valid".into());
        }
        let Some(view) = f.view else {
            return Action::Wait("etcd unreadable; the lease is still valid".into());
        };
        match &view.leader {
            Some(l) if l.name != f.me => {
                return Action::Fence(format!("{} holds the leader key", l.name))
            }
            Some(l) if Some(l.lease) != f.lease.map(|s| s.id) => {
                return Action::Reclaim { old_lease: l.lease }
            }
            None => {
                return match free_key(f, view) {
                    Some(Standing::Act(a)) => a,
                    Some(Standing::HoldBack(why)) => Action::Fence(why),
                    _ if was_last_leader(f, view) => Action::Acquire,
                    _ => Action::Fence("the leader key is free but another member led last".into()),
                }
            }
            Some(_) => {}
        }
        if let Some(failover) = holder_failover_now(f, view) {
            return failover;
        }
        if local.hung {
            return release_or_restart(f, view, "postgres stopped answering");
        }
        if local.in_recovery.is_none() {
            return Action::Wait("postgres did not answer this tick".into());
        }
        return leader_request(f, view);
    }
    if local.running && local.needs_rewind {
        return Action::Fence("a demoted primary must be rewound before it runs".into());
    }

    let Some(view) = f.view else {
        return Action::Wait("etcd unreadable".into());
    };
    let leader = view.leader.as_ref();
    let leader_member = leader
        .filter(|l| l.name != f.me)
        .and_then(|l| view.member(&l.name).cloned());
    let i_hold = leader.is_some_and(|l| l.name == f.me);

    // The key under this member's current, certainly valid lease.
    let certain = lease_ok && leader.is_some_and(|l| Some(l.lease) == f.lease.map(|s| s.id));
    // A failover filed while the key is free: its target acts, others hold back.
    let mut hold_back = None;
    match leader.is_none().then(|| free_key(f, view)).flatten() {
        Some(Standing::Act(a)) => return a,
        Some(Standing::HoldBack(why)) => hold_back = Some(why),
        Some(Standing::Prepare) | None => {}
    }

    if !local.running {
        if !local.has_data {
            if i_hold {
                // The data directory is gone: the key must not stay frozen here.
                return Action::Release("this member has no data directory".into());
            }
            return match (&view.initialized_by, leader_member) {
                (None, _) => Action::ClaimInitialize,
                (Some(_), Some(_)) if !local.may_start => {
                    Action::Wait("waiting out the clone backoff".into())
                }
                (Some(_), Some(m)) => Action::Clone(m),
                (Some(_), None) => Action::Wait("no leader to clone from".into()),
            };
        }
        if i_hold && !local.needs_rewind {
            if let Some(failover) = holder_failover_now(f, view) {
                return failover;
            }
        }
        return match leader {
            Some(_) if i_hold && local.needs_rewind => {
                Action::Release("this member was fenced; it gives up the key".into())
            }
            Some(l)
                if i_hold && !certain && lease_ok && f.lease.is_some_and(|s| s.id != l.lease) =>
            {
                Action::Reclaim { old_lease: l.lease }
            }
            Some(_) if i_hold && !certain => {
                // Restarting as primary needs certain leadership; a release does not.
                match release_or_restart(f, view, "postgres is not running") {
                    Action::Release(why) => Action::Release(why),
                    _ => Action::Wait("not certainly the leader: no restart as primary".into()),
                }
            }
            Some(_) if i_hold => release_or_restart(f, view, "postgres is not running"),
            _ if !local.may_start => Action::Wait("waiting out the restart backoff".into()),
            Some(l) => match leader_member {
                Some(m) if local.needs_rewind && still_promoting(&m) => {
                    Action::Wait(format!("{} is still promoting; rewinding after", m.name))
                }
                Some(m) => Action::StartReplica(Some(m)),
                None => Action::Wait(format!("leader {} has not published its address", l.name)),
            },
            None if eligible(f, view) && was_last_leader(f, view) => {
                hold_back.map_or(Action::Acquire, Action::Wait)
            }
            None if local.needs_rewind => Action::Wait("no leader to rewind from".into()),
            None => Action::StartReplica(None),
        };
    }

    // Running as a standby.
    match leader {
        Some(l) if l.name == f.me => {
            if local.promoting {
                Action::Wait("promotion under way".into())
            } else if lease_ok && Some(l.lease) == f.lease.map(|s| s.id) {
                Action::Promote
            } else {
                Action::Wait("our previous leader key has not expired yet".into())
            }
        }
        Some(l) => match leader_member {
            Some(_) if !local.may_start => Action::Wait("waiting out the restart backoff".into()),
            Some(m) if local.following.as_deref() != Some(m.name.as_str()) => {
                match still_promoting(&m) {
                    true => Action::Wait(format!("{} is still promoting; following after", m.name)),
                    false => Action::Follow(m),
                }
            }
            Some(m) if cannot_follow(local, &m) => Action::Follow(m),
            Some(_) => Action::Steady,
            None => Action::Wait(format!("leader {} has not published its address", l.name)),
        },
        None if eligible(f, view) && lease_ok && best_candidate(f, view) => {
            hold_back.map_or(Action::Acquire, Action::Wait)
        }
        None => Action::Wait("no leader, and this member may not take over".into()),
    }
}

/// A standby whose position has not grown for [`STALL_LIMIT`] while
/// `leader` is a primary on a later timeline. A timeline it could switch
/// to reaches it within a second; one that forked off before this standby's
/// recovery point never will: a restore to a point in time while this
/// member was down or hung, which keeps the leader's name (a new leader is
/// followed, and so rewound, by the rule above). Following again rewinds it (pg_rewind does nothing when it had not diverged, and a
/// failed rewind clones afresh).
fn cannot_follow(local: &Local, leader: &MemberState) -> bool {
    let (Some(mine), Some(theirs)) = (local.stalled_on, leader.timeline) else {
        return false;
    };
    leader.role == "primary" && theirs > mine
}

/// A new leader whose agent has not yet published a running primary: its
/// promotion is under way. Rewinding against it now would find nothing to
/// do (it is still on the old timeline) and fail, and a failed start costs
/// the restart backoff; so followers wait the few ticks it takes.
fn still_promoting(m: &MemberState) -> bool {
    m.role != "primary"
}

/// PostgreSQL died (or hangs) under the key holder: hand over at once when a
/// recorded standby's agent is there, else restart in place.
fn release_or_restart(f: &Facts, view: &ClusterView, why: &str) -> Action {
    let standby_ready = view.sync.as_ref().is_some_and(|s| {
        s.value.leader == f.me
            && s.value.standbys.iter().any(|name| {
                view.member(name)
                    .is_some_and(|m| m.role == "replica" && name != f.me)
            })
    });
    if standby_ready {
        Action::Release(format!("{why}; a synchronous standby takes over"))
    } else if f.local.may_start || f.local.hung {
        Action::RestartPrimary
    } else {
        Action::Wait(format!("{why}; waiting out the restart backoff"))
    }
}

/// May this member take a free key?
fn eligible(f: &Facts, view: &ClusterView) -> bool {
    match &view.sync {
        Some(s) if s.value.leader == f.me => !f.local.released_recently,
        Some(s) => s.value.may_promote(f.me),
        None => view.initialized_by.as_deref() == Some(f.me),
    }
}

fn was_last_leader(f: &Facts, view: &ClusterView) -> bool {
    view.sync
        .as_ref()
        .map(|s| s.value.leader == f.me)
        .unwrap_or(true)
}

/// Among eligible standbys, the one with the most WAL goes first (ties: by
/// name); the others let it try. The key's transaction decides the race.
fn best_candidate(f: &Facts, view: &ClusterView) -> bool {
    let Some(sync) = &view.sync else {
        return true;
    };
    let mine = view.member(f.me).and_then(|m| m.lsn).unwrap_or(0);
    !sync.value.standbys.iter().any(|other| {
        other != f.me
            && view.member(other).is_some_and(|m| {
                m.role == "replica"
                    && (m.lsn.unwrap_or(0), std::cmp::Reverse(&m.name))
                        > (mine, std::cmp::Reverse(&f.me.to_string()))
            })
    })
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests;
