use std::collections::BTreeMap;
use std::time::Duration;

use super::*;
use crate::amcheck::Amcheck;
use crate::connections::Session;
use crate::metrics::ApiMetrics;
use crate::probe::{NodeProbe, Step, WalReceiver};
use crate::NodeTarget;
use dash_store::HostPort;

pub(super) fn node(i: u16, role: Option<NodeRole>) -> NodeProbe {
    let mut n = NodeProbe::new(&NodeTarget {
        name: format!("node{i}"),
        address: HostPort {
            host: "127.0.0.1".into(),
            port: 5500 + i,
        },
        recorded_role: None,
    });
    let ok = Step::Ok { millis: 1.0 };
    if let Some(r) = role {
        (n.tcp, n.auth, n.sql, n.role) = (ok.clone(), ok.clone(), ok, Some(r));
        n.max_connections = Some(100);
        n.sessions.insert("idle".into(), 5);
        n.checksum_failures = Some(0);
        n.lsn = Some("0/3000000".into());
        if r == NodeRole::Replica {
            n.wal_receiver = Some(WalReceiver {
                status: "streaming".into(),
                sender: "127.0.0.1:5500".into(),
                received_timeline: Some(1),
                latest_end_lsn: None,
                last_message_age_seconds: Some(0.1),
            });
        }
    } else {
        n.tcp = Step::Failed {
            reason: "refused".into(),
            detail: "Connection refused".into(),
        };
    }
    n
}

fn signals(first: Vec<NodeProbe>, last: Vec<NodeProbe>) -> Signals {
    Signals {
        first,
        last,
        window: Duration::from_secs(5),
        metrics_gap: Duration::from_secs(1),
        idle_threshold: Duration::from_secs(300),
        connection_ratio: 0.8,
        ..Signals::default()
    }
}

pub(super) fn steady(nodes: Vec<NodeProbe>) -> Signals {
    signals(nodes.clone(), nodes)
}

fn pool(waiting: f64, timeouts: f64, errors: f64) -> ApiMetrics {
    ApiMetrics {
        pg_up: Some(1.0),
        pool_max_size: Some(20.0),
        pool_in_use: Some(20.0),
        pool_waiting: Some(waiting),
        acquire_timeouts: Some(timeouts),
        connection_errors: BTreeMap::from([("refused".to_string(), errors)]),
        ..ApiMetrics::default()
    }
}

fn situations(s: &Signals) -> Vec<Situation> {
    classify(s).iter().map(|f| f.situation).collect()
}

#[test]
fn a_primary_and_a_streaming_replica_are_healthy() {
    let s = steady(vec![
        node(0, Some(NodeRole::Primary)),
        node(1, Some(NodeRole::Replica)),
    ]);
    assert!(classify(&s).is_empty());
}

#[test]
fn a_lost_primary_with_replicas_promotes_the_most_advanced() {
    let mut behind = node(1, Some(NodeRole::Replica));
    behind.lsn = Some("0/2FFFFFF".into());
    let mut ahead = node(2, Some(NodeRole::Replica));
    ahead.lsn = Some("1/0".into());
    let s = steady(vec![node(0, None), behind, ahead]);
    let f = classify(&s);
    assert_eq!(f[0].situation, Situation::PrimaryLost);
    assert_eq!(f[0].situation.exit_code(), 30);
    assert!(
        f[0].fix[0].starts_with("dashctl db failover") && f[0].fix[0].contains("node2"),
        "{:?}",
        f[0].fix
    );
    assert!(f[0]
        .evidence
        .iter()
        .any(|e| e.contains("node0") && e.contains("refused")));
}

#[test]
fn a_lone_dead_primary_needs_a_restart() {
    let f = classify(&steady(vec![node(0, None)]));
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].situation, Situation::TransientConnection);
    assert!(f[0]
        .fix
        .iter()
        .any(|c| c.contains("rollout restart statefulset/postgres")));
}

#[test]
fn a_primary_that_came_back_is_transient() {
    let mut s = signals(vec![node(0, None)], vec![node(0, Some(NodeRole::Primary))]);
    s.recovered_after
        .insert("node0".into(), Duration::from_millis(1200));
    let f = classify(&s);
    assert_eq!(situations(&s), [Situation::TransientConnection]);
    assert!(
        f[0].evidence[0].contains("answered again after 1.2s"),
        "{:?}",
        f[0].evidence
    );
    assert!(f[0].fix.iter().any(|c| c.contains("dashctl db status")));
}

#[test]
fn a_dead_replica_is_scenario_1_and_a_fenced_node_is_ignored() {
    let s = steady(vec![node(0, Some(NodeRole::Primary)), node(1, None)]);
    let f = classify(&s);
    assert_eq!(situations(&s), [Situation::TransientConnection]);
    assert!(f[0].fix[0].contains("node1"));
    let mut fenced = node(1, None);
    fenced.recorded_role = Some(Role::Fenced);
    assert!(classify(&steady(vec![node(0, Some(NodeRole::Primary)), fenced])).is_empty());
}

#[test]
fn corruption_outranks_pool_exhaustion() {
    let mut p = node(0, Some(NodeRole::Primary));
    p.checksum_failures = Some(3);
    let mut s = steady(vec![p]);
    s.metrics_before = Some(pool(2.0, 0.0, 0.0));
    s.metrics_after = s.metrics_before.clone();
    assert_eq!(
        situations(&s),
        [Situation::Corruption, Situation::PoolExhaustion]
    );
    let f = classify(&s);
    assert!(f[0]
        .fix
        .iter()
        .any(|c| c == "dashctl db restore FILE --stop-writes"));

    let mut s = steady(vec![node(0, Some(NodeRole::Primary))]);
    s.amcheck = Some(Amcheck {
        failures: vec!["index public.swarms_pkey: invalid page".into()],
        ..Amcheck::default()
    });
    assert_eq!(situations(&s), [Situation::Corruption]);
}

#[test]
fn waiting_clients_and_rising_timeouts_are_scenario_4_with_a_pool_size() {
    let mut s = steady(vec![node(0, Some(NodeRole::Primary))]);
    s.metrics_before = Some(pool(0.0, 3.0, 0.0));
    s.metrics_after = Some(pool(0.0, 5.0, 0.0));
    let f = classify(&s);
    assert_eq!(f[0].situation, Situation::PoolExhaustion);
    assert!(
        f[0].evidence[0].contains("rose by 2"),
        "{:?}",
        f[0].evidence
    );
    assert!(
        f[0].fix
            .iter()
            .any(|c| c.starts_with("dashctl db pool --size 40")),
        "{:?}",
        f[0].fix
    );
    assert!(f[0]
        .fix
        .iter()
        .any(|c| c == "dashctl db terminate --idle-in-transaction --older-than 300s"));
}

#[test]
fn idle_sessions_or_a_full_server_are_scenario_4_without_growing_the_pool() {
    let mut p = node(0, Some(NodeRole::Primary));
    p.sessions.insert("active".into(), 80);
    let mut s = steady(vec![p]);
    s.idle_in_transaction = vec![Session {
        pid: 42,
        user: Some("dash_user".into()),
        application: "worker".into(),
        client: None,
        database: Some("dash".into()),
        state: "idle in transaction".into(),
        query_seconds: Some(400.0),
        transaction_seconds: Some(400.0),
        state_seconds: Some(399.0),
        wait: None,
        query: None,
    }];
    s.metrics_before = Some(pool(1.0, 0.0, 0.0));
    let f = classify(&s);
    assert_eq!(situations(&s), [Situation::PoolExhaustion]);
    assert!(f[0].evidence.iter().any(|e| e.contains("pid 42")));
    assert!(f[0]
        .evidence
        .iter()
        .any(|e| e.contains("85 of max_connections 100")));
    assert!(
        !f[0].fix.iter().any(|c| c.contains("dashctl db pool")),
        "near max_connections: {:?}",
        f[0].fix
    );
}

#[test]
fn too_many_clients_is_exhaustion_not_a_lost_primary() {
    let mut n = node(0, None);
    n.tcp = Step::Ok { millis: 1.0 };
    n.auth = Step::Failed {
        reason: "too_many_connections".into(),
        detail: "sorry, too many clients already".into(),
    };
    let s = steady(vec![n, node(1, Some(NodeRole::Replica))]);
    assert_eq!(situations(&s), [Situation::PoolExhaustion]);
}

#[test]
fn connection_errors_rising_while_the_database_answers_are_scenario_1() {
    let mut s = steady(vec![node(0, Some(NodeRole::Primary))]);
    s.metrics_before = Some(pool(0.0, 0.0, 4.0));
    s.metrics_after = Some(pool(0.0, 0.0, 9.0));
    let f = classify(&s);
    assert_eq!(situations(&s), [Situation::TransientConnection]);
    assert!(
        f[0].evidence[0].contains("rose by 5"),
        "{:?}",
        f[0].evidence
    );
}

#[test]
fn small_parsers() {
    assert_eq!(parse_lsn("16/B374D848"), Some((0x16 << 32) | 0xB374_D848));
    assert_eq!(parse_lsn("nonsense"), None);
    assert_eq!(flag_duration(Duration::from_secs(300)), "300s");
    assert_eq!(flag_duration(Duration::from_millis(1500)), "1500ms");
}

#[test]
fn a_slow_answer_is_transient() {
    let mut p = node(0, Some(NodeRole::Primary));
    p.auth = Step::Ok { millis: 2000.0 };
    let f = classify(&steady(vec![p]));
    assert_eq!(f[0].situation, Situation::TransientConnection);
    assert!(f[0].evidence[0].contains("slowly"), "{:?}", f[0].evidence);
}

#[test]
fn without_a_primary_pool_symptoms_are_not_exhaustion() {
    let mut s = steady(vec![node(0, None), node(1, Some(NodeRole::Replica))]);
    s.metrics_before = Some(pool(3.0, 1.0, 1.0));
    s.metrics_after = Some(pool(5.0, 9.0, 9.0));
    assert_eq!(situations(&s), [Situation::PrimaryLost]);
}
