//! One test per rule of `decide`, named after the rule. Each builds what a
//! member sees (its server, the etcd view, its lease) and checks its step.

use std::time::{Duration, Instant};

use dash_dcs::{Leader, Request, SyncState, Versioned};

use super::*;

const LEASE: i64 = 7;
const OLD_LEASE: i64 = 3;

fn lease_valid(now: Instant) -> Option<LeaseState> {
    let valid_until = now + Duration::from_secs(10);
    Some(LeaseState {
        id: LEASE,
        valid_until,
    })
}

/// The lease as the agent knows it at decision time.
#[derive(Debug, Clone, Copy)]
enum Lease {
    Valid,
    /// Certain validity ended exactly now.
    RanOut,
    Missing,
}

fn member(name: &str, role: &str, lsn: u64, streaming: bool) -> MemberState {
    MemberState {
        name: name.into(),
        pg: format!("{name}:5432"),
        api: format!("http://{name}:8008"),
        role: role.into(),
        timeline: Some(1),
        lsn: Some(lsn),
        streaming,
    }
}

/// A `ClusterView` under construction.
#[derive(Debug)]
struct View(ClusterView);

/// A cluster that `a` initialized, with nothing else in etcd.
fn view() -> View {
    let initialized_by = Some("a".to_string());
    View(ClusterView {
        initialized_by,
        ..ClusterView::default()
    })
}

impl View {
    fn leader(mut self, name: &str, lease: i64) -> Self {
        let name = name.into();
        self.0.leader = Some(Leader {
            name,
            lease,
            mod_revision: 10,
        });
        self
    }
    fn sync(mut self, leader: &str, standbys: &[&str]) -> Self {
        let standbys = standbys.iter().map(|s| s.to_string()).collect();
        let value = SyncState {
            leader: leader.into(),
            standbys,
        };
        self.0.sync = Some(Versioned {
            value,
            mod_revision: 11,
        });
        self
    }
    fn member(mut self, m: MemberState) -> Self {
        self.0.members.push(m);
        self
    }
    /// A streaming replica's agent, alive.
    fn replica(self, name: &str, lsn: u64) -> Self {
        self.member(member(name, "replica", lsn, true))
    }
    /// An operator request, filed at revision 12.
    fn request(mut self, value: Request) -> Self {
        self.0.request = Some(Versioned {
            value,
            mod_revision: 12,
        });
        self
    }
    fn published(&self, name: &str) -> MemberState {
        self.0.member(name).cloned().expect("a published member")
    }
}

/// `leader` holds the key under `lease` and recorded `standbys`.
fn held(leader: &str, lease: i64, standbys: &[&str]) -> View {
    view().leader(leader, lease).sync(leader, standbys)
}

/// The key is free; `leader` led last and recorded `standbys`.
fn free(leader: &str, standbys: &[&str]) -> View {
    view().sync(leader, standbys)
}

/// `a` leads under `LEASE`; `b` is its recorded, streaming standby.
fn a_leads() -> View {
    let primary = member("a", "primary", 100, false);
    held("a", LEASE, &["b"]).member(primary).replica("b", 100)
}

/// `local`, changed by `f`.
fn with(mut local: Local, f: impl FnOnce(&mut Local)) -> Local {
    f(&mut local);
    local
}

/// No data directory yet; nothing holds it back.
fn empty() -> Local {
    with(Local::default(), |l| l.may_start = true)
}

fn stopped() -> Local {
    with(empty(), |l| l.has_data = true)
}

fn primary() -> Local {
    with(stopped(), |l| {
        (l.running, l.in_recovery) = (true, Some(false))
    })
}

fn standby(following: &str) -> Local {
    let following = Some(following.to_string());
    with(primary(), |l| {
        (l.in_recovery, l.following) = (Some(true), following)
    })
}

fn run(me: &str, view: Option<&View>, lease: Lease, local: Local) -> Action {
    let now = Instant::now();
    let lease = match lease {
        Lease::Valid => lease_valid(now),
        Lease::RanOut => lease_valid(now).map(|l| LeaseState {
            valid_until: now,
            ..l
        }),
        Lease::Missing => None,
    };
    let view = view.map(|v| &v.0);
    decide(&Facts {
        me,
        view,
        lease,
        now,
        local,
        synchronous: true,
    })
}

/// The common case: etcd readable, our lease valid.
fn on(me: &str, view: &View, local: Local) -> Action {
    run(me, Some(view), Lease::Valid, local)
}

/// Asserts the variant (`"Wait"`, `"Fence"`, ...) of an action whose reason
/// text is free.
#[track_caller]
fn assert_is(action: Action, variant: &str) {
    let debug = format!("{action:?}");
    assert!(debug.starts_with(variant), "expected {variant}: {debug}");
}

// Invariant 1: no writable server without certain leadership.

#[test]
fn writable_server_without_a_valid_lease_is_fenced_even_when_etcd_is_unreadable() {
    let held = a_leads();
    let unanswered = with(primary(), |l| l.in_recovery = None);
    for lease in [Lease::Missing, Lease::RanOut] {
        for v in [None, Some(&held)] {
            assert_is(run("a", v, lease, primary()), "Fence");
            assert_is(run("a", v, lease, unanswered.clone()), "Fence");
        }
    }
}

#[test]
fn writable_server_is_fenced_while_another_member_holds_the_key() {
    assert_is(on("b", &a_leads(), primary()), "Fence");
}

#[test]
fn writable_server_with_a_valid_lease_waits_while_etcd_is_unreadable() {
    assert_is(run("a", None, Lease::Valid, primary()), "Wait");
}

#[test]
fn writable_server_holding_the_key_under_an_old_lease_reclaims_it() {
    let v = held("a", OLD_LEASE, &["b"]);
    let expected = Action::Reclaim {
        old_lease: OLD_LEASE,
    };
    assert_eq!(on("a", &v, primary()), expected);
}

#[test]
fn writable_server_takes_a_free_key_only_if_it_led_last() {
    assert_eq!(on("a", &free("a", &["b"]), primary()), Action::Acquire);
    assert_is(on("a", &free("b", &["a"]), primary()), "Fence");
}

#[test]
fn running_server_that_needs_a_rewind_is_fenced_even_holding_the_key() {
    let v = a_leads();
    for in_recovery in [Some(false), Some(true), None] {
        let local = with(primary(), |l| {
            (l.in_recovery, l.needs_rewind) = (in_recovery, true)
        });
        assert_is(on("a", &v, local), "Fence");
    }
}

#[test]
fn healthy_leader_without_requests_is_steady() {
    assert_eq!(on("a", &a_leads(), primary()), Action::Steady);
}

#[test]
fn unanswered_leader_that_is_not_yet_hung_waits() {
    let local = with(primary(), |l| l.in_recovery = None);
    assert_is(on("a", &a_leads(), local), "Wait");
}

// Invariant 3: a key holder whose server died hands over or restarts.

#[test]
fn stopped_key_holder_releases_the_key_when_its_recorded_standby_is_alive() {
    assert_is(on("a", &a_leads(), stopped()), "Release");
}

#[test]
fn stopped_key_holder_restarts_in_place_without_a_live_recorded_standby() {
    let async_mode = held("a", LEASE, &[]).replica("b", 100);
    let standby_gone = held("a", LEASE, &["b"]);
    let down = member("b", "stopped", 100, false);
    let standby_down = held("a", LEASE, &["b"]).member(down);
    for v in [async_mode, standby_gone, standby_down] {
        assert_eq!(on("a", &v, stopped()), Action::RestartPrimary, "{v:?}");
    }
}

#[test]
fn stopped_key_holder_waits_out_the_restart_backoff() {
    let v = held("a", LEASE, &[]);
    let backoff = with(stopped(), |l| l.may_start = false);
    assert_is(on("a", &v, backoff), "Wait");
}

#[test]
fn hung_key_holder_releases_to_a_recorded_standby_or_else_restarts() {
    let hung = with(primary(), |l| {
        (l.in_recovery, l.hung, l.may_start) = (None, true, false)
    });
    assert_is(on("a", &a_leads(), hung.clone()), "Release");
    let alone = held("a", LEASE, &[]);
    assert_eq!(on("a", &alone, hung), Action::RestartPrimary);
}

/// Invariant 1 covers starting a server too: `RestartPrimary` makes it
/// writable, so it needs the certain leadership that a standby's `Promote`
/// already waits for (current lease valid, the key under that lease).
#[test]
fn stopped_key_holder_without_certain_leadership_does_not_restart_as_primary() {
    let current = held("a", LEASE, &[]);
    let old = held("a", OLD_LEASE, &[]);
    let no_lease = run("a", Some(&current), Lease::Missing, stopped());
    let ran_out = run("a", Some(&current), Lease::RanOut, stopped());
    let old_lease = on("a", &old, stopped());
    let restarted = [no_lease, ran_out, old_lease].map(|a| a == Action::RestartPrimary);
    let cases = "[no lease, lease ran out, key under an old lease]";
    assert_eq!(restarted, [false; 3], "restarted as primary in {cases}");
}

/// Invariant 3: a key holder whose PostgreSQL is gone hands over to a live
/// recorded standby; losing the data directory must not freeze the key.
#[test]
fn key_holder_without_data_releases_the_key_to_a_recorded_standby() {
    assert_is(on("a", &a_leads(), empty()), "Release");
}

// Invariant 2: only a recorded standby (or the last leader) takes a free key.

#[test]
fn free_key_is_taken_by_a_running_standby_only_if_recorded_and_its_lease_is_valid() {
    let v = free("a", &["b"]).replica("b", 100).replica("c", 200);
    assert_eq!(on("b", &v, standby("a")), Action::Acquire);
    assert_is(on("c", &v, standby("a")), "Wait");
    assert_is(run("b", Some(&v), Lease::RanOut, standby("a")), "Wait");
    assert_is(run("b", Some(&v), Lease::Missing, standby("a")), "Wait");
    let async_mode = free("a", &[]).replica("b", 100);
    assert_is(on("b", &async_mode, standby("a")), "Wait");
}

#[test]
fn recorded_standby_behind_another_recorded_standby_lets_it_go_first() {
    let v = free("a", &["b", "c"]).replica("b", 100).replica("c", 200);
    assert_is(on("b", &v, standby("a")), "Wait");
    assert_eq!(on("c", &v, standby("a")), Action::Acquire);
}

#[test]
fn recorded_standbys_with_equal_lsns_break_the_tie_by_name() {
    for order in [["b", "c"], ["c", "b"]] {
        let v = free("a", &order).replica("b", 100).replica("c", 100);
        let first = on("b", &v, standby("a"));
        assert_eq!(first, Action::Acquire, "recorded {order:?}");
        assert_is(on("c", &v, standby("a")), "Wait");
    }
}

#[test]
fn standby_holding_the_key_under_its_current_lease_promotes() {
    let v = held("b", LEASE, &[]);
    assert_eq!(on("b", &v, standby("a")), Action::Promote);
    assert_is(run("b", Some(&v), Lease::RanOut, standby("a")), "Wait");
    let old = held("b", OLD_LEASE, &[]);
    assert_is(on("b", &old, standby("a")), "Wait");
}

#[test]
fn standby_follows_the_leader_and_is_steady_once_it_does() {
    let v = a_leads();
    let leader = v.published("a");
    assert_eq!(on("b", &v, standby("c")), Action::Follow(leader.clone()));
    let following_nobody = with(standby("a"), |l| l.following = None);
    assert_eq!(on("b", &v, following_nobody), Action::Follow(leader));
    assert_eq!(on("b", &v, standby("a")), Action::Steady);
}

#[test]
fn followers_wait_while_the_new_leader_is_still_promoting() {
    // a holds the key but its agent still publishes a standby: promotion
    // under way. Rewinding against it now would fail and cost the backoff.
    let promoting = held("a", LEASE, &["b"])
        .member(member("a", "replica", 100, false))
        .replica("b", 100);
    assert_is(on("b", &promoting, standby("c")), "Wait");
    let rewind_first = with(stopped(), |l| l.needs_rewind = true);
    assert_is(on("b", &promoting, rewind_first.clone()), "Wait");
    // Once it publishes a running primary, they follow.
    let leader = a_leads().published("a");
    assert_eq!(
        on("b", &a_leads(), standby("c")),
        Action::Follow(leader.clone())
    );
    assert_eq!(
        on("b", &a_leads(), rewind_first),
        Action::StartReplica(Some(leader))
    );
}

// Stopped members: initialize, clone, rejoin, restart.

#[test]
fn empty_member_claims_initialization_only_when_nobody_initialized() {
    let mut fresh = view();
    fresh.0.initialized_by = None;
    assert_eq!(on("a", &fresh, empty()), Action::ClaimInitialize);
    assert_is(on("b", &view(), empty()), "Wait");
}

#[test]
fn empty_member_clones_from_a_published_leader_after_its_backoff() {
    let v = a_leads();
    let leader = v.published("a");
    assert_eq!(on("c", &v, empty()), Action::Clone(leader));
    assert_is(on("c", &v, with(empty(), |l| l.may_start = false)), "Wait");
    let unpublished = view().leader("a", LEASE);
    assert_is(on("c", &unpublished, empty()), "Wait");
}

#[test]
fn stopped_member_with_data_starts_as_a_replica_of_the_leader() {
    let v = a_leads();
    let leader = Some(v.published("a"));
    assert_eq!(on("b", &v, stopped()), Action::StartReplica(leader));
    let backoff = with(stopped(), |l| l.may_start = false);
    assert_is(on("b", &v, backoff), "Wait");
}

#[test]
fn stopped_last_leader_takes_a_free_key_unless_it_released_it_recently() {
    let v = free("a", &["b"]).replica("b", 100);
    assert_eq!(on("a", &v, stopped()), Action::Acquire);
    let released = with(stopped(), |l| {
        (l.released_recently, l.needs_rewind) = (true, true)
    });
    assert_is(on("a", &v, released), "Wait");
    assert_eq!(on("c", &v, stopped()), Action::StartReplica(None));
}

#[test]
fn fenced_member_that_still_holds_the_key_releases_it() {
    let v = held("a", LEASE, &[]);
    let fenced = with(stopped(), |l| l.needs_rewind = true);
    assert_is(on("a", &v, fenced), "Release");
}

#[test]
fn member_that_is_not_writable_waits_while_etcd_is_unreadable() {
    for local in [stopped(), empty(), standby("a")] {
        assert_is(run("b", None, Lease::Valid, local), "Wait");
    }
}

// Operator requests: `tests/requests.rs`.
mod requests;

// Halts for a restore: `tests/halt.rs`.
mod halt;

mod stalled;
