use super::*;
use proptest::prelude::*;

fn replica(name: &str, lsn: u64) -> NodeState {
    let mut s = NodeState::new(name);
    s.record(Probe::Up(Observation {
        in_recovery: true,
        lsn,
        ..Observation::default()
    }));
    s
}

fn silent(name: &str) -> NodeState {
    let mut s = replica(name, 999);
    s.record(Probe::Refused);
    s
}

#[test]
fn refused_probes_mean_dead_timeouts_mean_hung_and_one_miss_is_only_suspect() {
    let p = Policy::default();
    let mut s = NodeState::new("node0");
    s.record(Probe::Up(Observation::default()));
    assert_eq!(primary_health(&s, &p), PrimaryHealth::Healthy);
    s.record(Probe::Refused);
    assert_eq!(primary_health(&s, &p), PrimaryHealth::Suspect);
    s.record(Probe::Refused);
    s.record(Probe::Refused);
    assert_eq!(primary_health(&s, &p), PrimaryHealth::Dead);
    let mut h = NodeState::new("node0");
    for _ in 0..3 {
        h.record(Probe::TimedOut);
    }
    assert_eq!(primary_health(&h, &p), PrimaryHealth::Suspect);
    h.record(Probe::TimedOut);
    assert_eq!(primary_health(&h, &p), PrimaryHealth::Hung);
}

#[test]
fn a_slow_primary_that_answers_between_timeouts_is_never_declared_hung() {
    let p = Policy::default();
    let mut s = NodeState::new("node0");
    for _ in 0..50 {
        s.record(Probe::TimedOut);
        s.record(Probe::TimedOut);
        s.record(Probe::Up(Observation {
            took: Duration::from_millis(900),
            ..Observation::default()
        }));
        assert_ne!(primary_health(&s, &p), PrimaryHealth::Hung);
    }
}

#[test]
fn promotes_the_most_advanced_replica() {
    let c = choose_replica(&[replica("node1", 100), replica("node2", 300)], true, None);
    assert_eq!(
        c,
        Choice::Promote {
            name: "node2".into(),
            lsn: 300
        }
    );
}

#[test]
fn refuses_in_sync_mode_when_a_replica_that_may_hold_acked_writes_is_silent() {
    let c = choose_replica(&[replica("node1", 100), silent("node2")], true, None);
    assert!(
        matches!(c, Choice::Refuse(ref m) if m.contains("node2")),
        "{c:?}"
    );
    // In async mode the operator chose availability: promote what answers.
    let c = choose_replica(&[replica("node1", 100), silent("node2")], false, None);
    assert_eq!(
        c,
        Choice::Promote {
            name: "node1".into(),
            lsn: 100
        }
    );
}

#[test]
fn refuses_a_candidate_behind_writes_acked_without_a_standby() {
    let c = choose_replica(&[replica("node1", 100)], true, Some(150));
    assert!(matches!(c, Choice::Refuse(_)), "{c:?}");
    let c = choose_replica(&[replica("node1", 150)], true, Some(150));
    assert!(matches!(c, Choice::Promote { .. }));
}

#[test]
fn refuses_with_no_replica_and_never_promotes_a_node_that_is_not_in_recovery() {
    assert!(matches!(choose_replica(&[], true, None), Choice::Refuse(_)));
    let mut split = NodeState::new("node1");
    split.record(Probe::Up(Observation {
        in_recovery: false,
        lsn: 500,
        ..Observation::default()
    }));
    assert!(matches!(
        choose_replica(&[split], true, None),
        Choice::Refuse(_)
    ));
}

#[test]
fn sync_names_follow_streaming_replicas() {
    let all = vec!["node1".to_string(), "node2".to_string()];
    assert_eq!(
        desired_sync(true, &all, &["node2".into()]),
        vec!["node2".to_string()]
    );
    assert!(desired_sync(true, &all, &[]).is_empty());
    assert!(desired_sync(false, &all, &all).is_empty());
}

#[test]
fn lsn_text_roundtrip() {
    assert_eq!(parse_lsn("16/B374D848"), Some((0x16 << 32) | 0xB374_D848));
    assert_eq!(fmt_lsn(parse_lsn("0/3000060").unwrap()), "0/3000060");
    assert_eq!(parse_lsn("garbage"), None);
}

proptest! {
    #[test]
    fn the_chosen_replica_is_never_behind_another_that_answered(lsns in proptest::collection::vec(0u64..1_000_000, 1..6)) {
        let states: Vec<NodeState> = lsns.iter().enumerate().map(|(i, l)| replica(&format!("node{i}"), *l)).collect();
        match choose_replica(&states, true, None) {
            Choice::Promote { lsn, .. } => prop_assert_eq!(lsn, *lsns.iter().max().unwrap()),
            Choice::Refuse(m) => prop_assert!(false, "refused: {}", m),
        }
    }

    #[test]
    fn lsn_roundtrip(v in any::<u64>()) {
        prop_assert_eq!(parse_lsn(&fmt_lsn(v)), Some(v));
    }
}
