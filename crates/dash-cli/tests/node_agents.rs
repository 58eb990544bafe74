//! `dashctl node` on one machine: three real agents (the real binary), a
//! real etcd, real PostgreSQL. The multi-host scenarios with partitions run
//! on network namespaces (`dash-bench/tests/hosts.rs`); these need no root
//! beyond what PostgreSQL itself needs.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dash_store::pool::NoopObserver;
use dash_store::{Db, DbSettings, HostPort, Secret};
use dash_testkit::TempEtcd;
use serde_json::Value;

const PASSWORD: &str = "agents-test-password";
const TTL: &str = "3s";

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
            .prefix("dash-agents-")
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
            .args(["--etcd", &self.etcd.endpoints().join(",")])
            .args(["--cluster", "agents-test"])
            .arg("--pg-data")
            .arg(self.data(i))
            .args(["--pg-port", &pg.to_string(), "--pg-listen", "127.0.0.1"])
            .args(["--advertise", "127.0.0.1", "--node-bind", "127.0.0.1"])
            .args(["--node-port", &api.to_string(), "--ttl", TTL])
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

    async fn status(&self, i: usize) -> Option<Value> {
        let url = format!("http://127.0.0.1:{}/status", self.ports[i].1);
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(500))
            .build()
            .ok()?;
        client.get(url).send().await.ok()?.json().await.ok()
    }

    /// The leader's index once one leads with a streaming, recorded standby.
    async fn wait_ha(&self, limit: Duration, not: Option<usize>) -> usize {
        let deadline = Instant::now() + limit;
        loop {
            let mut all = Vec::new();
            for i in 0..3 {
                all.push(self.status(i).await);
            }
            let leader = (0..3).find(|i| {
                Some(*i) != not
                    && all[*i]
                        .as_ref()
                        .is_some_and(|s| s["role"] == "primary" && s["holds_key"] == true)
            });
            if let Some(l) = leader {
                let sync = all[l].as_ref().unwrap()["sync_standbys"].clone();
                let streaming = (0..3).any(|i| {
                    all[i].as_ref().is_some_and(|s| {
                        s["role"] == "replica"
                            && s["streaming"] == true
                            && sync
                                .as_array()
                                .is_some_and(|a| a.iter().any(|n| *n == s["name"]))
                    })
                });
                if streaming {
                    return l;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no leader with a synchronous standby within {limit:?}: {all:?}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn db(&self) -> Db {
        let settings = DbSettings {
            hosts: self
                .ports
                .iter()
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

/// Writes `n` rows, each acknowledged, retrying through a failover.
async fn write(db: &Db, n: usize, limit: Duration) -> Vec<uuid::Uuid> {
    let deadline = Instant::now() + limit;
    let mut acked = Vec::new();
    while acked.len() < n {
        assert!(
            Instant::now() < deadline,
            "writes did not go through within {limit:?}"
        );
        let id = uuid::Uuid::new_v4();
        let ok = async {
            let mut c = db.conn().await?;
            c.execute("INSERT INTO t (id) VALUES ($1)", &[&id]).await
        }
        .await;
        match ok {
            Ok(_) => acked.push(id),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    acked
}

async fn missing(db: &Db, ids: &[uuid::Uuid]) -> usize {
    let mut c = db.conn().await.expect("connect");
    let n: i64 = c
        .query_one("SELECT count(*) FROM t WHERE id = ANY($1)", &[&ids])
        .await
        .expect("count")
        .get(0);
    ids.len() - n as usize
}

async fn setup() -> (Agents, Db, usize) {
    let agents = Agents::start();
    let leader = agents.wait_ha(Duration::from_secs(90), None).await;
    let db = agents.db();
    let mut c = db.conn().await.expect("connect to the primary");
    c.batch_execute("CREATE TABLE t (id uuid PRIMARY KEY)")
        .await
        .expect("table");
    drop(c);
    (agents, db, leader)
}

fn gone(dir: &Path, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if dash_pg::data_dir_pids(dir).is_empty() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_primary_hands_over_at_once_and_rejoins_with_nothing_lost() {
    let (agents, db, old) = setup().await;
    let mut acked = write(&db, 200, Duration::from_secs(20)).await;
    let crashed = Instant::now();
    dash_pg::kill_data_dir_processes(&agents.data(old));
    acked.extend(write(&db, 200, Duration::from_secs(30)).await);
    let new = agents.wait_ha(Duration::from_secs(60), None).await;
    assert_ne!(new, old, "the crashed primary kept the key");
    assert!(
        crashed.elapsed() < Duration::from_secs(60),
        "writes resumed only after {:?}",
        crashed.elapsed()
    );
    assert_eq!(missing(&db, &acked).await, 0, "acknowledged writes lost");
    // The old primary comes back as a streaming replica of the new one.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = agents.status(old).await.unwrap_or_default();
        if s["role"] == "replica" && s["streaming"] == true {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "old primary never rejoined: {s}\n{}",
            agents.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The node API and metrics say who leads.
    let url = format!("http://127.0.0.1:{}/primary", agents.ports[new].1);
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 200);
    let url = format!("http://127.0.0.1:{}/primary", agents.ports[old].1);
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 503);
    let url = format!("http://127.0.0.1:{}/replica", agents.ports[old].1);
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 200);
    let url = format!("http://127.0.0.1:{}/metrics", agents.ports[new].1);
    let text = reqwest::get(&url).await.unwrap().text().await.unwrap();
    assert!(text.contains("dash_node_leader 1"), "{text}");
    assert!(
        text.contains("dash_node_decisions_total{decision=\"promote\",outcome=\"ok\"}"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_agent_takes_its_postgres_with_it_and_a_standby_takes_the_key() {
    let (mut agents, db, old) = setup().await;
    let mut acked = write(&db, 100, Duration::from_secs(20)).await;
    agents.kill_agent(old);
    assert!(
        gone(&agents.data(old), Duration::from_secs(5)),
        "PostgreSQL outlived its agent"
    );
    acked.extend(write(&db, 100, Duration::from_secs(30)).await);
    let new = agents.wait_ha(Duration::from_secs(60), Some(old)).await;
    assert_ne!(new, old);
    agents.start_agent(old);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = agents.status(old).await.unwrap_or_default();
        if s["role"] == "replica" && s["streaming"] == true && s["leader"] == Agents::name(new) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "restarted agent never rejoined: {s}\n{}",
            agents.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(missing(&db, &acked).await, 0, "acknowledged writes lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_that_cannot_renew_its_lease_stops_writing_before_it_expires() {
    let (mut agents, db, leader) = setup().await;
    let acked = write(&db, 50, Duration::from_secs(20)).await;
    let before = agents.status(leader).await.unwrap();
    let lease_left = Duration::from_millis(before["lease_remaining_ms"].as_u64().unwrap());
    // etcd gone: nobody can renew, so nobody may stay writable.
    let cut = Instant::now();
    let cfg = agents.etcd.member.config().clone();
    agents.etcd.member.kill();
    let ttl = Duration::from_secs(3);
    let fenced = loop {
        let s = agents.status(leader).await.unwrap_or_default();
        if s["role"] != "primary" {
            break cut.elapsed();
        }
        assert!(
            cut.elapsed() < ttl * 3,
            "still primary long after its lease: {s}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        fenced <= lease_left + Duration::from_millis(500),
        "fenced after {fenced:?}, but the lease was certain for only {lease_left:?}"
    );
    assert!(
        fenced < ttl,
        "fenced after {fenced:?}, not before the {ttl:?} TTL could expire"
    );
    // etcd back: a leader again, and nothing acknowledged is lost.
    agents.etcd.member = dash_dcs::EtcdMember::start(cfg).expect("etcd again");
    agents.wait_ha(Duration::from_secs(90), None).await;
    assert_eq!(missing(&db, &acked).await, 0);
}
