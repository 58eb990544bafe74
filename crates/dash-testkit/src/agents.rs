//! Three `dashctl node` agents on 127.0.0.1 (the real binary), their etcd
//! and their PostgreSQL: every process killed (PostgreSQL dies with its
//! agent) and every file removed on drop, even when a test panics.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dash_store::pool::NoopObserver;
use dash_store::{Db, DbSettings, HostPort, Secret};
use serde_json::Value;

use crate::TempEtcd;

/// The agents' superuser password (their `DATABASE_PASSWORD`).
pub const AGENTS_PASSWORD: &str = "temp-agents-password";

/// Three agents of one cluster.
pub struct TempAgents {
    pub etcd: TempEtcd,
    dir: tempfile::TempDir,
    dashctl: PathBuf,
    cluster: String,
    /// (PostgreSQL port, node API port) per agent.
    ports: Vec<(u16, u16)>,
    children: Vec<Option<Child>>,
}

impl TempAgents {
    /// Starts etcd and three agents of `cluster` running `dashctl`.
    pub fn start(dashctl: impl Into<PathBuf>, cluster: &str) -> TempAgents {
        let etcd = TempEtcd::start().expect("etcd");
        let dir = tempfile::Builder::new()
            .prefix("dash-agents-")
            .tempdir()
            .expect("temp dir");
        // The server user must reach the data directories below it.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let ports = (0..3)
            .map(|_| (dash_pg::free_port(), dash_pg::free_port()))
            .collect();
        let mut a = TempAgents {
            etcd,
            dir,
            dashctl: dashctl.into(),
            cluster: cluster.to_string(),
            ports,
            children: vec![None, None, None],
        };
        for i in 0..3 {
            a.start_agent(i);
        }
        a
    }

    /// Member name of agent `i`: `a1`, `a2`, `a3`.
    pub fn name(i: usize) -> String {
        format!("a{}", i + 1)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn data(&self, i: usize) -> PathBuf {
        self.dir.path().join(TempAgents::name(i)).join("data")
    }

    pub fn pg_port(&self, i: usize) -> u16 {
        self.ports[i].0
    }

    pub fn api_port(&self, i: usize) -> u16 {
        self.ports[i].1
    }

    /// The etcd endpoints, comma-separated (`--etcd`).
    pub fn endpoints(&self) -> String {
        self.etcd.endpoints().join(",")
    }

    /// Starts (again) agent `i`.
    pub fn start_agent(&mut self, i: usize) {
        let home = self.dir.path().join(TempAgents::name(i));
        std::fs::create_dir_all(&home).unwrap();
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(home.join("agent.log"))
            .unwrap();
        let (pg, api) = self.ports[i];
        let child = Command::new(&self.dashctl)
            .args(["node", "--name", &TempAgents::name(i)])
            .args(["--etcd", &self.endpoints()])
            .args(["--cluster", &self.cluster])
            .arg("--pg-data")
            .arg(self.data(i))
            .args(["--pg-port", &pg.to_string(), "--pg-listen", "127.0.0.1"])
            .args(["--advertise", "127.0.0.1", "--node-bind", "127.0.0.1"])
            .args(["--node-port", &api.to_string(), "--ttl", "3s"])
            .env("DATABASE_PASSWORD", AGENTS_PASSWORD)
            .env("DASH_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start dashctl node");
        self.children[i] = Some(child);
    }

    /// SIGKILLs agent `i` (its PostgreSQL dies with it).
    pub fn kill_agent(&mut self, i: usize) {
        if let Some(mut c) = self.children[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Agent `i`'s `/status`, if it answers within 500 ms.
    pub async fn status(&self, i: usize) -> Option<Value> {
        let url = format!("http://127.0.0.1:{}/status", self.api_port(i));
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(500))
            .build()
            .ok()?;
        client.get(url).send().await.ok()?.json().await.ok()
    }

    /// Waits until agent `i`'s `/status` satisfies `ok`; panics with it
    /// and the agents' logs after `limit`.
    pub async fn wait_status(&self, i: usize, limit: Duration, ok: impl Fn(&Value) -> bool) {
        let deadline = Instant::now() + limit;
        loop {
            let s = self.status(i).await.unwrap_or_default();
            if ok(&s) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "agent {} not there within {limit:?}: {s}\n{}",
                TempAgents::name(i),
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The leader's index once one (other than `not`) leads with a
    /// streaming, recorded synchronous standby; with `all_stream`, once every
    /// other agent streams from it too. Panics with the agents' logs after `limit`.
    pub async fn wait_ha(&self, limit: Duration, not: Option<usize>, all_stream: bool) -> usize {
        let deadline = Instant::now() + limit;
        loop {
            let mut all = Vec::new();
            for i in 0..3 {
                all.push(self.status(i).await.unwrap_or_default());
            }
            let leader = (0..3).find(|&i| {
                Some(i) != not && all[i]["role"] == "primary" && all[i]["holds_key"] == true
            });
            if let Some(l) = leader {
                let sync = all[l]["sync_standbys"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let streams = |i: usize| all[i]["role"] == "replica" && all[i]["streaming"] == true;
                let recorded = (0..3).any(|i| streams(i) && sync.contains(&all[i]["name"]));
                let everyone = (0..3).filter(|&i| i != l).all(streams);
                if recorded && (!all_stream || everyone) {
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

    /// The real `dashctl` with the agents' database password and etcd only
    /// as a test passes them (no `$DASH_HOME` topology, no API metrics).
    pub fn runner(&self) -> crate::Runner {
        crate::Runner::new(&self.dashctl)
            .env("DATABASE_PASSWORD", AGENTS_PASSWORD)
            .env("DASH_HOME", self.dir())
            .env("DASH_METRICS_URL", "http://127.0.0.1:1/metrics")
    }

    /// A pool over the three servers, as the API would have.
    pub fn db(&self) -> Db {
        let settings = DbSettings {
            hosts: (0..3)
                .map(|i| HostPort {
                    host: "127.0.0.1".into(),
                    port: self.pg_port(i),
                })
                .collect(),
            password: Secret::new(AGENTS_PASSWORD),
            query_timeout: Duration::from_secs(3),
            ..DbSettings::default()
        };
        Db::new(settings, Arc::new(NoopObserver))
    }

    /// [`TempAgents::db`], with the table `t (id uuid PRIMARY KEY)` that
    /// tests write to created on the primary.
    pub async fn db_with_table(&self) -> Db {
        let db = self.db();
        let mut c = db.conn().await.expect("connect to the primary");
        c.batch_execute("CREATE TABLE t (id uuid PRIMARY KEY)")
            .await
            .expect("create table t");
        drop(c);
        db
    }

    /// The last lines of every agent's log (for assertion messages).
    pub fn logs(&self) -> String {
        (0..3)
            .map(|i| {
                let p = self.dir.path().join(TempAgents::name(i)).join("agent.log");
                let text = std::fs::read_to_string(p).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                format!("--- {}:\n{}", TempAgents::name(i), tail.join("\n"))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for TempAgents {
    fn drop(&mut self) {
        for i in 0..3 {
            self.kill_agent(i);
            dash_pg::kill_data_dir_processes(&self.data(i));
        }
    }
}
