//! `dashctl db failover --etcd`: its guard rails and plan, pure.

use super::super::failover::{check, plan, Checked};
use super::*;

/// `a1` led with `a2` as its recorded standby; both agents are gone, the
/// key is free and `a3` (not in the sync set) is all that runs.
fn only_a3_left() -> HaView {
    let mut ha = view();
    ha.leader = None;
    ha.members.retain(|m| m.name == "a3");
    ha
}

fn checked(from: Option<&str>, to: &str, data_loss: bool) -> Checked {
    Checked {
        from: from.map(Into::into),
        to: to.into(),
        data_loss,
        leader_silent: false,
    }
}

#[test]
fn failover_with_a_leader_goes_to_a_running_recorded_standby_only() {
    let ha = view();
    let expected = Ok(checked(Some("a1"), "a2", false));
    assert_eq!(check(&ha, None, false), expected);
    assert_eq!(check(&ha, Some("a2"), false), expected);
    let e = check(&ha, Some("a3"), false).unwrap_err();
    assert!(
        e.contains("a3 is not a recorded synchronous standby of a1 (recorded: a2)"),
        "{e}"
    );
    let e = check(&ha, Some("a2"), true).unwrap_err();
    assert!(
        e.contains("--accept-data-loss is only for a free leader key"),
        "{e}"
    );

    // A standby that does not stream still holds every acknowledged write.
    let mut cut_off = view();
    cut_off.members[1].streaming = false;
    assert_eq!(check(&cut_off, None, false), expected);
    let mut stopped = view();
    stopped.members[1].role = "stopped".into();
    let e = check(&stopped, None, false).unwrap_err();
    assert!(e.contains("a2 is not running as a standby"), "{e}");
    let mut async_mode = view();
    async_mode.sync.as_mut().unwrap().standbys.clear();
    let e = check(&async_mode, None, false).unwrap_err();
    assert!(
        e.contains("no synchronous standby is recorded for a1"),
        "{e}"
    );
}

#[test]
fn failover_with_a_silent_leader_is_filed_and_says_its_lease_is_alive() {
    let mut ha = view();
    ha.members[0].node_api = NodeApi::default();
    let c = check(&ha, None, false).unwrap();
    assert!(c.leader_silent);
    let steps = plan(&ha, &c, Duration::from_secs(30));
    assert!(
        steps[0].contains("nobody may take or delete its key"),
        "{steps:?}"
    );
}

#[test]
fn failover_to_a_member_not_recorded_is_refused_without_the_flag_naming_the_standby() {
    let ha = only_a3_left();
    let e = check(&ha, Some("a3"), false).unwrap_err();
    assert!(
        e.contains("a3 is not a recorded synchronous standby of a1"),
        "{e}"
    );
    assert!(e.contains("may lack writes a1 acknowledged"), "{e}");
    assert!(e.contains("a2 (its agent is not running)"), "{e}");
    assert!(e.contains("--accept-data-loss"), "{e}");
    let e = check(&ha, None, false).unwrap_err();
    assert!(
        e.contains("name the member to promote with --target"),
        "{e}"
    );
}

#[test]
fn failover_accepting_data_loss_promotes_exactly_the_named_standby() {
    let ha = only_a3_left();
    let c = check(&ha, Some("a3"), true).unwrap();
    assert_eq!(c, checked(None, "a3", true));
    let steps = plan(&ha, &c, Duration::from_secs(30));
    assert!(
        steps[0].contains("writes a1 acknowledged may be lost"),
        "{steps:?}"
    );
    assert!(
        steps[1].contains("failover to a3, accepting data loss"),
        "{steps:?}"
    );
    assert!(steps.last().unwrap().starts_with("4. check:"), "{steps:?}");
    let e = check(&ha, Some("a2"), true).unwrap_err();
    assert!(e.contains("a2 has no member record"), "{e}");
}

#[test]
fn failover_accepting_data_loss_is_refused_while_a_recorded_standby_runs() {
    let mut ha = view();
    ha.leader = None;
    let e = check(&ha, Some("a3"), true).unwrap_err();
    assert!(
        e.contains("a2, a recorded synchronous standby of a1, runs"),
        "{e}"
    );
    // Naming the recorded standby needs no flag: nothing is lost.
    assert_eq!(
        check(&ha, Some("a2"), false),
        Ok(checked(None, "a2", false))
    );
    assert_eq!(check(&ha, None, false), Ok(checked(None, "a2", false)));
}

#[test]
fn failover_is_refused_while_another_request_is_pending() {
    let mut ha = view();
    ha.request = Some(Request::Failover {
        from: None,
        to: Some("a3".into()),
        accept_data_loss: true,
    });
    let e = check(&ha, None, false).unwrap_err();
    assert!(
        e.contains(
            "a failover to a3 (the leader key was free), accepting data loss is already pending"
        ),
        "{e}"
    );
}

#[test]
fn failover_plan_with_a_leader_fences_at_once() {
    let ha = view();
    let c = check(&ha, None, false).unwrap();
    let steps = plan(&ha, &c, Duration::from_secs(30));
    assert_eq!(steps.len(), 5, "{steps:?}");
    assert!(steps[1].contains("failover from a1 to a2"), "{steps:?}");
    assert!(steps[2].contains("no clean shutdown"), "{steps:?}");
    assert!(steps[4].contains("within 30.0s"), "{steps:?}");
}
