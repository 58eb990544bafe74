//! One etcd member as a child process (local clusters, chaos and the test
//! kit): spawned in its own process group with its output in a log file,
//! ready once its log says it serves clients, and only ever signalled by PID.

mod binary;
mod config;

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitid, Id, WaitPidFlag};
use nix::unistd::Pid;

use binary::locate_binary;
pub use config::EtcdConfig;

/// How long [`EtcdMember::start`] waits for the member to serve clients.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long [`EtcdMember::stop`] waits after SIGTERM before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long we wait for a SIGKILLed member to be reaped.
const KILL_TIMEOUT: Duration = Duration::from_secs(5);
/// Poll interval of the log while waiting for readiness.
const POLL: Duration = Duration::from_millis(20);
/// How much of the log an error carries.
const LOG_TAIL_BYTES: usize = 4096;
/// Log lines etcd writes once it serves clients. etcd 3.4 with `--logger=zap`
/// writes no "ready to serve client requests" line (only its old capnslog
/// logger and etcd 3.5+ do), but all of them then log serving insecure
/// (plain HTTP) client traffic.
const READY_MARKERS: &[&str] = &[
    "ready to serve client requests",
    "serving client traffic insecurely",
];
/// What the Go runtime logs when a listen address is taken.
const ADDR_IN_USE: &str = "bind: address already in use";

/// Errors from running an etcd member.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    /// No etcd binary was found.
    #[error(
        "etcd not found ({searched}): install Debian's `etcd-server` package \
         (`apt-get install etcd-server etcd-client`, or `make deps`), or set DASH_ETCD_BIN \
         to the etcd binary"
    )]
    BinaryNotFound {
        /// Where we looked.
        searched: String,
    },
    /// A file-system operation or the spawn failed.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A client or peer address was taken by someone else; retry on others.
    #[error("etcd member {name}: {addr} is already in use; etcd log:\n{log_tail}")]
    PortInUse {
        /// The member's name.
        name: String,
        /// The address etcd could not listen on.
        addr: SocketAddr,
        /// The tail of the member's log.
        log_tail: String,
    },
    /// etcd exited before it served clients.
    #[error(
        "etcd member {name} exited ({status}) before serving clients; log ({log}):\n{log_tail}"
    )]
    Exited {
        /// The member's name.
        name: String,
        /// Its exit status.
        status: String,
        /// The log file.
        log: PathBuf,
        /// The tail of the log.
        log_tail: String,
    },
    /// etcd runs but did not serve clients in time (a member of a new cluster
    /// waits for a quorum of its peers).
    #[error("etcd member {name} not serving clients after {timeout:?}; log ({log}):\n{log_tail}")]
    NotReady {
        /// The member's name.
        name: String,
        /// How long we waited.
        timeout: Duration,
        /// The log file.
        log: PathBuf,
        /// The tail of the log.
        log_tail: String,
    },
}

/// A running etcd member; stopped (SIGTERM, then SIGKILL) on drop.
#[derive(Debug)]
pub struct EtcdMember {
    cfg: EtcdConfig,
    log: PathBuf,
    /// Length of the log before this run: readiness is read after it.
    log_start: u64,
    pid: i32,
    exit: Arc<Exit>,
}

impl EtcdMember {
    /// Spawns etcd (in its own process group, stdout and stderr appended to
    /// [`EtcdConfig::log_path`]) without waiting for it to serve clients:
    /// start every member of a new cluster, then [`EtcdMember::wait_ready`]
    /// on each (none is ready before a quorum runs).
    pub fn spawn(cfg: EtcdConfig) -> Result<EtcdMember, EtcdError> {
        Self::spawn_inner(cfg, false)
    }

    /// As [`EtcdMember::spawn`], but the member also gets SIGKILL when the
    /// thread that calls this exits (`setpriv --pdeathsig KILL`; not with a
    /// network namespace): a platform that dies leaves no etcd behind. Call
    /// it from a thread that lives as long as the member should
    /// (`dash_pg::ParentThread`).
    pub fn spawn_dying_with_parent(cfg: EtcdConfig) -> Result<EtcdMember, EtcdError> {
        Self::spawn_inner(cfg, true)
    }

    fn spawn_inner(cfg: EtcdConfig, pdeathsig: bool) -> Result<EtcdMember, EtcdError> {
        let etcd = locate_binary(std::env::var_os("DASH_ETCD_BIN"), std::env::var_os("PATH"))?;
        let log_path = cfg.log_path();
        let io = |context: String| move |source: std::io::Error| EtcdError::Io { context, source };
        if let Some(parent) = log_path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io(format!("create {}", parent.display())))?;
        }
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io(format!("open {}", log_path.display())))?;
        let log_start = log
            .metadata()
            .map_err(io(format!("stat {}", log_path.display())))?
            .len();

        let mut cmd = match &cfg.netns {
            // `ip netns exec` execs etcd in place: the PID we get is etcd's.
            Some(ns) => {
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", ns]).arg(&etcd);
                cmd
            }
            None if pdeathsig => {
                let mut cmd = Command::new("setpriv");
                cmd.args(["--pdeathsig", "KILL", "--"]).arg(&etcd);
                cmd
            }
            None => Command::new(&etcd),
        };
        cmd.args(cfg.args())
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(io("clone log handle".into()))?)
            .stderr(log)
            // Own process group: a Ctrl-C aimed at us must not reach etcd.
            .process_group(0);
        let program = match cfg.netns {
            Some(_) => "`ip netns exec` (iproute2)".to_string(),
            None => etcd.display().to_string(),
        };
        let mut child = cmd.spawn().map_err(io(format!("run {program}")))?;
        let pid = child.id() as i32;

        // The reaper waits for the exit without reaping (WNOWAIT), marks it
        // under the lock, then reaps: while `exit` says running, the PID is
        // still ours (alive or a zombie), so a signal never hits a stranger.
        let exit = Arc::new(Exit::default());
        let reaper = Arc::clone(&exit);
        std::thread::spawn(move || {
            let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT;
            while let Err(nix::errno::Errno::EINTR) = waitid(Id::Pid(Pid::from_raw(pid)), flags) {}
            let mut status = reaper.lock();
            let waited = child.wait();
            *status = Some(waited.map_or_else(|e| e.to_string(), |s| s.to_string()));
            reaper.changed.notify_all();
        });
        Ok(EtcdMember {
            cfg,
            log: log_path,
            log_start,
            pid,
            exit,
        })
    }

    /// Waits until the member serves clients, read from its log (so this
    /// works inside a network namespace we cannot connect into). A taken
    /// address is [`EtcdError::PortInUse`]; the member is left running on
    /// [`EtcdError::NotReady`].
    pub fn wait_ready(&self, timeout: Duration) -> Result<(), EtcdError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exit.wait(POLL) {
                return Err(self.exited(status));
            }
            let log = read_from(&self.log, self.log_start);
            if READY_MARKERS.iter().any(|m| log.contains(m)) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(EtcdError::NotReady {
                    name: self.cfg.name.clone(),
                    timeout,
                    log: self.log.clone(),
                    log_tail: tail(&log),
                });
            }
        }
    }

    /// [`EtcdMember::spawn`], then [`EtcdMember::wait_ready`] for at most
    /// [`READY_TIMEOUT`]; on failure the member is stopped.
    pub fn start(cfg: EtcdConfig) -> Result<EtcdMember, EtcdError> {
        let member = Self::spawn(cfg)?;
        member.wait_ready(READY_TIMEOUT)?;
        Ok(member)
    }

    /// `http://ip:port` of the client listener.
    pub fn client_url(&self) -> String {
        self.cfg.client_url()
    }

    /// Its configuration.
    pub fn config(&self) -> &EtcdConfig {
        &self.cfg
    }

    /// Its log file (appended to across restarts).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The etcd process's PID while it runs.
    pub fn pid(&self) -> Option<i32> {
        self.is_running().then_some(self.pid)
    }

    /// Whether the etcd process has not exited.
    pub fn is_running(&self) -> bool {
        self.exit.lock().is_none()
    }

    /// SIGTERM, then SIGKILL if it has not exited within 10 s; returns once
    /// it has exited (or after 5 s more). No-op when it is not running.
    pub fn stop(&mut self) {
        self.signal(Signal::SIGTERM);
        if self.exit.wait(STOP_TIMEOUT).is_none() {
            tracing::warn!(name = %self.cfg.name, pid = self.pid, "etcd ignored SIGTERM; SIGKILL");
            self.kill();
        }
    }

    /// SIGKILL now ("an etcd member is lost"), then waits (at most 5 s) until
    /// the process is gone, so its ports are free on return.
    pub fn kill(&mut self) {
        self.signal(Signal::SIGKILL);
        if self.exit.wait(KILL_TIMEOUT).is_none() {
            tracing::warn!(name = %self.cfg.name, pid = self.pid, "etcd still running after SIGKILL");
        }
    }

    /// Sends `signal` to the etcd PID, unless it has exited.
    fn signal(&self, signal: Signal) {
        let status = self.exit.lock();
        if status.is_none() {
            let _ = kill(Pid::from_raw(self.pid), signal);
        }
    }

    /// The error for an exit before serving clients.
    fn exited(&self, status: String) -> EtcdError {
        let log = read_from(&self.log, self.log_start);
        if log.contains(ADDR_IN_USE) {
            let addr = [self.cfg.client, self.cfg.peer]
                .into_iter()
                .find(|addr| log.contains(&format!("listen tcp {addr}: {ADDR_IN_USE}")))
                .unwrap_or(self.cfg.client);
            return EtcdError::PortInUse {
                name: self.cfg.name.clone(),
                addr,
                log_tail: tail(&log),
            };
        }
        EtcdError::Exited {
            name: self.cfg.name.clone(),
            status,
            log: self.log.clone(),
            log_tail: tail(&log),
        }
    }
}

impl Drop for EtcdMember {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The exit status of the etcd process, set once by its reaper thread.
#[derive(Debug, Default)]
struct Exit {
    status: Mutex<Option<String>>,
    changed: Condvar,
}

impl Exit {
    fn lock(&self) -> MutexGuard<'_, Option<String>> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The exit status, waiting at most `timeout` for it.
    fn wait(&self, timeout: Duration) -> Option<String> {
        let guard = self.lock();
        let (guard, _) = (self.changed)
            .wait_timeout_while(guard, timeout, |status| status.is_none())
            .unwrap_or_else(|e| e.into_inner());
        guard.clone()
    }
}

/// The log from byte `from` on (lossy UTF-8; empty if unreadable).
fn read_from(path: &Path, from: u64) -> String {
    let mut buf = Vec::new();
    if let Ok(mut file) = File::open(path) {
        let _ = file
            .seek(SeekFrom::Start(from))
            .and_then(|_| file.read_to_end(&mut buf));
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// The last [`LOG_TAIL_BYTES`] of `log` (from a line start when possible).
fn tail(log: &str) -> String {
    let log = log.trim();
    let mut start = log.len().saturating_sub(LOG_TAIL_BYTES);
    while !log.is_char_boundary(start) {
        start += 1;
    }
    let tail = &log[start..];
    match (start > 0, tail.find('\n')) {
        (true, Some(nl)) => tail[nl + 1..].to_string(),
        _ => tail.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_starts_at_a_line() {
        let log = format!("{}\nlast line\n", "x".repeat(LOG_TAIL_BYTES));
        assert_eq!(tail(&log), "last line");
        assert_eq!(tail("short\n"), "short");
    }
}
