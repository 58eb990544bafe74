//! The runbook's one error type. Refusals (a guard rail said no) and usage
//! errors are told apart so the CLI can give each its own exit code.

use std::path::PathBuf;
use std::time::Duration;

use dash_platform::TopologyError;

#[derive(Debug, thiserror::Error)]
pub enum RunbookError {
    #[error(transparent)]
    Config(#[from] dash_store::config::ConfigError),
    #[error(transparent)]
    Topology(#[from] TopologyError),
    /// A bad argument or a missing setting (a token, a backup directory).
    #[error("{0}")]
    Usage(String),
    #[error("no writable primary answers: {0}")]
    NoPrimary(String),
    #[error("{context}")]
    Db {
        context: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("{context}: no answer within {limit:?}")]
    Timeout { context: String, limit: Duration },
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// `pg_dump`, `pg_restore` or another client tool failed.
    #[error("{0}")]
    Tool(String),
    #[error("the API at {url}: {message}")]
    Api { url: String, message: String },
    #[error(
        "no backup at {0} (make one with `dashctl db backup`, or pass --dir / DASH_BACKUP_DIR)"
    )]
    NoBackup(PathBuf),
    #[error("{0}")]
    Invalid(String),
    /// No terminal to ask on, and no `--yes`.
    #[error("refusing to {action}: stdin is not a terminal, so there is nobody to confirm; pass --yes to confirm")]
    NeedsYes { action: String },
    /// The operator answered something other than yes.
    #[error("not confirmed: did not {action}; nothing was changed")]
    Declined { action: String },
    /// A guard rail: the situation makes the step unsafe.
    #[error("{0}")]
    Refused(String),
    /// pgBackRest failed (its own error lines are in the message).
    #[error(transparent)]
    Backrest(#[from] dash_backrest::BackrestError),
    /// etcd (the agents' DCS) could not be read or written.
    #[error("etcd at {endpoints} (cluster {cluster})")]
    Etcd {
        endpoints: String,
        cluster: String,
        #[source]
        source: dash_dcs::DcsError,
    },
}

impl RunbookError {
    pub(crate) fn db(context: impl Into<String>, source: tokio_postgres::Error) -> Self {
        RunbookError::Db {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        RunbookError::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn etcd(target: &crate::ha::EtcdTarget, source: dash_dcs::DcsError) -> Self {
        RunbookError::Etcd {
            endpoints: target.endpoints.join(","),
            cluster: target.cluster.clone(),
            source,
        }
    }

    /// A guard rail stopped the command (exit code [`super::exit::REFUSED`]).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            RunbookError::NeedsYes { .. }
                | RunbookError::Declined { .. }
                | RunbookError::Refused(_)
        )
    }

    /// Bad usage or configuration (exit code [`super::exit::USAGE`]).
    pub fn is_usage(&self) -> bool {
        matches!(self, RunbookError::Usage(_) | RunbookError::Config(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_and_usage_are_told_apart() {
        let refusals = [
            RunbookError::NeedsYes { action: "x".into() },
            RunbookError::Declined { action: "x".into() },
            RunbookError::Refused("x".into()),
        ];
        assert!(refusals.iter().all(|e| e.is_refusal() && !e.is_usage()));
        assert!(RunbookError::Usage("x".into()).is_usage());
        let other = RunbookError::Tool("pg_dump failed".into());
        assert!(!other.is_refusal() && !other.is_usage());
        let e = RunbookError::NeedsYes {
            action: "terminate 2 sessions".into(),
        };
        assert!(e.to_string().contains("pass --yes"), "{e}");
    }
}
