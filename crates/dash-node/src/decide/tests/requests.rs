//! Operator requests: one test per rule of `decide/requests.rs`.

use super::*;

impl View {
    fn switchover(self, from: &str, to: Option<&str>) -> Self {
        let (from, to) = (from.into(), to.map(Into::into));
        self.request(Request::Switchover { from, to })
    }
    /// A failover from `from` (`None`: filed while the key was free).
    fn failover(self, from: Option<&str>, to: Option<&str>, accept_data_loss: bool) -> Self {
        let (from, to) = (from.map(Into::into), to.map(Into::into));
        self.request(Request::Failover {
            from,
            to,
            accept_data_loss,
        })
    }
}

/// The key is free: `a` led with `b` as its recorded standby, and both
/// are gone; `c`, a standby not in the sync set, is all that runs.
fn only_c_left() -> View {
    free("a", &["b"]).replica("c", 90)
}

fn take_over(action: &Action) -> Option<&str> {
    match action {
        Action::TakeOver {
            request_revision: 12,
            why,
        } => Some(why),
        _ => None,
    }
}

// Carried out by the key holder.

#[test]
fn switchover_to_a_streaming_recorded_standby_is_carried_out() {
    let expected = Action::SwitchOver {
        to: "b".into(),
        request_revision: 12,
    };
    let to_b = a_leads().switchover("a", Some("b"));
    assert_eq!(on("a", &to_b, primary()), expected);
    let to_anyone = a_leads().switchover("a", None);
    assert_eq!(on("a", &to_anyone, primary()), expected);
}

#[test]
fn switchover_to_a_member_not_recorded_is_refused() {
    let v = a_leads().replica("c", 100).switchover("a", Some("c"));
    assert_is(on("a", &v, primary()), "Refuse");
    let async_mode = held("a", LEASE, &[]).switchover("a", None);
    assert_is(on("a", &async_mode, primary()), "Refuse");
}

#[test]
fn switchover_from_a_member_that_does_not_lead_is_refused() {
    let v = a_leads().switchover("c", Some("b"));
    assert_is(on("a", &v, primary()), "Refuse");
}

#[test]
fn switchover_waits_until_the_target_streams() {
    let catching_up = member("b", "replica", 90, false);
    let v = held("a", LEASE, &["b"]).member(catching_up);
    assert_is(on("a", &v.switchover("a", Some("b")), primary()), "Wait");
}

#[test]
fn failover_fences_the_leader_and_hands_the_key_to_its_recorded_standby() {
    let expected = Action::FailOver {
        to: "b".into(),
        request_revision: 12,
    };
    for to in [Some("b"), None] {
        let v = a_leads().failover(Some("a"), to, false);
        assert_eq!(on("a", &v, primary()), expected, "to {to:?}");
    }
    // The standby need not stream: a sick primary sends it nothing.
    let cut_off = member("b", "replica", 90, false);
    let v = held("a", LEASE, &["b"]).member(cut_off);
    assert_eq!(
        on("a", &v.failover(Some("a"), None, false), primary()),
        expected
    );
}

#[test]
fn failover_is_carried_out_whatever_the_leaders_own_server_does() {
    let v = a_leads().failover(Some("a"), None, false);
    let unanswered = with(primary(), |l| l.in_recovery = None);
    let hung = with(unanswered.clone(), |l| {
        (l.hung, l.may_start) = (true, false)
    });
    for local in [unanswered, hung, stopped()] {
        assert_is(on("a", &v, local.clone()), "FailOver");
    }
}

#[test]
fn failover_to_a_member_not_recorded_is_refused_by_the_leader() {
    let v = a_leads()
        .replica("c", 100)
        .failover(Some("a"), Some("c"), false);
    assert_is(on("a", &v, primary()), "Refuse");
    // The flag does not widen a failover with a leader.
    let v = a_leads()
        .replica("c", 100)
        .failover(Some("a"), Some("c"), true);
    assert_is(on("a", &v, primary()), "Refuse");
    let async_mode = held("a", LEASE, &[]).failover(Some("a"), None, false);
    assert_is(on("a", &async_mode, primary()), "Refuse");
}

#[test]
fn failover_is_refused_without_the_targets_agent_and_waits_for_its_server() {
    let gone = held("a", LEASE, &["b"]).failover(Some("a"), None, false);
    assert_is(on("a", &gone, primary()), "Refuse");
    let down = member("b", "stopped", 100, false);
    let v = held("a", LEASE, &["b"]).member(down);
    let v = v.failover(Some("a"), None, false);
    assert_is(on("a", &v, primary()), "Wait");
    // Waiting never keeps a stopped leader from its usual step.
    assert_eq!(on("a", &v, stopped()), Action::RestartPrimary);
}

#[test]
fn failover_whose_leader_is_gone_is_refused_by_the_new_key_holder() {
    let b_leads = held("b", LEASE, &["a"]).replica("a", 100);
    for v in [
        b_leads.failover(Some("a"), None, false),
        held("b", LEASE, &[]).failover(Some("c"), Some("b"), false),
        held("b", LEASE, &[]).failover(None, Some("c"), true),
    ] {
        assert_is(on("b", &v, primary()), "Refuse");
    }
}

// Filed while the key is free: only the target may take it.

#[test]
fn free_key_failover_to_a_recorded_standby_is_taken_by_it_alone() {
    let v = free("a", &["b", "c"])
        .replica("b", 100)
        .replica("c", 200)
        .failover(None, Some("b"), false);
    // b takes it although c has more WAL; c holds back.
    let why = take_over(&on("b", &v, standby("a"))).map(str::to_string);
    assert!(why.is_some_and(|w| !w.contains("data loss")));
    assert_is(on("c", &v, standby("a")), "Wait");
}

#[test]
fn free_key_failover_to_a_member_not_recorded_is_refused_without_the_flag() {
    let v = only_c_left().failover(None, Some("c"), false);
    let Action::Refuse { reason, .. } = on("c", &v, standby("a")) else {
        panic!("not refused");
    };
    assert!(
        reason.contains("may lack writes a acknowledged"),
        "{reason}"
    );
    assert!(reason.contains("recorded: b"), "{reason}");
}

#[test]
fn free_key_failover_accepting_data_loss_lets_exactly_its_target_take_the_key() {
    let v = only_c_left()
        .replica("d", 95)
        .failover(None, Some("c"), true);
    let action = on("c", &v, standby("a"));
    let why = take_over(&action).unwrap_or_else(|| panic!("{action:?}"));
    assert!(why.contains("accepting data loss"), "{why}");
    assert!(why.contains("recorded: b"), "{why}");
    // Nobody else takes the key meanwhile: not d, not the last leader.
    assert_is(on("d", &v, standby("a")), "Wait");
    let last_leader = with(stopped(), |l| l.released_recently = false);
    assert_is(on("a", &v, last_leader), "Wait");
    assert_is(on("a", &v, primary()), "Fence");
}

#[test]
fn free_key_failover_accepting_data_loss_is_refused_while_a_recorded_standby_runs() {
    let v = only_c_left()
        .replica("b", 100)
        .failover(None, Some("c"), true);
    assert_is(on("c", &v, standby("a")), "Refuse");
    // Until c's agent clears it, b holds back too; then b takes the key.
    assert_is(on("b", &v, standby("a")), "Wait");
}

#[test]
fn free_key_failover_target_runs_as_a_standby_and_has_a_valid_lease_first() {
    let v = only_c_left().failover(None, Some("c"), true);
    assert_eq!(on("c", &v, stopped()), Action::StartReplica(None));
    assert_is(run("c", Some(&v), Lease::RanOut, standby("a")), "Wait");
}
