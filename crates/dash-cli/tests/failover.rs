//! `dashctl db switchover` and `dashctl db failover` against a real two-node
//! cluster with no supervisor running (the command acts as one, once).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use dash_ha::{ClusterOptions, LocalCluster, Role, Topology};
use dash_pg::kill_data_dir_processes;

/// A cluster in a temp dir; every node is killed and the dir removed on drop.
struct Cluster {
    home: tempfile::TempDir,
    dirs: Vec<PathBuf>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for d in &self.dirs {
            kill_data_dir_processes(d);
        }
    }
}

fn cluster() -> Cluster {
    use std::os::unix::fs::PermissionsExt;
    let home = tempfile::Builder::new()
        .prefix("dash-failover-test-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let ports = vec![dash_pg::free_port(), dash_pg::free_port()];
    assert_ne!(ports[0], ports[1]);
    let opts = ClusterOptions {
        replicas: 1,
        synchronous: true,
        base_port: ports[0],
        ports: Some(ports),
        api_url: "http://127.0.0.1:1".into(),
        metrics_url: "http://127.0.0.1:1/metrics".into(),
        api_token: Some("t".into()),
    };
    let c = LocalCluster::create(home.path(), &opts, &|_| {}).expect("create cluster");
    let dirs = c.topo.nodes.iter().map(|n| n.data_dir.clone()).collect();
    assert!(
        c.wait_streaming("node1", std::time::Duration::from_secs(20)),
        "replica never streamed"
    );
    Cluster { home, dirs }
}

fn dash(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dashctl"))
        .args(args)
        .env("DASH_HOME", home)
        .env("DASH_LOG", "error")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run dash")
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
    let home = c.home.path();

    // Without a terminal and without --yes, nothing happens.
    let out = dash(home, &["db", "switchover"]);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--yes"),
        "{out:?}"
    );
    assert_eq!(primary(home), "node0");

    // A dry run prints the plan and changes nothing.
    let out = dash(home, &["db", "switchover", "--dry-run"]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("stop node0 cleanly"));
    assert_eq!(primary(home), "node0");

    // Planned switchover: node1 takes over, node0 follows it, nothing is lost.
    let out = dash(home, &["db", "switchover", "--yes", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let o: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
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
    assert!(out.status.success(), "{out:?}");
    let o: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
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
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert_eq!(primary(home), "node0");
}
