//! The one error type of this crate: every failure names what failed (the
//! command line and its stderr, the file, the namespace).

use std::time::Duration;

/// Errors from building, changing or tearing down a [`crate::Net`].
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// Network namespaces, bridges and nftables need root.
    #[error("network namespaces need root (CAP_NET_ADMIN and CAP_SYS_ADMIN); we run as uid {0}")]
    NotRoot(u32),
    /// A caller asked for something this crate cannot do.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// Every `/24` subnet of 198.18.0.0/15 is held by a live [`crate::Net`].
    #[error("no free subnet: all 512 /24 subnets of 198.18.0.0/15 are held by live Nets")]
    NoFreeSubnet,
    /// An external command (`ip`, `nft`) failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line (and, for `nft -f -`, the script it was given).
        command: String,
        /// Exit status or spawn error.
        status: String,
        /// Its stderr (or stdout when stderr is empty).
        stderr: String,
    },
    /// A file-system operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A thread could not enter a host's network namespace.
    #[error("entering network namespace {ns}: {source}")]
    Setns {
        /// The namespace name.
        ns: String,
        /// The `setns(2)` error.
        source: nix::errno::Errno,
    },
    /// Processes in a host did not stop (freeze) or die (kill) in time.
    #[error("processes {pids:?} in network namespace {ns} did not {what} within {timeout:?}")]
    Survivors {
        /// The namespace name.
        ns: String,
        /// "stop" or "die".
        what: &'static str,
        /// The processes still running.
        pids: Vec<i32>,
        /// How long we waited.
        timeout: Duration,
    },
}

impl NetError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> NetError {
        NetError::Io {
            context: context.into(),
            source,
        }
    }
}
