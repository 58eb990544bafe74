//! Stopping a runtime: its whole process group (it runs in its own, so a
//! coding agent's subprocesses stop with it), by the PID this worker
//! started, never by name.

use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::process::Child;

/// Stops the group led by `pid` (the runtime): SIGTERM, `grace` to exit,
/// then SIGKILL; reaps the runtime. With no grace, SIGKILL at once.
pub async fn stop_group(pid: Option<u32>, child: &mut Child, grace: Duration) {
    let group = pid.map(|p| Pid::from_raw(p as i32));
    if let Some(g) = group {
        if !grace.is_zero() {
            let _ = killpg(g, Signal::SIGTERM);
            if tokio::time::timeout(grace, child.wait()).await.is_ok() {
                // The leader is gone; anything it left in its group goes too.
                let _ = killpg(g, Signal::SIGKILL);
                return;
            }
        }
        let _ = killpg(g, Signal::SIGKILL);
    }
    let _ = child.kill().await;
    let _ = child.wait().await;
}

/// Kills the runtime's whole group when dropped (a run aborted, the worker
/// shutting down hard), unless [`GroupGuard::disarm`]ed after a stop.
pub struct GroupGuard(Option<u32>);

impl GroupGuard {
    pub fn new(pid: Option<u32>) -> GroupGuard {
        GroupGuard(pid)
    }

    pub fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = killpg(Pid::from_raw(p as i32), Signal::SIGKILL);
        }
    }
}

/// `setpriv`, when installed: run the runtime under it with a parent-death
/// signal, so that a worker killed outright (SIGKILL, OOM) takes its
/// runtimes' leaders with it instead of leaving them running beside the
/// attempt another worker starts once the lease expires.
pub fn pdeathsig_wrapper() -> Option<&'static str> {
    ["/usr/bin/setpriv", "/bin/setpriv"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
}
