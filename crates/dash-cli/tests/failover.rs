//! `dashctl db switchover` and `dashctl db failover` against a real two-node
//! cluster with no supervisor running (the command acts as one, once).

use std::path::Path;

use dash_ha::{ClusterOptions, LocalCluster, Role, Topology};
use dash_testkit::{Run, Runner, TempCluster};

/// A two-node synchronous cluster in a temp dir, its replica streaming;
/// every node is killed and the dir removed on drop.
fn cluster() -> TempCluster {
    let opts = ClusterOptions {
        replicas: 1,
        synchronous: true,
        base_port: 0,
        ports: None,
        api_url: "http://127.0.0.1:1".into(),
        metrics_url: "http://127.0.0.1:1/metrics".into(),
        api_token: Some("t".into()),
    };
    let (scratch, c) = TempCluster::create(opts, &|_| {}).expect("create cluster");
    assert!(
        c.wait_streaming("node1", std::time::Duration::from_secs(20)),
        "replica never streamed"
    );
    scratch
}

fn dash(home: &Path, args: &[&str]) -> Run {
    Runner::new(env!("CARGO_BIN_EXE_dashctl"))
        .env("DASH_HOME", home)
        .env("DASH_LOG", "error")
        .run_blocking(args)
}

fn primary(home: &Path) -> String {
    Topology::load(home)
        .unwrap()
        .primary()
        .unwrap()
        .name
        .clone()
}

#[test]
fn switchover_then_failover_move_the_primary_safely() {
    let c = cluster();
    let home = c.home();

    // Without a terminal and without --yes, nothing happens.
    let out = dash(home, &["db", "switchover"]);
    out.expect_code(4);
    assert!(out.stderr.contains("--yes"), "{}", out.show());
    assert_eq!(primary(home), "node0");

    // A dry run prints the plan and changes nothing.
    let out = dash(home, &["db", "switchover", "--dry-run"]);
    out.expect_code(0);
    assert!(out.stdout.contains("stop node0 cleanly"));
    assert_eq!(primary(home), "node0");

    // Planned switchover: node1 takes over, node0 follows it, nothing is lost.
    let out = dash(home, &["db", "switchover", "--yes", "--json"]);
    out.expect_code(0);
    let o: serde_json::Value = out.json();
    assert_eq!(o["ok"], true, "{o}");
    assert_eq!(o["new_primary"], "node1");
    assert!(o["write_gap_ms"].as_f64().unwrap() < 30_000.0, "{o}");
    let c2 = LocalCluster::open(home).unwrap();
    assert_eq!(c2.topo.node("node0").unwrap().role, Role::Replica);
    assert!(
        c2.wait_streaming("node0", std::time::Duration::from_secs(20)),
        "old primary does not follow"
    );

    // Unplanned failover back: node1 is fenced and node0 promoted.
    let out = dash(home, &["db", "failover", "--yes", "--json"]);
    out.expect_code(0);
    let o: serde_json::Value = out.json();
    assert_eq!(o["new_primary"], "node0", "{o}");
    let t = Topology::load(home).unwrap();
    assert_eq!(t.node("node1").unwrap().role, Role::Fenced);
    // The fenced node cannot start as a primary: it has standby.signal.
    assert!(t
        .node("node1")
        .unwrap()
        .data_dir
        .join("standby.signal")
        .exists());

    // With the only replica fenced, another failover is refused, not forced.
    let out = dash(home, &["db", "failover", "--yes", "--json"]);
    out.expect_code(4);
    assert_eq!(primary(home), "node0");
}
