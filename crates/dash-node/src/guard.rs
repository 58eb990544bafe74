//! The fence guard: a small process beside the agent (`dashctl node-guard`)
//! that fences the server when the agent itself cannot. The watchdog task
//! inside the agent stops a primary whose lease lapsed, but an agent that is
//! frozen (SIGSTOP, a stuck VM thread, a long GC-like pause) runs no task at
//! all, while its PostgreSQL goes on committing. So on every tick the agent
//! tells the guard, over a pipe, until when its lease is certainly valid
//! (an absolute `CLOCK_MONOTONIC` time, the clock both processes share);
//! the guard kills the server once that time passes without a newer word.
//! Patroni leans on the kernel's softdog for the same case.

use std::io::{BufRead, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use nix::time::{clock_gettime, ClockId};

/// How often the guard looks at the clock.
const EVERY: Duration = Duration::from_millis(20);

/// Nanoseconds on the system's monotonic clock.
pub fn monotonic_ns() -> u64 {
    clock_gettime(ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

/// Kills every process of `data_dir` and makes it start only as a standby
/// that rewinds first (the same fence as the agent's).
pub fn fence_data_dir(data_dir: &Path) -> std::io::Result<()> {
    dash_pg::kill_data_dir_processes(data_dir);
    std::fs::write(
        crate::layout::rewind_marker(data_dir),
        "demoted by dashctl node\n",
    )?;
    if data_dir.join("PG_VERSION").is_file() {
        std::fs::write(data_dir.join("standby.signal"), "")?;
    }
    Ok(())
}

/// The guard's side: reads `arm <deadline_ns>` / `disarm` lines from stdin
/// and fences `data_dir` when an armed deadline passes. Returns when stdin
/// closes (the agent is gone; its server died with it).
pub fn run_guard(data_dir: &Path) {
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut deadline: Option<u64> = None;
    loop {
        match rx.recv_timeout(EVERY) {
            Ok(line) => {
                deadline = match line.split_once(' ') {
                    Some(("arm", ns)) => ns.trim().parse().ok(),
                    _ => None,
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        if deadline.is_some_and(|d| monotonic_ns() > d) {
            deadline = None;
            let ok = fence_data_dir(data_dir).is_ok();
            eprintln!(
                "dashctl node-guard: the agent did not renew in time; fenced {} (ok: {ok})",
                data_dir.display()
            );
        }
    }
}

/// The agent's side: the guard process and the pipe to it.
pub struct Guard {
    child: Child,
    pipe: ChildStdin,
}

impl Guard {
    /// Starts `dashctl node-guard` for `data_dir` (this same binary).
    pub fn start(data_dir: &Path) -> std::io::Result<Guard> {
        let exe = std::env::current_exe()?;
        let mut child = Command::new(exe)
            .arg("node-guard")
            .arg("--pg-data")
            .arg(data_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()?;
        let pipe = child
            .stdin
            .take()
            .ok_or_else(|| std::io::Error::other("no pipe"))?;
        // Never block the agent on a guard that stopped reading.
        use nix::fcntl::{fcntl, FcntlArg, OFlag};
        use std::os::fd::AsRawFd;
        fcntl(pipe.as_raw_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK))
            .map_err(std::io::Error::from)?;
        Ok(Guard { child, pipe })
    }

    /// Tells the guard the server may be writable until `valid_until` (or not at all).
    pub fn tell(&mut self, armed_until: Option<Instant>) {
        let line = match armed_until {
            Some(t) => {
                let left = t.saturating_duration_since(Instant::now()).as_nanos() as u64;
                format!("arm {}\n", monotonic_ns() + left)
            }
            None => "disarm\n".to_string(),
        };
        let _ = self.pipe.write_all(line.as_bytes());
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.pipe.write_all(b"disarm\n");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
