//! The `dashctl worker` child processes of a kill-worker run: each in its
//! own process group, stopped or killed by the PID this run started (never
//! by name), and killed when dropped, so an error or Ctrl-C leaves none.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

/// One running worker.
pub(crate) struct WorkerProc {
    pub name: String,
    child: Child,
}

impl WorkerProc {
    fn signal(&self, sig: Signal) {
        if let Some(pid) = self.child.id() {
            let _ = kill(Pid::from_raw(pid as i32), sig);
        }
    }
}

/// How to start a worker, and the ones running.
pub(crate) struct Workers {
    dashctl: PathBuf,
    database_url: String,
    dir: PathBuf,
    args: Vec<String>,
    started: usize,
    pub live: Vec<WorkerProc>,
}

impl Workers {
    /// `args`: the `dashctl worker` flags every worker shares; logs go to `dir`.
    pub fn new(dashctl: &Path, database_url: String, dir: &Path, args: Vec<String>) -> Workers {
        Workers {
            dashctl: dashctl.to_path_buf(),
            database_url,
            dir: dir.to_path_buf(),
            args,
            started: 0,
            live: Vec::new(),
        }
    }

    /// Starts the next worker (`kw-1`, `kw-2`, ...); returns its name.
    pub fn start(&mut self) -> std::io::Result<String> {
        self.started += 1;
        let name = format!("kw-{}", self.started);
        let log = std::fs::File::create(self.dir.join(format!("{name}.log")))?;
        let mut cmd = Command::new(&self.dashctl);
        cmd.arg("worker").args(&self.args).args(["--name", &name]);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("DATABASE_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("DATABASE_URL", &self.database_url)
            .env("DASH_HOME", &self.dir)
            .env("DASH_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0)
            .kill_on_drop(true);
        let child = cmd.spawn()?;
        self.live.push(WorkerProc {
            name: name.clone(),
            child,
        });
        Ok(name)
    }

    pub fn names(&self) -> Vec<String> {
        self.live.iter().map(|w| w.name.clone()).collect()
    }

    /// SIGKILL to the worker `name` (its runtimes die with it: they run
    /// under a parent-death signal); returns once it is gone.
    pub async fn kill(&mut self, name: &str) {
        if let Some(i) = self.live.iter().position(|w| w.name == name) {
            let mut w = self.live.remove(i);
            w.signal(Signal::SIGKILL);
            let _ = w.child.wait().await;
        }
    }

    /// SIGTERM to every worker (they stop claiming and drain), SIGKILL to
    /// any still running after `grace`.
    pub async fn stop_all(&mut self, grace: Duration) {
        for w in &self.live {
            w.signal(Signal::SIGTERM);
        }
        for mut w in self.live.drain(..) {
            if tokio::time::timeout(grace, w.child.wait()).await.is_err() {
                w.signal(Signal::SIGKILL);
                let _ = w.child.wait().await;
            }
        }
    }
}
