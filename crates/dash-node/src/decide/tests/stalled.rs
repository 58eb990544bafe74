//! A standby that cannot follow its leader: stuck (not streaming) while the
//! leader is a primary on a later timeline, it follows again, which rewinds.

use super::*;

/// `a_leads`, with `a` on `timeline`.
fn a_on(timeline: u32) -> View {
    let mut primary = member("a", "primary", 100, false);
    primary.timeline = Some(timeline);
    held("a", LEASE, &["b"]).member(primary).replica("b", 100)
}

fn stuck_on(timeline: u32) -> Local {
    with(standby("a"), |l| l.stalled_on = Some(timeline))
}

#[test]
fn a_stuck_standby_behind_its_leaders_timeline_follows_again() {
    let v = a_on(3);
    assert_eq!(on("b", &v, stuck_on(2)), Action::Follow(v.published("a")));
}

#[test]
fn a_standby_that_streams_or_shares_the_timeline_stays_steady() {
    let v = a_on(3);
    // Not stuck (streaming, or not long enough): steady.
    assert_eq!(on("b", &v, standby("a")), Action::Steady);
    // Stuck on the leader's own timeline (or a later one): no rewind helps.
    assert_eq!(on("b", &v, stuck_on(3)), Action::Steady);
    assert_eq!(on("b", &v, stuck_on(4)), Action::Steady);
    // The leader's timeline unknown: nothing to compare.
    let mut unknown = a_on(3);
    unknown.0.members[0].timeline = None;
    assert_eq!(on("b", &unknown, stuck_on(2)), Action::Steady);
}

#[test]
fn a_leader_still_promoting_is_not_rewound_against() {
    // a holds the key but still publishes a standby: its new timeline is
    // not written yet.
    let mut promoting = a_on(3);
    promoting.0.members[0].role = "replica".into();
    assert_eq!(on("b", &promoting, stuck_on(2)), Action::Steady);
}

#[test]
fn the_restart_backoff_holds_a_refollow_back() {
    let v = a_on(3);
    let backing_off = with(stuck_on(2), |l| l.may_start = false);
    assert_is(on("b", &v, backing_off), "Wait");
}
