//! A [`Host`]: one network namespace of a [`crate::Net`], and the ways to run
//! code in it, see into it, and stop or crash what runs there.

use std::ffi::OsStr;
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::Command;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use nix::sched::{setns, CloneFlags};

use crate::names::ns_path;
use crate::{procs, NetError};

/// One host of a [`crate::Net`]: a network namespace with loopback and
/// `eth0` at [`Host::addr`]. A clone names the same host; once the Net is
/// dropped, running anything in it fails.
#[derive(Debug, Clone)]
pub struct Host {
    name: String,
    veth: String,
    addr: Ipv4Addr,
}

impl Host {
    pub(crate) fn new(name: String, veth: String, addr: Ipv4Addr) -> Host {
        Host { name, veth, addr }
    }

    /// The network namespace's name (as in `ip netns list`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The host's address on `eth0`.
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// The root-namespace end of the host's veth pair (on the bridge).
    pub fn veth(&self) -> &str {
        &self.veth
    }

    /// A command that runs `program` inside this host
    /// (`ip netns exec <ns> <program>`). `ip` execs the program, so the
    /// child's PID is the program's. Add arguments, spawn as usual.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// Runs `f` on a new thread that has entered this host's network
    /// namespace, and returns its handle once the thread is inside.
    ///
    /// Threads that `f` spawns (a tokio runtime built inside `f`, say) start
    /// in the host too, and so do processes it starts. A socket belongs to
    /// the namespace it was made in for its whole life, so `f` may return a
    /// listener or a connection for use on any thread. Only the network
    /// namespace changes: files, users and PIDs are the machine's.
    pub fn spawn_in<R, F>(&self, f: F) -> Result<JoinHandle<R>, NetError>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let path = ns_path(&self.name);
        let ns_file = File::open(&path).map_err(|e| NetError::io(format!("open {path}"), e))?;
        let (entered_tx, entered) = mpsc::sync_channel(1);
        let handle = std::thread::Builder::new()
            .name(format!("in {}", self.name))
            .spawn(move || {
                let result = setns(&ns_file, CloneFlags::CLONE_NEWNET);
                drop(ns_file);
                let failed = result.is_err();
                let _ = entered_tx.send(result);
                if failed {
                    // Unwinds without the panic hook's message; we report the error.
                    std::panic::resume_unwind(Box::new("setns failed"));
                }
                f()
            })
            .map_err(|e| NetError::io("spawn a thread", e))?;
        match entered.recv() {
            Ok(Ok(())) => Ok(handle),
            Ok(Err(source)) => {
                let _ = handle.join();
                Err(NetError::Setns {
                    ns: self.name.clone(),
                    source,
                })
            }
            Err(mpsc::RecvError) => {
                let _ = handle.join();
                Err(NetError::Invalid(format!(
                    "the thread for {} ended before entering it",
                    self.name
                )))
            }
        }
    }

    /// Runs `f` inside this host (see [`Host::spawn_in`]) and returns its
    /// result. A panic in `f` is resumed on the caller's thread.
    pub fn run_in<R, F>(&self, f: F) -> Result<R, NetError>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        match self.spawn_in(f)?.join() {
            Ok(r) => Ok(r),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// Whether a TCP connection from inside this host to `addr` is accepted
    /// within `timeout` (a reachability check; there is no `ping`). Refused
    /// and timed out are both `false`; under a partition the connect times out.
    pub fn can_connect(&self, addr: SocketAddr, timeout: Duration) -> Result<bool, NetError> {
        self.run_in(move || TcpStream::connect_timeout(&addr, timeout).is_ok())
    }

    /// Every process in this host (by its main thread, like `ip netns pids`),
    /// never our own process.
    pub fn pids(&self) -> Vec<i32> {
        procs::pids(&self.name)
    }

    /// Stops (SIGSTOP) every process in this host and returns once all are
    /// stopped, listing again until no new (forked) process turns up. Fails
    /// if some process did not stop within 5 s.
    #[tracing::instrument(skip_all, fields(host = %self.name), err)]
    pub fn freeze(&self) -> Result<(), NetError> {
        procs::freeze(&self.name)
    }

    /// Continues (SIGCONT) every process in this host.
    pub fn thaw(&self) {
        procs::thaw(&self.name)
    }

    /// A host crash: stops every process in this host, then SIGKILLs them
    /// all and returns once none is left. Fails if some process was still
    /// there after 10 s. The host itself (addresses, rules) stays.
    #[tracing::instrument(skip_all, fields(host = %self.name), err)]
    pub fn kill_all(&self) -> Result<(), NetError> {
        procs::kill_all(&self.name)
    }
}
