//! A `dashctl serve` child process to aim load at: started on free loopback
//! ports, waited for until `/ready`, measured (RSS), stopped with SIGTERM,
//! and killed if it is dropped while still running.

use std::path::Path;
use std::time::{Duration, Instant};

use super::compare::status_field;

/// A running `dashctl serve`.
pub struct ServeProcess {
    child: tokio::process::Child,
    pid: u32,
    base_url: String,
}

/// Why the child could not be started or did not become ready.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The binary could not be started.
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// The binary.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// `/ready` did not answer 200 in time, or the process exited.
    #[error(
        "`dashctl serve` was not ready within {0:?} (run it by hand with DASH_LOG=info to see why)"
    )]
    NotReady(Duration),
}

impl ServeProcess {
    /// Starts `program serve` with `env` added to this process's environment
    /// (plus `DASH_BIND=127.0.0.1`, free `DASH_API_PORT` and `METRICS_PORT`,
    /// `DASH_LOG=warn`, output discarded) and waits until `/ready` answers 200.
    pub async fn start(
        program: &Path,
        env: &[(&str, String)],
        ready_within: Duration,
    ) -> Result<ServeProcess, ServeError> {
        let port = dash_pg::free_port();
        let mut cmd = tokio::process::Command::new(program);
        cmd.arg("serve")
            .env("DASH_BIND", "127.0.0.1")
            .env("DASH_API_PORT", port.to_string())
            .env("METRICS_PORT", dash_pg::free_port().to_string())
            .env("DASH_LOG", "warn");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| ServeError::Spawn {
                program: program.display().to_string(),
                source,
            })?;
        let pid = child.id().ok_or(ServeError::NotReady(Duration::ZERO))?;
        let mut serve = ServeProcess {
            child,
            pid,
            base_url: format!("http://127.0.0.1:{port}"),
        };
        serve.wait_ready(ready_within).await?;
        Ok(serve)
    }

    async fn wait_ready(&mut self, limit: Duration) -> Result<(), ServeError> {
        let deadline = Instant::now() + limit;
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(1))
            .build()
            .map_err(|_| ServeError::NotReady(limit))?;
        let url = format!("{}/ready", self.base_url);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return Err(ServeError::NotReady(limit));
            }
            if client
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(ServeError::NotReady(limit))
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Its resident memory now, kB.
    pub fn rss_kb(&self) -> Option<u64> {
        status_field(Some(self.pid), "VmRSS:")
    }

    /// Its peak resident memory so far, kB.
    pub fn peak_rss_kb(&self) -> Option<u64> {
        status_field(Some(self.pid), "VmHWM:")
    }

    /// SIGTERM, then up to `grace` for a clean exit, then SIGKILL.
    pub async fn stop(mut self, grace: Duration) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        if tokio::time::timeout(grace, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}
