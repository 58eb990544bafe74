//! `dashctl up` as a user runs it: the whole platform on the agent engine
//! (a local etcd, one `dashctl node` per node, the API), a crash of the
//! primary's PostgreSQL healed by the agents with nothing lost, the old
//! node back as a streaming replica, Ctrl-C stopping everything, and a
//! second `dashctl up` reusing the data.

mod common;

use std::time::Duration;

use common::up::{eventually, statuses, swarm_found, Up};
use dash_platform::Topology;
use dash_testkit::Runner;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_runs_the_agent_engine_heals_a_crash_stops_on_ctrl_c_and_reuses_the_data() {
    let dir = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let home = dir.path().join("dash");
    let (api_port, metrics_port) = (dash_pg::free_port(), dash_pg::free_port());

    // A port given and taken: refused before anything is created.
    let held = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let held_port = held.local_addr().unwrap().port().to_string();
    let refused = Runner::new(env!("CARGO_BIN_EXE_dashctl"))
        .env("DASH_HOME", &home)
        .env("DASH_API_PORT", api_port.to_string())
        .env("METRICS_PORT", metrics_port.to_string())
        .run(&["up", "--pg-port", &held_port])
        .await;
    refused.expect_code(2);
    assert!(refused.stderr.contains("--pg-port"), "{}", refused.show());
    assert!(!Topology::path(&home).exists(), "nothing is recorded");

    // The defaults taken (as by a second platform on this machine): free
    // ports are recorded instead. Whatever of them we cannot hold is taken
    // by someone else already, which is the same case.
    let defaults = [54320, 54321, 8008, 8009, 2379, 2380];
    let _held: Vec<_> = (defaults.iter())
        .filter_map(|&p| std::net::TcpListener::bind(("127.0.0.1", p)).ok())
        .collect();
    let mut up = Up::start(&home, Vec::new(), api_port, metrics_port);
    up.wait_up(Duration::from_secs(180));
    let out = up.output();
    assert!(out.contains("recording a new cluster"), "{out}");
    assert!(out.contains("synchronous replication"), "{out}");
    assert!(out.contains("recording free ones instead"), "{out}");
    assert!(
        up.topo().ports().iter().all(|p| !defaults.contains(p)),
        "{:?}",
        up.topo().ports()
    );
    let topo = up.topo();

    // The runbook's commands find everything from the record, etcd included.
    let cli = Runner::new(env!("CARGO_BIN_EXE_dashctl"))
        .env("DASH_HOME", &home)
        .env("DASH_LOG", "error");
    let status = cli.run(&["db", "status"]).await;
    status.expect_code(0);
    assert!(status.stdout.contains("leader key:"), "{}", status.show());

    // A way into the database: libpq's environment, and psql on either role.
    let env = cli.run(&["env"]).await;
    env.expect_code(0);
    assert!(env.stdout.contains("export PGPASSFILE="), "{}", env.show());
    assert!(
        !env.stdout.contains(topo.password.expose()),
        "the password is printed"
    );
    for (flag, want) in [(None, "f"), (Some("--replica"), "t")] {
        let mut args = vec!["psql"];
        args.extend(flag);
        args.extend(["--", "-tAc", "SELECT pg_is_in_recovery()"]);
        let out = cli.run(&args).await;
        out.expect_code(0);
        assert_eq!(out.stdout.trim(), want, "{}", out.show());
    }

    let http = reqwest::Client::new();
    let token = topo.api_token.expose().to_string();
    let create = |name: &str| {
        http.post(up.api("/swarms"))
            .bearer_auth(&token)
            .json(&json!({"name": name, "strategy": "parallel"}))
            .timeout(Duration::from_secs(5))
            .send()
    };
    let before: Value = create("before-the-crash")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = (before["id"].as_str())
        .unwrap_or_else(|| panic!("no swarm id in {before}"))
        .to_string();

    // Crash the leader's PostgreSQL (every process, frozen first).
    let all = statuses(&topo).await;
    let old = all
        .iter()
        .find(|s| s.holds_key)
        .expect("a leader")
        .name
        .clone();
    let data_dir = topo.node(&old).unwrap().data_dir.clone();
    assert!(
        dash_bench::chaos::crash(&data_dir) > 0,
        "no process to kill"
    );

    // Writes continue on the other node, and the swarm written before is there.
    eventually(
        Duration::from_secs(30),
        "a write after the crash",
        || async {
            let r = create("after-the-crash").await.ok()?;
            r.status().is_success().then_some(())
        },
    )
    .await;
    assert!(
        swarm_found(&up, &token, &id).await,
        "the swarm written before was lost"
    );
    let new = eventually(Duration::from_secs(30), "a new leader", || async {
        let all = statuses(&topo).await;
        let l = all.iter().find(|s| s.holds_key && s.role == "primary")?;
        (l.name != old).then(|| l.name.clone())
    })
    .await;

    // The old node comes back as a streaming replica of the new leader ...
    // ... and, once caught up, the new leader's recorded synchronous standby.
    let pair = dash_platform::ha::wait_ha(&topo, Duration::from_secs(60), &|_| {}, &mut || None)
        .await
        .expect("highly available again");
    assert_eq!(
        (pair.leader.as_str(), pair.standby.as_deref()),
        (new.as_str(), Some(old.as_str()))
    );

    // A planned switchover needs no --etcd beside `dashctl up`: it moves the
    // key back to the old node, and the data stays.
    let sw = cli.run(&["db", "switchover", "--yes"]).await;
    sw.expect_code(0);
    eventually(
        Duration::from_secs(30),
        "the old node leading again",
        || async {
            let all = statuses(&topo).await;
            all.iter()
                .any(|s| s.name == old && s.holds_key && s.role == "primary")
                .then_some(())
        },
    )
    .await;
    assert!(
        swarm_found(&up, &token, &id).await,
        "the swarm was lost by the switchover"
    );

    // Maintenance through the CLI reaches the timeline too.
    for onoff in ["on", "off"] {
        let m = cli.run(&["db", "maintenance", onoff, "--yes"]).await;
        m.expect_code(0);
    }

    // The incident timeline, from etcd and the admin log, for the review.
    let inc = cli.run(&["db", "incidents", "--gap", "1s", "--json"]).await;
    inc.expect_code(0);
    let titles: Vec<String> = (inc.json()["incidents"].as_array().unwrap().iter())
        .map(|i| i["title"].as_str().unwrap_or_default().to_string())
        .collect();
    let all_titles = titles.join("; ");
    for hop in [format!("{old} -> {new}"), format!("{new} -> {old}")] {
        assert!(all_titles.contains(&hop), "{hop} in {titles:?}");
    }
    assert!(
        inc.stdout.contains("dashctl db switchover"),
        "the operator's step: {}",
        inc.show()
    );
    let toggles = (inc.json()["incidents"].as_array().unwrap().iter())
        .flat_map(|i| i["entries"].as_array().cloned().unwrap_or_default())
        .filter(|e| e["decision"] == "maintenance")
        .count();
    assert_eq!(toggles, 2, "maintenance on and off: {}", inc.show());

    // Ctrl-C stops everything: no server of any node, no etcd left.
    let (code, took) = up.interrupt();
    assert_eq!(code, 0, "{}", up.output());
    assert!(
        up.output().contains("dashctl up: stopped"),
        "{}",
        up.output()
    );
    eprintln!("dashctl up stopped in {took:?}");
    for n in &topo.nodes {
        assert!(
            dash_pg::data_dir_pids(&n.data_dir).is_empty(),
            "a process of {} outlived dashctl up",
            n.name
        );
    }
    let etcd = ("127.0.0.1", topo.etcd_client_port);
    assert!(
        std::net::TcpStream::connect(etcd).is_err(),
        "etcd still listens"
    );

    // A second `dashctl up` reuses the cluster and its data.
    up.spawn();
    up.wait_up(Duration::from_secs(120));
    assert!(
        up.output().contains("reusing the cluster"),
        "{}",
        up.output()
    );
    assert!(
        swarm_found(&up, &token, &id).await,
        "the data did not survive a restart"
    );
    let (code, _) = up.interrupt();
    assert_eq!(code, 0, "{}", up.output());
}
