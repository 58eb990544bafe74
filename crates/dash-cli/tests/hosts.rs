//! `dashctl chaos --hosts` end to end: three network-namespace hosts, each
//! with etcd and the real `dashctl node`, a client host with writers, and
//! the checker. Needs root (network namespaces, nftables): skipped with a
//! reason otherwise. One round per scenario keeps the suite short; the
//! measured figures come from `dashctl chaos ... --rounds 20` (docs/BENCHMARKS.md).

use std::sync::Arc;
use std::time::Duration;

use dash_bench::hosts::{self, HostScenario, HostsOptions};

/// One bed at a time: three agents, three etcd members and the writers
/// already fill this machine's two cores.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn drill(scenario: HostScenario) -> Option<hosts::HostsReport> {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    if !dash_netns::is_root() {
        eprintln!("skipped {scenario:?}: network-namespace hosts need root (ip netns, nftables)");
        return None;
    }
    let opts = HostsOptions {
        scenario,
        rounds: 1,
        concurrency: 3,
        synchronous: true,
        members: 3,
        ttl: Duration::from_secs(3),
        duration: Duration::from_secs(5),
        dashctl: env!("CARGO_BIN_EXE_dashctl").into(),
        keep: false,
    };
    let run = hosts::run(&opts, Arc::new(|m: &str| eprintln!("{m}"))).expect("the bed starts");
    if let Some(e) = run.stopped_early {
        panic!("{scenario:?} stopped early: {e}");
    }
    let report = run.report;
    assert_eq!(report.rounds.len(), 1);
    assert!(
        report.clean(),
        "{scenario:?} was not clean: {}",
        report.render()
    );
    assert!(report.acked_writes > 0, "no write was acknowledged");
    Some(report)
}

#[test]
fn a_crashed_primary_host_fails_over_with_nothing_lost() {
    let Some(r) = drill(HostScenario::HostCrash) else {
        return;
    };
    let round = &r.rounds[0];
    assert_ne!(
        round.old_primary, round.new_primary,
        "the leader did not change"
    );
    assert_eq!(round.promotions, 1, "one failover, one promotion");
    assert!(
        round.ha_restored_ms.is_some(),
        "never highly available again"
    );
}

#[test]
fn a_partitioned_primary_stops_and_its_local_writer_gets_nothing_acknowledged_after() {
    let Some(r) = drill(HostScenario::Partition) else {
        return;
    };
    let round = &r.rounds[0];
    assert_ne!(round.old_primary, round.new_primary);
    assert_eq!(round.superseded_writes, 0);
    assert!(
        round.old_rejoined_ms.is_some(),
        "the old primary never came back as a replica"
    );
}

#[test]
fn a_lost_replica_does_not_stop_writes() {
    let Some(r) = drill(HostScenario::ReplicaLost) else {
        return;
    };
    let round = &r.rounds[0];
    assert_eq!(
        round.old_primary, round.new_primary,
        "losing a replica moved the primary"
    );
    assert_eq!(round.promotions, 0);
}
