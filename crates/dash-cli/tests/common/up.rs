//! `dashctl up` run as a child process, as a user runs it, for the tests
//! that need the whole platform (`up.rs`, `add_replica.rs`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dash_platform::Topology;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// A temp dir the server user can reach (it runs PostgreSQL when tests run
/// as root), the `DASH_HOME` inside it, and a runner for `dashctl` there.
/// Keep the dir alive for the test.
pub fn temp_home() -> (tempfile::TempDir, PathBuf, dash_testkit::Runner) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let home = dir.path().join("dash");
    let cli = dash_testkit::Runner::new(env!("CARGO_BIN_EXE_dashctl"))
        .env("DASH_HOME", &home)
        .env("DASH_LOG", "error");
    (dir, home, cli)
}

/// One `dashctl up` process; SIGKILLed on drop (its agents, their
/// PostgreSQL and etcd die with it), every node's leftovers killed too.
pub struct Up {
    child: Option<Child>,
    pub home: PathBuf,
    out: PathBuf,
    args: Vec<String>,
    pub api_port: u16,
    metrics_port: u16,
}

impl Up {
    pub fn start(home: &Path, args: Vec<String>, api_port: u16, metrics_port: u16) -> Up {
        let out = home.with_extension(format!("up{}.out", dash_pg::free_port()));
        let mut up = Up {
            child: None,
            home: home.to_path_buf(),
            out,
            args,
            api_port,
            metrics_port,
        };
        up.spawn();
        up
    }

    pub fn spawn(&mut self) {
        let file = std::fs::File::create(&self.out).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_dashctl"))
            .arg("up")
            .args(&self.args)
            .env("DASH_HOME", &self.home)
            .env("DASH_API_PORT", self.api_port.to_string())
            .env("METRICS_PORT", self.metrics_port.to_string())
            .env("DASH_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("run dashctl up");
        self.child = Some(child);
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// Waits for "Press Ctrl-C" (the platform is highly available).
    pub fn wait_up(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.output().contains("Press Ctrl-C") {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("dashctl up exited ({status}):\n{}", self.output());
            }
            assert!(
                Instant::now() < deadline,
                "not up within {limit:?}:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Ctrl-C; returns the exit code and how long the stop took.
    pub fn interrupt(&mut self) -> (i32, Duration) {
        let mut child = self.child.take().unwrap();
        let started = Instant::now();
        kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return (status.code().unwrap_or(-1), started.elapsed());
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "dashctl up did not stop within 60 s of Ctrl-C:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The PID of the agent of node `name`: a child of `dashctl up` (of
    /// its platform thread) whose command line names the node.
    pub fn agent_pid(&self, name: &str) -> Option<i32> {
        let up = self.child.as_ref()?.id();
        let tasks = std::fs::read_dir(format!("/proc/{up}/task")).ok()?;
        let children = tasks.flatten().flat_map(|t| {
            let list = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
            list.split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok())
                .collect::<Vec<_>>()
        });
        children.into_iter().find(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
            args.windows(3)
                .any(|w| w[0] == b"node" && w[1] == b"--name" && w[2] == name.as_bytes())
        })
    }

    pub fn topo(&self) -> Topology {
        Topology::load(&self.home).unwrap()
    }

    pub fn api(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/api/v1{path}", self.api_port)
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Ok(t) = Topology::load(&self.home) {
            for n in &t.nodes {
                dash_pg::kill_data_dir_processes(&n.data_dir);
            }
        }
    }
}

pub async fn statuses(topo: &Topology) -> Vec<dash_node::Status> {
    dash_platform::ha::statuses(topo)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// Does `GET /swarms/{id}` answer 200?
pub async fn swarm_found(up: &Up, token: &str, id: &str) -> bool {
    let got = reqwest::Client::new()
        .get(up.api(&format!("/swarms/{id}")))
        .bearer_auth(token)
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    got.is_ok_and(|r| r.status().is_success())
}

/// Polls `f` every 100 ms until it is `Some`, or panics after `limit` with `what`.
pub async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    limit: Duration,
    what: &str,
    mut f: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
