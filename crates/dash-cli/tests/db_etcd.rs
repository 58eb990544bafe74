//! `dashctl db status` and `dashctl db switchover` with etcd configured: a
//! real etcd, three real agents (`dashctl node`) with real PostgreSQL on
//! 127.0.0.1 (`dash_testkit::TempAgents`), and the real binary.

use std::time::{Duration, Instant};

use dash_store::Db;
use dash_testkit::{Run, Runner, TempAgents};

const CLUSTER: &str = "db-etcd-test";

/// Runs `args` until it exits 0 (member records follow the agents by a
/// tick), panicking with the last run after `limit`.
async fn until_ok(runner: &Runner, args: &[&str], limit: Duration) -> Run {
    let deadline = Instant::now() + limit;
    loop {
        let run = runner.run(args).await;
        if run.code == 0 || Instant::now() >= deadline {
            return run;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Counts rows with `id`, retrying while the primary changes.
async fn count(db: &Db, id: uuid::Uuid, limit: Duration) -> i64 {
    let deadline = Instant::now() + limit;
    loop {
        let n = async {
            let mut c = db.conn().await?;
            let row = c
                .query_one("SELECT count(*) FROM t WHERE id = $1", &[&id])
                .await?;
            Ok::<i64, dash_store::StoreError>(row.get(0))
        }
        .await;
        match n {
            Ok(n) => return n,
            Err(e) if Instant::now() >= deadline => panic!("cannot read the row: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_the_ha_tier_and_switchover_hands_the_key_over_through_etcd() {
    let agents = TempAgents::start(env!("CARGO_BIN_EXE_dashctl"), CLUSTER);
    let old = agents.wait_ha(Duration::from_secs(120), None, true).await;
    let old_name = TempAgents::name(old);
    let db = agents.db();
    let id = uuid::Uuid::new_v4();
    let mut c = db.conn().await.expect("connect to the primary");
    c.batch_execute("CREATE TABLE t (id uuid PRIMARY KEY)")
        .await
        .expect("table");
    c.execute("INSERT INTO t (id) VALUES ($1)", &[&id])
        .await
        .expect("a row written before the switchover");
    drop(c);

    let runner = agents.runner();
    let etcd = agents.endpoints();
    let with_etcd = |cmd: &[&'static str]| -> Vec<String> {
        let mut v: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
        v.extend([
            "--etcd".into(),
            etcd.clone(),
            "--cluster".into(),
            CLUSTER.into(),
        ]);
        v
    };

    // db status --json: the leader key, every member from etcd, each agent's
    // node API, and the nodes probed are etcd's members.
    let args = with_etcd(&["db", "status", "--json"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = until_ok(&runner, &args, Duration::from_secs(30)).await;
    run.expect_code(0);
    let j = run.json();
    let ha = &j["ha"];
    assert_eq!(ha["leader"], old_name.as_str(), "{}", run.show());
    let names: Vec<&str> = (ha["members"].as_array().unwrap().iter())
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a1", "a2", "a3"], "{}", run.show());
    for m in ha["members"].as_array().unwrap() {
        assert_eq!(m["node_api"]["reachable"], true, "{m}");
        if m["name"] == old_name.as_str() {
            assert_eq!(m["node_api"]["primary_http"], 200, "{m}");
            assert_eq!(m["node_api"]["status"]["holds_key"], true, "{m}");
        } else {
            assert_eq!(m["streaming"], true, "{m}");
        }
    }
    let standby = ha["sync"]["standbys"][0]
        .as_str()
        .expect("a sync standby")
        .to_string();
    let probed: Vec<&str> = (j["nodes"].as_array().unwrap().iter())
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(probed, ["a1", "a2", "a3"], "nodes come from etcd's members");
    assert!(
        !ha["history"].as_array().unwrap().is_empty(),
        "{}",
        run.show()
    );

    // The table, with etcd from the environment.
    let run = runner
        .clone()
        .env("DASH_ETCD_ENDPOINTS", etcd.as_str())
        .env("DASH_CLUSTER", CLUSTER)
        .run(&["db", "status"])
        .await;
    assert!(
        run.stdout
            .contains(&format!("HA (etcd cluster {CLUSTER} at {etcd})"))
            && run.stdout.contains(&format!("leader key: {old_name}")),
        "{}",
        run.show()
    );

    // db diagnose reads the same HA view: healthy.
    let args = with_etcd(&["db", "diagnose", "--json", "--window", "1s"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = until_ok(&runner, &args, Duration::from_secs(30)).await;
    run.expect_code(0);
    assert_eq!(run.json()["status"]["ha"]["leader"], old_name.as_str());

    // Guard rails: a target that is not a recorded synchronous standby is
    // refused before anything is filed, so is a run nobody confirmed;
    // --dry-run changes nothing.
    let not_sync = (0..3)
        .map(TempAgents::name)
        .find(|n| *n != old_name && *n != standby)
        .unwrap();
    let args = with_etcd(&["db", "switchover", "--yes", "--target"]);
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    args.insert(4, &not_sync);
    let run = runner.run(&args).await;
    run.expect_code(4);
    assert!(
        run.stderr.contains("not a recorded synchronous standby"),
        "{}",
        run.show()
    );
    let args = with_etcd(&["db", "switchover"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = runner.run(&args).await;
    run.expect_code(4);
    assert!(
        run.stderr.contains("pass --yes"),
        "no terminal, no --yes: {}",
        run.show()
    );
    let args = with_etcd(&["db", "switchover", "--dry-run"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = runner.run(&args).await;
    run.expect_code(0);
    assert!(
        run.stdout
            .contains(&format!("switchover from {old_name} to {standby}")),
        "{}",
        run.show()
    );

    // The switchover itself.
    let args = with_etcd(&["db", "switchover", "--yes", "--json", "--wait", "90s"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = runner.run(&args).await;
    if run.code != 0 {
        panic!("{}\n{}", run.show(), agents.logs());
    }
    let j = run.json();
    assert_eq!(j["outcome"], "done", "{}", run.show());
    let new_name = j["new_leader"].as_str().unwrap().to_string();
    assert_ne!(new_name, old_name);
    assert_eq!(new_name, standby, "the key goes to the synchronous standby");
    assert!(j["seconds"].as_f64().unwrap() > 0.0);
    assert!(
        run.stderr.contains("filed: switchover"),
        "progress lines: {}",
        run.show()
    );
    let new = (0..3).find(|&i| TempAgents::name(i) == new_name).unwrap();
    let url = format!("http://127.0.0.1:{}/primary", agents.api_port(new));
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 200);

    // The row acknowledged before the switchover is on the new primary.
    assert_eq!(count(&db, id, Duration::from_secs(20)).await, 1);
}
