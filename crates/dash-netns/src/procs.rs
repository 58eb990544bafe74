//! The processes of a host: listing them (by network namespace, like
//! `ip netns pids`), stopping, continuing and killing them. Processes are
//! only ever signalled by PID, after checking that they are in the namespace,
//! and never our own process.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::names::ns_path;
use crate::NetError;

/// How long [`freeze`] waits for every process to be stopped.
const FREEZE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long [`kill_all`] waits for every process to be gone.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);
/// Poll interval while waiting.
const POLL: Duration = Duration::from_millis(2);

/// Every process whose network namespace is `ns` (what `ip netns pids` lists:
/// a process counts by its main thread). Our own process is never listed,
/// even while one of its threads is inside the host ([`crate::Host::run_in`]).
/// Zombies have no namespace and are not listed. Empty if `ns` is gone.
pub(crate) fn pids(ns: &str) -> Vec<i32> {
    let Ok(target) = fs::metadata(ns_path(ns)) else {
        return Vec::new();
    };
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let me = std::process::id() as i32;
    let mut pids: Vec<i32> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&pid| pid != me && in_ns(pid, &target))
        .collect();
    pids.sort_unstable();
    pids
}

/// Whether `pid`'s network namespace is the one `target` (its nsfs file) names.
fn in_ns(pid: i32, target: &fs::Metadata) -> bool {
    fs::metadata(format!("/proc/{pid}/ns/net"))
        .is_ok_and(|m| m.dev() == target.dev() && m.ino() == target.ino())
}

/// Sends `signal` to `pid` if it is still in `ns` (a PID freed and reused
/// since we listed it is left alone). A process already gone is no error.
fn signal_in(ns: &str, pid: i32, signal: Signal) {
    let Ok(target) = fs::metadata(ns_path(ns)) else {
        return;
    };
    if in_ns(pid, &target) {
        let _ = kill(Pid::from_raw(pid), signal);
    }
}

/// A process's state letter from `/proc/<pid>/stat` (`R`, `S`, `D`, `T`,
/// `Z`, ...), `None` once it is gone.
pub(crate) fn state(pid: i32) -> Option<char> {
    parse_state(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The state field of a `/proc/<pid>/stat` line.
fn parse_state(stat: &str) -> Option<char> {
    // The command name in parentheses may itself hold spaces and parentheses.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.trim_start().chars().next()
}

/// Stopped (`T`), stopped by a tracer (`t`), or gone.
fn is_stopped(pid: i32) -> bool {
    matches!(state(pid), None | Some('T' | 't' | 'Z' | 'X'))
}

/// Sends SIGSTOP to every process in `ns` and returns once all of them are
/// stopped. Processes may fork meanwhile, so it lists again until a listing
/// finds every process stopped: then none can fork any more.
pub(crate) fn freeze(ns: &str) -> Result<(), NetError> {
    let deadline = Instant::now() + FREEZE_TIMEOUT;
    loop {
        let running: Vec<i32> = pids(ns).into_iter().filter(|&p| !is_stopped(p)).collect();
        if running.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(NetError::Survivors {
                ns: ns.to_string(),
                what: "stop",
                pids: running,
                timeout: FREEZE_TIMEOUT,
            });
        }
        for &pid in &running {
            signal_in(ns, pid, Signal::SIGSTOP);
        }
        std::thread::sleep(POLL);
    }
}

/// Sends SIGCONT to every process in `ns`.
pub(crate) fn thaw(ns: &str) {
    for pid in pids(ns) {
        signal_in(ns, pid, Signal::SIGCONT);
    }
}

/// A host crash: stops every process in `ns` (so none sees another die and
/// reacts), then SIGKILLs them all and waits until none is left.
pub(crate) fn kill_all(ns: &str) -> Result<(), NetError> {
    if let Err(e) = freeze(ns) {
        // A process stuck in the kernel (state D) may not stop; SIGKILL still
        // ends it once it returns, so carry on and report only survivors.
        tracing::warn!(ns, error = %e, "not every process stopped before the kill");
    }
    let deadline = Instant::now() + KILL_TIMEOUT;
    loop {
        let left = pids(ns);
        if left.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(NetError::Survivors {
                ns: ns.to_string(),
                what: "die",
                pids: left,
                timeout: KILL_TIMEOUT,
            });
        }
        for &pid in &left {
            signal_in(ns, pid, Signal::SIGKILL);
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_is_read_after_a_command_name_with_parentheses_and_spaces() {
        assert_eq!(parse_state("42 (a) (b c) T 1 42 42 0"), Some('T'));
        assert_eq!(parse_state("garbage"), None);
    }

    #[test]
    fn state_is_none_for_a_pid_that_does_not_exist() {
        assert!(state(std::process::id() as i32).is_some());
        assert_eq!(state(i32::MAX), None);
    }

    #[test]
    fn a_namespace_that_does_not_exist_has_no_processes() {
        assert!(pids("dnet-no-such-namespace").is_empty());
    }
}
