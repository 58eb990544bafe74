//! `dashctl db status` and `dashctl db switchover` with etcd configured: a
//! real etcd, three real agents (`dashctl node`) with real PostgreSQL on
//! 127.0.0.1, and the real binary. The harness is `node_agents.rs`'s.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dash_store::pool::NoopObserver;
use dash_store::{Db, DbSettings, HostPort, Secret};
use dash_testkit::{Run, Runner, TempEtcd};
use serde_json::Value;

const PASSWORD: &str = "db-etcd-test-password";
const CLUSTER: &str = "db-etcd-test";

/// Three agents on 127.0.0.1 and their etcd; every process killed (its
/// PostgreSQL with it) and every file removed on drop.
struct Agents {
    etcd: TempEtcd,
    dir: tempfile::TempDir,
    ports: Vec<(u16, u16)>,
    children: Vec<Option<Child>>,
}

impl Agents {
    fn start() -> Agents {
        let etcd = TempEtcd::start().expect("etcd");
        let dir = tempfile::Builder::new()
            .prefix("dash-db-etcd-")
            .tempdir()
            .expect("temp dir");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let ports = (0..3)
            .map(|_| (dash_pg::free_port(), dash_pg::free_port()))
            .collect();
        let mut a = Agents {
            etcd,
            dir,
            ports,
            children: vec![None, None, None],
        };
        for i in 0..3 {
            a.start_agent(i);
        }
        a
    }

    fn name(i: usize) -> String {
        format!("a{}", i + 1)
    }

    fn data(&self, i: usize) -> PathBuf {
        self.dir.path().join(Agents::name(i)).join("data")
    }

    fn start_agent(&mut self, i: usize) {
        let home = self.dir.path().join(Agents::name(i));
        std::fs::create_dir_all(&home).unwrap();
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(home.join("agent.log"))
            .unwrap();
        let (pg, api) = self.ports[i];
        let child = Command::new(env!("CARGO_BIN_EXE_dashctl"))
            .args(["node", "--name", &Agents::name(i)])
            .args(["--etcd", &self.endpoints()])
            .args(["--cluster", CLUSTER])
            .arg("--pg-data")
            .arg(self.data(i))
            .args(["--pg-port", &pg.to_string(), "--pg-listen", "127.0.0.1"])
            .args(["--advertise", "127.0.0.1", "--node-bind", "127.0.0.1"])
            .args(["--node-port", &api.to_string(), "--ttl", "3s"])
            .env("DATABASE_PASSWORD", PASSWORD)
            .env("DASH_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start dashctl node");
        self.children[i] = Some(child);
    }

    fn kill_agent(&mut self, i: usize) {
        if let Some(mut c) = self.children[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn endpoints(&self) -> String {
        self.etcd.endpoints().join(",")
    }

    async fn status(&self, i: usize) -> Option<Value> {
        let url = format!("http://127.0.0.1:{}/status", self.ports[i].1);
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(500))
            .build()
            .ok()?;
        client.get(url).send().await.ok()?.json().await.ok()
    }

    /// The leader's index once it leads and both others stream from it.
    async fn wait_settled(&self, limit: Duration) -> usize {
        let deadline = Instant::now() + limit;
        loop {
            let mut all = Vec::new();
            for i in 0..3 {
                all.push(self.status(i).await.unwrap_or_default());
            }
            let leader =
                (0..3).find(|&i| all[i]["role"] == "primary" && all[i]["holds_key"] == true);
            if let Some(l) = leader {
                let others_stream = (0..3)
                    .filter(|&i| i != l)
                    .all(|i| all[i]["role"] == "replica" && all[i]["streaming"] == true);
                let has_sync = all[l]["sync_standbys"]
                    .as_array()
                    .is_some_and(|a| !a.is_empty());
                if others_stream && has_sync {
                    return l;
                }
            }
            assert!(
                Instant::now() < deadline,
                "not settled within {limit:?}: {all:?}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn db(&self) -> Db {
        let settings = DbSettings {
            hosts: (self.ports.iter())
                .map(|(pg, _)| HostPort {
                    host: "127.0.0.1".into(),
                    port: *pg,
                })
                .collect(),
            password: Secret::new(PASSWORD),
            query_timeout: Duration::from_secs(3),
            ..DbSettings::default()
        };
        Db::new(settings, Arc::new(NoopObserver))
    }

    /// The real binary with the database credentials and etcd in its
    /// environment only as the test passes them (no $DASH_HOME topology).
    fn runner(&self) -> Runner {
        Runner::new(env!("CARGO_BIN_EXE_dashctl"))
            .env("DATABASE_PASSWORD", PASSWORD)
            .env("DASH_HOME", self.dir.path())
            .env("DASH_METRICS_URL", "http://127.0.0.1:1/metrics")
    }

    fn logs(&self) -> String {
        (0..3)
            .map(|i| {
                let p = self.dir.path().join(Agents::name(i)).join("agent.log");
                let text = std::fs::read_to_string(p).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                format!(
                    "--- {}:\n{}",
                    Agents::name(i),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Agents {
    fn drop(&mut self) {
        for i in 0..3 {
            self.kill_agent(i);
            dash_pg::kill_data_dir_processes(&self.data(i));
        }
    }
}

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
    let agents = Agents::start();
    let old = agents.wait_settled(Duration::from_secs(120)).await;
    let old_name = Agents::name(old);
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
        .map(Agents::name)
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
    let new = (0..3).find(|&i| Agents::name(i) == new_name).unwrap();
    let url = format!("http://127.0.0.1:{}/primary", agents.ports[new].1);
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 200);

    // The row acknowledged before the switchover is on the new primary.
    assert_eq!(count(&db, id, Duration::from_secs(20)).await, 1);
}
