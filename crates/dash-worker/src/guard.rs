//! The runtime guard (`dashctl runtime-guard -- PROGRAM ARGS...`): what a
//! worker starts in place of its runtime, in the runtime's process group.
//! It runs the runtime (same group, same stdin/stdout/stderr) and waits
//! for it. When the worker dies outright (SIGKILL, OOM), the kernel sends
//! the guard SIGHUP (its parent-death signal), and the guard kills the
//! whole group: the runtime and every process it started, such as a
//! coding agent's tools. Without it, only the runtime's own process could
//! be tied to the worker's life, and its children would run on beside the
//! attempt another worker starts once the lease expires.

use std::process::ExitStatus;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::{getpgrp, getppid};

/// Runs `argv` under the guard; returns its exit code (128 + signal when
/// it was killed by one, as a shell reports it).
pub async fn run(argv: &[String]) -> u8 {
    let Some((program, args)) = argv.split_first() else {
        eprintln!("dashctl runtime-guard: name the runtime after --");
        return 2;
    };
    let parent = getppid();
    // Set before looking whether the parent is already gone: no window.
    if let Err(e) = nix::sys::prctl::set_pdeathsig(Signal::SIGHUP) {
        eprintln!("dashctl runtime-guard: cannot set the parent-death signal: {e}");
        return 1;
    }
    if getppid() != parent {
        return 1;
    }
    let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("dashctl runtime-guard: cannot watch SIGHUP: {e}");
            return 1;
        }
    };
    let mut child = match tokio::process::Command::new(program).args(args).spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("dashctl runtime-guard: cannot start {program:?}: {e}");
            return 127;
        }
    };
    tokio::select! {
        status = child.wait() => code_of(status.ok()),
        _ = hup.recv() => {
            // The worker is gone: nothing of this group may outlive it.
            let _ = killpg(getpgrp(), Signal::SIGKILL);
            1
        }
    }
}

fn code_of(status: Option<ExitStatus>) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Some(s) => match (s.code(), s.signal()) {
            (Some(c), _) => c.clamp(0, 255) as u8,
            (None, Some(sig)) => (128 + sig).clamp(0, 255) as u8,
            _ => 1,
        },
        None => 1,
    }
}
