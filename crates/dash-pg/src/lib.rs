//! Local PostgreSQL nodes: the one way Dash creates, starts, stops, clones and
//! tears down PostgreSQL servers (`dashctl up`, chaos, and the test kit).
//!
//! Everything runs the real server binaries found by [`PgBinaries::locate`].
//! When we run as root, every server binary runs as the unprivileged `postgres`
//! OS user ([`server_command`]) on directories it owns ([`give_to_server_user`]).

mod binaries;
mod init;
mod lsn;
mod node;
mod parent;
mod process;
mod scratch;
mod user;

use std::path::PathBuf;

pub use binaries::PgBinaries;
pub use init::run as run_command;
pub use lsn::{fmt_lsn, parse_lsn};
pub use node::{psql, socket_dir_for, CloneSource, Login, NodeConfig, PgNode};
pub use parent::ParentThread;
pub use process::{data_dir_pids, kill_data_dir_processes};
pub use scratch::ScratchNode;
pub use user::{give_to_server_user, server_command, SERVER_USER};

/// How to stop a server (the postmaster's shutdown modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    /// Wait for clients to disconnect (SIGTERM).
    Smart,
    /// Roll back open transactions, disconnect clients, checkpoint (SIGINT).
    Fast,
    /// Abort everything now; crash recovery on next start (SIGQUIT).
    Immediate,
}

/// Errors from managing local PostgreSQL nodes.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// No PostgreSQL server binaries were found.
    #[error("{}", binaries::not_found_message(searched))]
    BinariesNotFound {
        /// Each place searched, with why it did not qualify.
        searched: Vec<String>,
    },
    /// We run as root but the unprivileged server user does not exist.
    #[error(
        "running as root, but OS user `{SERVER_USER}` does not exist; PostgreSQL refuses to run as \
         root: install the PostgreSQL server package (it creates the user) or run as a normal user"
    )]
    NoServerUser,
    /// A file-system operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An external command (initdb, pg_basebackup, psql, ...) failed.
    #[error("`{command}` failed ({status}): {output}")]
    Command {
        /// The command line.
        command: String,
        /// Exit status or spawn error.
        status: String,
        /// Its stderr (or stdout when stderr is empty).
        output: String,
    },
    /// The data directory holds no cluster (for [`PgNode::open`]).
    #[error("{0} is not a PostgreSQL data directory (no PG_VERSION)")]
    NotInitialized(PathBuf),
    /// The data directory already holds a cluster (for [`PgNode::init`]).
    #[error("{0} already holds a PostgreSQL cluster")]
    AlreadyInitialized(PathBuf),
    /// The server is already running.
    #[error("server for {data_dir} is already running (postmaster pid {pid})")]
    AlreadyRunning {
        /// Its data directory.
        data_dir: PathBuf,
        /// Its postmaster PID.
        pid: i32,
    },
    /// The port was taken by someone else; retry on another port.
    #[error("port {port} is already in use; server log:\n{log_tail}")]
    PortInUse {
        /// The port we asked for.
        port: u16,
        /// The tail of the server log.
        log_tail: String,
    },
    /// The server did not come up.
    #[error("PostgreSQL on port {port} did not start: {reason}; server log ({log}):\n{log_tail}")]
    StartFailed {
        /// The port we asked for.
        port: u16,
        /// Why we gave up.
        reason: String,
        /// The log file.
        log: PathBuf,
        /// The tail of the server log.
        log_tail: String,
    },
    /// The server did not stop in time.
    #[error("PostgreSQL (postmaster pid {pid}) did not stop within {timeout:?}")]
    StopTimeout {
        /// The postmaster PID.
        pid: i32,
        /// How long we waited.
        timeout: std::time::Duration,
    },
}

impl PgError {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> PgError {
        PgError::Io {
            context: context.into(),
            source,
        }
    }
}

/// Picks a free loopback TCP port (bind 127.0.0.1:0, read it, release it).
/// Another process may take it before we use it: callers retry on
/// [`PgError::PortInUse`].
pub fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding 127.0.0.1:0 must work on any machine with loopback")
}
