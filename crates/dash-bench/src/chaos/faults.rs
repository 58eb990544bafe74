//! The faults themselves, by PID, on nodes of this machine only.

use std::path::Path;

use dash_pg::data_dir_pids;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Sends `sig` to every process running in `data_dir`; returns how many.
pub fn signal_all(data_dir: &Path, sig: Signal) -> usize {
    let pids = data_dir_pids(data_dir);
    for pid in &pids {
        let _ = kill(Pid::from_raw(*pid), sig);
    }
    pids.len()
}

/// A node crash: freeze every process first so none keeps committing while
/// the others die (backends call setsid and outlive a killed postmaster).
pub fn crash(data_dir: &Path) -> usize {
    let n = signal_all(data_dir, Signal::SIGSTOP);
    signal_all(data_dir, Signal::SIGKILL);
    n
}
