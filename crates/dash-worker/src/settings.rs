//! One worker's settings (`dashctl worker` flags and environment).

use std::time::Duration;

use dash_store::repo::agents::lease::Caps;
use dash_store::DbSettings;

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// This worker's name in the agents it claims (default `host-pid`).
    pub name: String,
    /// The runtime: a program and its arguments (never a shell line). It
    /// gets the task on stdin, and its id, model, attempt and remaining
    /// budget in its environment.
    pub runtime: Vec<String>,
    /// The `dashctl` binary whose `runtime-guard` wraps each runtime, so
    /// that the runtime's whole process group dies with the worker
    /// ([`crate::guard`]); without one, `setpriv --pdeathsig` ties only the
    /// runtime's own process to the worker's life.
    pub guard: Option<std::path::PathBuf>,
    /// Agents this worker runs at once.
    pub slots: usize,
    /// A claim's lease: another worker may reclaim the agent once it passes
    /// without a renewal.
    pub lease: Duration,
    /// How often a running agent's lease is renewed.
    pub heartbeat: Duration,
    /// How often the worker looks for work without a wake-up.
    pub poll: Duration,
    pub caps: Caps,
    /// On SIGTERM: how long running agents may finish before they are
    /// stopped and handed back (pending, no attempt spent).
    pub drain: Duration,
    /// `/metrics` port (0: none).
    pub metrics_port: u16,
    pub database: DbSettings,
}

impl WorkerSettings {
    /// Checks what cannot be right whatever the environment.
    pub fn validate(&self) -> Result<(), String> {
        if self.runtime.is_empty() || self.runtime[0].is_empty() {
            return Err("--runtime: name a program (or `demo`)".into());
        }
        if self.slots == 0 || self.slots > 1000 {
            return Err(format!("--slots {}: between 1 and 1000", self.slots));
        }
        if self.heartbeat.is_zero() || self.heartbeat * 3 > self.lease {
            return Err(format!(
                "--heartbeat {:?} with --lease {:?}: the lease must be at least three heartbeats",
                self.heartbeat, self.lease
            ));
        }
        if self.caps.global == 0 || self.caps.per_swarm == 0 {
            return Err("the running caps must be at least 1".into());
        }
        if self.name.is_empty() || self.name.len() > 200 {
            return Err("--name: 1 to 200 characters".into());
        }
        Ok(())
    }

    /// Until when a worker whose last renewal was sent at `sent` may let
    /// its runtime run: the lease less a margin of one heartbeat, so that
    /// the runtime is stopped before any other worker can reclaim it.
    pub fn self_fence_after(&self) -> Duration {
        self.lease.saturating_sub(self.heartbeat)
    }
}
