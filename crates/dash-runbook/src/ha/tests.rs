use std::time::Duration;

use dash_dcs::{ClusterView, HistoryEntry, Leader, MemberState, Request, SyncState, Versioned};

use super::switchover::{check, plan, Outcome, SwitchoverReport};
use super::*;

fn etcd() -> EtcdTarget {
    EtcdTarget::new(&["http://e1:2379".into()], "dash").unwrap()
}

fn state(name: &str, port: u16, role: &str, streaming: bool) -> MemberState {
    MemberState {
        name: name.into(),
        pg: format!("10.0.0.{port}:5432"),
        api: format!("http://10.0.0.{port}:8008/"),
        role: role.into(),
        timeline: Some(2),
        lsn: Some((1 << 32) | 0x3000060),
        streaming,
    }
}

fn cluster() -> ClusterView {
    ClusterView {
        revision: 42,
        leader: Some(Leader {
            name: "a1".into(),
            lease: 7,
            mod_revision: 40,
        }),
        sync: Some(Versioned {
            value: SyncState {
                leader: "a1".into(),
                standbys: vec!["a2".into()],
            },
            mod_revision: 41,
        }),
        members: vec![
            state("a1", 1, "primary", false),
            state("a2", 2, "replica", true),
            state("a3", 3, "replica", true),
        ],
        request: None,
        halt: None,
        initialized_by: Some("a1".into()),
    }
}

fn history(n: i64) -> Vec<HistoryEntry> {
    (0..n)
        .map(|i| HistoryEntry {
            at_ms: 1_700_000_000_000 + i,
            member: "a1".into(),
            decision: "sync".into(),
            detail: format!("entry {i}"),
        })
        .collect()
}

/// The view with every node API answering, the leader's /primary 200.
fn view() -> HaView {
    let mut ha = HaView::from_etcd(&etcd(), &cluster(), &history(3));
    for m in &mut ha.members {
        m.node_api.reachable = true;
        m.node_api.status = Some(NodeStatus {
            name: m.name.clone(),
            holds_key: m.leader,
            lease_remaining_ms: m.leader.then_some(2600),
            lag_bytes: (!m.leader).then_some(0),
            last_action: "steady".into(),
            ..NodeStatus::default()
        });
        if m.leader {
            m.node_api.primary_http = Some(200);
        }
    }
    ha
}

#[test]
fn etcd_is_configured_only_by_a_non_empty_endpoint() {
    assert_eq!(EtcdTarget::new(&[], "dash"), None);
    assert_eq!(EtcdTarget::new(&[" ".into()], "dash"), None);
    let t = EtcdTarget::new(&[" http://a:2379".into(), "".into()], "c").unwrap();
    assert_eq!(t.endpoints, ["http://a:2379"]);
    assert_eq!(t.flags(), "--etcd http://a:2379 --cluster c");
}

#[test]
fn lsns_print_as_postgresql_does() {
    assert_eq!(format_lsn(0x3000060), "0/3000060");
    assert_eq!(format_lsn((0x16 << 32) | 0xB374_D848), "16/B374D848");
}

#[test]
fn the_view_marks_the_leader_and_its_standbys_and_keeps_the_newest_history() {
    let ha = HaView::from_etcd(&etcd(), &cluster(), &history(15));
    assert_eq!(ha.leader.as_deref(), Some("a1"));
    assert_eq!(ha.standbys(), ["a2"]);
    let flags: Vec<(bool, bool)> = ha
        .members
        .iter()
        .map(|m| (m.leader, m.sync_standby))
        .collect();
    assert_eq!(flags, [(true, false), (false, true), (false, false)]);
    assert_eq!(
        ha.members[0].api, "http://10.0.0.1:8008",
        "no trailing slash"
    );
    assert_eq!(ha.members[0].lsn.as_deref(), Some("1/3000060"));
    assert_eq!(ha.history.len(), HISTORY_SHOWN);
    assert_eq!(
        ha.history.last().unwrap().detail,
        "entry 14",
        "oldest first, newest kept"
    );
    assert_eq!(ha.history[0].at, "2023-11-14T22:13:20.005Z");
}

#[test]
fn members_in_the_history_without_a_record_are_absent() {
    let mut c = cluster();
    c.members.remove(2);
    let mut h = history(2);
    h.push(HistoryEntry {
        at_ms: 1_700_000_000_500,
        member: "a3".into(),
        decision: "rejoin".into(),
        detail: "start as a standby of a1".into(),
    });
    h.extend(history(20));
    let ha = HaView::from_etcd(&etcd(), &c, &h);
    assert_eq!(
        ha.absent.len(),
        1,
        "found even when older than the shown history"
    );
    assert_eq!(
        (ha.absent[0].member.as_str(), ha.absent[0].decision.as_str()),
        ("a3", "rejoin")
    );
    let p = ha.problems().join("\n");
    assert!(p.contains("a3 has no member record but is in the HA history (last: rejoin at 2023-11-14T22:13:20.500Z)"), "{p}");
    assert!(ha
        .render()
        .contains("a3: no member record (in the history; last: rejoin at"));
}

#[test]
fn members_become_the_nodes_to_probe() {
    let mut c = cluster();
    c.members[2].role = "fenced".into();
    let nodes = HaView::from_etcd(&etcd(), &c, &[]).nodes();
    let names: Vec<String> = nodes
        .iter()
        .map(|n| format!("{}@{}", n.name, n.address))
        .collect();
    assert_eq!(
        names,
        ["a1@10.0.0.1:5432", "a2@10.0.0.2:5432", "a3@10.0.0.3:5432"]
    );
    assert_eq!(nodes[0].recorded_role, Some(Role::Primary));
    assert_eq!(
        nodes[2].recorded_role,
        Some(Role::Fenced),
        "a fenced member is not judged"
    );
}

#[test]
fn a_sound_view_has_no_problems_and_renders_every_member_and_the_history() {
    let ha = view();
    assert!(ha.problems().is_empty(), "{:?}", ha.problems());
    let text = ha.render();
    assert!(
        text.contains("HA (etcd cluster dash at http://e1:2379)"),
        "{text}"
    );
    assert!(text.contains("leader key: a1"), "{text}");
    assert!(text.contains("sync standbys: a2"), "{text}");
    let row = text.lines().find(|l| l.starts_with("a1 ")).unwrap();
    for cell in [
        "primary (leader)",
        "1/3000060",
        "ok, /primary 200",
        "yes",
        "2.6s",
        "steady",
    ] {
        assert!(row.contains(cell), "{cell:?} missing in {row:?}");
    }
    let row = text.lines().find(|l| l.starts_with("a2 ")).unwrap();
    assert!(
        row.contains("replica (sync)") && row.contains("0 B"),
        "{row}"
    );
    assert!(text.contains("HA history (newest 3 from etcd)"), "{text}");
    assert!(text.contains("entry 2"), "{text}");
}

#[test]
fn problems_name_what_the_operator_must_know() {
    let mut ha = view();
    ha.leader = None;
    assert!(ha.problems()[0].contains("no member holds the leader key"));

    let mut ha = view();
    ha.members[0].node_api.primary_http = None;
    ha.members[0].node_api.primary_error = Some("connection refused".into());
    ha.members[2].node_api = NodeApi {
        error: Some("no answer within 1s".into()),
        ..NodeApi::default()
    };
    ha.members[2].role = "stopped".into();
    let p = ha.problems().join("\n");
    assert!(
        p.contains(
            "a1's node API (http://10.0.0.1:8008) does not answer /primary: connection refused"
        ),
        "{p}"
    );
    assert!(
        p.contains("a3 reports role stopped, not a streaming replica"),
        "{p}"
    );
    assert!(
        p.contains("a3's node API (http://10.0.0.3:8008) does not answer: no answer within 1s"),
        "{p}"
    );
    let text = ha.render();
    assert!(
        text.contains("a3: node API http://10.0.0.3:8008: no answer within 1s"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("a3 ") && l.contains("unreachable")),
        "{text}"
    );

    let mut ha = view();
    ha.members.remove(1);
    assert!(
        ha.problems()[0].contains("a2 is recorded as synchronous standby but has no member record"),
        "{:?}",
        ha.problems()
    );

    let mut ha = view();
    ha.sync.as_mut().unwrap().leader = "a3".into();
    assert!(
        ha.standbys().is_empty(),
        "a set recorded for another leader does not count"
    );
    assert!(
        ha.problems()[0].contains("asynchronously"),
        "{:?}",
        ha.problems()
    );
    assert!(ha
        .render()
        .contains("none for the leader (the recorded set belongs to a3: a2)"));
}

#[test]
fn an_unreachable_etcd_is_one_line_not_a_crash() {
    let ha = HaView::unreachable(&etcd(), "etcd did not answer within 2s".into());
    assert_eq!(ha.problems().len(), 1);
    assert!(ha.problems()[0].contains("did not answer"));
    let text = ha.render();
    assert!(
        text.contains("etcd unreachable: etcd did not answer within 2s"),
        "{text}"
    );
    assert!(!text.contains("HA history"), "{text}");
    let json = serde_json::to_value(&ha).unwrap();
    assert_eq!(json["etcd_error"], "etcd did not answer within 2s");
}

#[test]
fn switchover_guard_rails() {
    let ha = view();
    assert_eq!(check(&ha, None), Ok(("a1".into(), "a2".into())));
    assert_eq!(check(&ha, Some("a2")), Ok(("a1".into(), "a2".into())));
    let e = check(&ha, Some("a3")).unwrap_err();
    assert!(
        e.contains("a3 is not a recorded synchronous standby of a1 (recorded: a2)"),
        "{e}"
    );
    assert!(check(&ha, Some("a1")).is_err(), "the leader is no target");

    let mut no_leader = view();
    no_leader.leader = None;
    assert!(check(&no_leader, None)
        .unwrap_err()
        .contains("no member holds the leader key"));

    let mut async_mode = view();
    async_mode.sync.as_mut().unwrap().standbys.clear();
    let e = check(&async_mode, None).unwrap_err();
    assert!(
        e.contains("no synchronous standby is recorded for a1"),
        "{e}"
    );

    let mut lagging = view();
    lagging.members[1].streaming = false;
    assert!(check(&lagging, None)
        .unwrap_err()
        .contains("a2 is not streaming"));

    let mut pending = view();
    pending.request = Some(Request::Switchover {
        from: "a1".into(),
        to: None,
    });
    assert!(check(&pending, None)
        .unwrap_err()
        .contains("already pending"));
}

#[test]
fn switchover_plan_and_report() {
    let ha = view();
    let steps = plan(&ha, "a1", "a2", Duration::from_secs(30));
    assert_eq!(steps.len(), 5);
    assert!(steps[1].contains("file in etcd (cluster dash): switchover from a1 to a2"));
    assert!(
        steps[4].contains("/primary 200, within 30.0s"),
        "{}",
        steps[4]
    );
    let mut r = SwitchoverReport::planned("switchover", "dash", steps);
    assert_eq!(r.exit_code(), 0);
    assert!(r
        .render()
        .starts_with("dashctl db switchover --dry-run: nothing will be changed"));
    r.outcome = Outcome::Refused;
    r.message = "a1's agent refused: a2 is not a synchronous standby".into();
    assert_eq!(r.exit_code(), 4);
    assert!(r.render().contains("refused: a1's agent refused"));
    r.outcome = Outcome::NotDone;
    assert_eq!(r.exit_code(), 3);
}

mod failover;

#[test]
fn a_standing_halt_is_shown_with_who_filed_it_and_how_to_lift_it() {
    let mut c = cluster();
    c.halt = Some(Versioned {
        value: dash_dcs::Halt {
            by: "dashctl db restore on host1".into(),
            reason: "restore to 2026-11-30 12:00:00 UTC".into(),
            restored: Some("a2".into()),
        },
        mod_revision: 43,
    });
    let text = HaView::from_etcd(&etcd(), &c, &history(1)).render();
    assert!(
        text.contains("HALTED by dashctl db restore on host1"),
        "{text}"
    );
    assert!(text.contains("a2 holds the restored cluster"), "{text}");
    assert!(text.contains("dashctl db restore --abort"), "{text}");
    assert!(!view().render().contains("HALTED"));
}
