//! Process control for a [`PgNode`]: start, stop, promote, and the PIDs of
//! every process in a data directory. Processes are only ever signalled by PID.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::init::run;
use super::user::{give_to_server_user, server_command};
use super::{PgError, PgNode, StopMode};

/// How long [`PgNode::start`] waits for the server to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long [`PgNode::stop`] waits for every server process to exit.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// Poll interval while waiting for a start or stop.
const POLL: Duration = Duration::from_millis(10);
/// How much of the server log an error carries.
const LOG_TAIL_BYTES: u64 = 4096;

impl PgNode {
    /// Starts the server (`postgres` directly, in its own process group, output
    /// appended to [`PgNode::log_path`]) and returns once it accepts
    /// connections. A port clash is [`PgError::PortInUse`]; other failures
    /// carry the tail of the server log.
    pub fn start(&self) -> Result<(), PgError> {
        if let Some(pid) = self.postmaster_pid() {
            return Err(PgError::AlreadyRunning {
                data_dir: self.data_dir().to_path_buf(),
                pid,
            });
        }
        let log_path = self.log_path();
        let io = |e| PgError::io(format!("open {}", log_path.display()), e);
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io)?;
        give_to_server_user(&log_path)?;
        let log_start = log.metadata().map_err(io)?.len();

        let mut cmd = if self.cfg.die_with_parent {
            let mut c = server_command(Path::new("setpriv"));
            c.args(["--pdeathsig", "KILL", "--"])
                .arg(self.bins.path("postgres"));
            c
        } else {
            server_command(&self.bins.path("postgres"))
        };
        cmd.arg("-D")
            .arg(self.data_dir())
            .args(["-p", &self.port().to_string()]);
        cmd.arg("-c")
            .arg(format!("listen_addresses={}", self.host()));
        cmd.arg("-c").arg(format!(
            "unix_socket_directories=\"{}\"",
            self.socket_dir.display()
        ));
        for (name, value) in &self.cfg.settings {
            cmd.arg("-c").arg(format!("{name}={value}"));
        }
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().map_err(io)?)
            .stderr(log);
        // Own process group: a Ctrl-C aimed at us must not reach the server.
        cmd.process_group(0);
        let mut child = cmd.spawn().map_err(|e| PgError::StartFailed {
            port: self.port(),
            reason: format!("could not run postgres: {e}"),
            log: log_path.clone(),
            log_tail: String::new(),
        })?;
        let pid = child.id() as i32;
        // A reaper thread, so the postmaster never lingers as our zombie.
        let (exited, exit) = mpsc::channel();
        std::thread::spawn(move || {
            let status = child.wait().map(|s| s.to_string());
            let _ = exited.send(status.unwrap_or_else(|e| e.to_string()));
        });

        let deadline = Instant::now() + START_TIMEOUT;
        let failure = loop {
            if self.accepts_connections(pid) {
                return Ok(());
            }
            match exit.recv_timeout(POLL) {
                Ok(status) => break format!("postgres exited ({status})"),
                Err(RecvTimeoutError::Disconnected) => break "postgres exited".to_string(),
                Err(RecvTimeoutError::Timeout) if Instant::now() > deadline => {
                    let _ = kill(Pid::from_raw(pid), Signal::SIGQUIT);
                    if exit.recv_timeout(Duration::from_secs(5)).is_err() {
                        self.kill_processes();
                    }
                    break format!("not accepting connections after {START_TIMEOUT:?}");
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
        };
        let log_tail = read_tail(&log_path, log_start);
        let socket_lock = format!(".s.PGSQL.{}.lock\" already exists", self.port());
        let clash = [
            "Address already in use",
            "could not create any TCP/IP sockets",
            &socket_lock,
        ];
        if clash.iter().any(|needle| log_tail.contains(needle)) {
            return Err(PgError::PortInUse {
                port: self.port(),
                log_tail,
            });
        }
        Err(PgError::StartFailed {
            port: self.port(),
            reason: failure,
            log: log_path,
            log_tail,
        })
    }

    /// Stops the server and waits until every one of its processes has
    /// exited. No error if it is not running.
    pub fn stop(&self, mode: StopMode) -> Result<(), PgError> {
        let Some(pid) = self.postmaster_pid() else {
            return Ok(());
        };
        let pids = data_dir_pids(self.data_dir());
        let signal = match mode {
            StopMode::Smart => Signal::SIGTERM,
            StopMode::Fast => Signal::SIGINT,
            StopMode::Immediate => Signal::SIGQUIT,
        };
        let _ = kill(Pid::from_raw(pid), signal);
        let deadline = Instant::now() + STOP_TIMEOUT;
        while pids.iter().any(|&p| is_alive(p)) {
            if Instant::now() > deadline {
                return Err(PgError::StopTimeout {
                    pid,
                    timeout: STOP_TIMEOUT,
                });
            }
            std::thread::sleep(POLL);
        }
        Ok(())
    }

    /// SIGKILLs every process in the data directory (by PID) without
    /// waiting. The next start runs crash recovery.
    pub fn kill_processes(&self) {
        for pid in data_dir_pids(self.data_dir()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }

    /// Whether a postmaster is running on this data directory.
    pub fn is_running(&self) -> bool {
        self.postmaster_pid().is_some()
    }

    /// The postmaster PID from `postmaster.pid`, if that process is alive and
    /// runs in this data directory (a stale file or reused PID gives `None`).
    pub fn postmaster_pid(&self) -> Option<i32> {
        let text = std::fs::read_to_string(self.data_dir().join("postmaster.pid")).ok()?;
        let pid: i32 = text.lines().next()?.trim().parse().ok()?;
        if pid <= 0 || !is_alive(pid) {
            return None;
        }
        let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok()?;
        let dir = self.data_dir().canonicalize().ok()?;
        (cwd == dir).then_some(pid)
    }

    /// Asks a standby to promote (`pg_ctl promote`, without waiting): confirm
    /// with a real write, promotion takes tens of milliseconds.
    pub fn promote(&self) -> Result<(), PgError> {
        let mut cmd = server_command(&self.bins.path("pg_ctl"));
        cmd.arg("promote").arg("-W").arg("-D").arg(self.data_dir());
        run(cmd).map(drop)
    }

    /// Whether `postmaster.pid` names `pid` with status ready (or standby) and
    /// the port accepts TCP connections.
    fn accepts_connections(&self, pid: i32) -> bool {
        let Ok(text) = std::fs::read_to_string(self.data_dir().join("postmaster.pid")) else {
            return false;
        };
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        if lines.first() != Some(&pid.to_string().as_str())
            || !matches!(lines.get(7), Some(&"ready") | Some(&"standby"))
        {
            return false;
        }
        let Some(addr) = (self.host(), self.port())
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
        else {
            return false;
        };
        TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
    }
}

/// Every process whose working directory is `dir`: the postmaster and all
/// its children (backends, WAL sender/receiver, background workers) chdir
/// into the data directory, and so do orphaned backends that outlive a
/// killed postmaster, which a search by parent PID would miss.
pub fn data_dir_pids(dir: &Path) -> Vec<i32> {
    let Ok(dir) = dir.canonicalize() else {
        return Vec::new();
    };
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok()?;
            (cwd == dir).then_some(pid)
        })
        .collect()
}

/// SIGKILLs every process in `dir`, by PID, and waits (at most 5 s) until
/// they are gone: works on a frozen server and on orphans alike.
pub fn kill_data_dir_processes(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let pids = data_dir_pids(dir);
        if pids.is_empty() || Instant::now() > deadline {
            return;
        }
        for pid in pids {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `(state, ppid)` from `/proc/<pid>/stat`.
fn stat(pid: i32) -> Option<(char, i32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may itself contain them.
    let mut fields = text[text.rfind(')')? + 1..].split_whitespace();
    let state = fields.next()?.chars().next()?;
    Some((state, fields.next()?.parse().ok()?))
}

/// Whether `pid` exists and is not a zombie.
fn is_alive(pid: i32) -> bool {
    matches!(stat(pid), Some((state, _)) if state != 'Z' && state != 'X')
}

/// The log written since byte `from`, at most the last [`LOG_TAIL_BYTES`].
fn read_tail(path: &Path, from: u64) -> String {
    let Ok(mut file) = File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = from.max(len.saturating_sub(LOG_TAIL_BYTES));
    let mut buf = Vec::new();
    let _ = file
        .seek(SeekFrom::Start(start))
        .and_then(|_| file.read_to_end(&mut buf));
    String::from_utf8_lossy(&buf).trim().to_string()
}
