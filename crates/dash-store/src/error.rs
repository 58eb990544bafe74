//! The store's one error type, and the one place that decides which database
//! failures are safe to retry and which poison a connection.

use std::time::Duration;

use dash_core::{TransitionError, ValidationError};
use tokio_postgres::error::SqlState;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No host accepted a connection as a writable primary.
    #[error("no writable primary is reachable: {0}")]
    Unavailable(String),
    /// No pool connection could be had within the acquire timeout while the
    /// pool could not say the database answers (no primary found yet, or
    /// the last attempt to connect failed).
    #[error("timed out after {0:?} waiting for a database connection")]
    PoolTimeout(Duration),
    /// Every pool connection stayed busy for the whole acquire timeout while
    /// the database answers: load, not an outage.
    #[error("every database connection stayed busy for {0:?}")]
    PoolExhausted(Duration),
    /// A database call passed its client-side deadline; a write's outcome is unknown.
    #[error("database call exceeded its {0:?} deadline")]
    Deadline(Duration),
    /// The server cancelled the statement at `statement_timeout`: the
    /// transaction was rolled back, and the connection is still healthy.
    #[error("the database cancelled a statement that ran past its statement_timeout")]
    StatementTimeout(#[source] tokio_postgres::Error),
    /// The connection died during the call; a write's outcome is unknown.
    #[error("the database connection was lost")]
    ConnectionLost(#[source] tokio_postgres::Error),
    /// The server refused a write because it is not (or no longer) the primary.
    #[error("the database node is read-only: it is no longer the primary")]
    ReadOnly(#[source] tokio_postgres::Error),
    /// The server is shutting down or restarting.
    #[error("the database server is shutting down")]
    ShuttingDown(#[source] tokio_postgres::Error),
    /// Serialization failure or deadlock: the transaction was rolled back.
    #[error("the transaction conflicted with another and was rolled back")]
    Conflict(#[source] tokio_postgres::Error),
    /// Dash is in read-only maintenance mode (a restore is running).
    #[error("writes are paused for maintenance: {0}")]
    Maintenance(String),
    #[error("{entity} {id} not found")]
    NotFound { entity: &'static str, id: String },
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// The request conflicts with stored state (duplicate id, key reuse, ...).
    #[error("{0}")]
    Conflicting(String),
    #[error("schema migration failed: {0}")]
    Migration(String),
    /// A stored value could not be decoded into its Rust type (a jsonb
    /// number beyond f64, a column whose type drifted): a bug, not an outage.
    #[error("a stored row could not be decoded")]
    Decode(#[source] tokio_postgres::Error),
    /// Any other database error: a bug or an unexpected server state.
    #[error("database error")]
    Db(#[source] tokio_postgres::Error),
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        classify(e)
    }
}

/// Sorts a driver error into the variant that says what it means for the caller.
pub fn classify(e: tokio_postgres::Error) -> StoreError {
    if e.is_closed() {
        return StoreError::ConnectionLost(e);
    }
    let Some(code) = e.code() else {
        // No SQLSTATE: an I/O or protocol failure on the connection.
        return StoreError::ConnectionLost(e);
    };
    match *code {
        SqlState::READ_ONLY_SQL_TRANSACTION => StoreError::ReadOnly(e),
        SqlState::ADMIN_SHUTDOWN | SqlState::CRASH_SHUTDOWN | SqlState::CANNOT_CONNECT_NOW => {
            StoreError::ShuttingDown(e)
        }
        // A lock wait that hit lock_timeout is a conflict too: the statement
        // failed before doing anything, so the caller can retry it.
        SqlState::T_R_SERIALIZATION_FAILURE
        | SqlState::T_R_DEADLOCK_DETECTED
        | SqlState::LOCK_NOT_AVAILABLE => StoreError::Conflict(e),
        // The server cancelled a slow statement: the node is alive and the
        // connection usable, unlike a client-side deadline. Kept apart from
        // that deadline so a slow query does not retire pooled connections.
        SqlState::QUERY_CANCELED => StoreError::StatementTimeout(e),
        _ => StoreError::Db(e),
    }
}

impl StoreError {
    /// The error for an acquire that timed out waiting for a free pool slot:
    /// [`StoreError::PoolExhausted`] when the pool's last contact with the
    /// database succeeded, else [`StoreError::PoolTimeout`].
    pub fn acquire_timed_out(waited: Duration, database_reachable: bool) -> StoreError {
        if database_reachable {
            StoreError::PoolExhausted(waited)
        } else {
            StoreError::PoolTimeout(waited)
        }
    }

    /// True when the call provably did nothing and can be repeated as it is:
    /// the failure happened before the statement could take effect, or the
    /// server rolled the transaction back. Unknown outcomes are not retryable.
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Unavailable(_)
            | StoreError::PoolTimeout(_)
            | StoreError::PoolExhausted(_)
            | StoreError::ReadOnly(_)
            | StoreError::StatementTimeout(_)
            | StoreError::Conflict(_) => true,
            StoreError::Deadline(_)
            | StoreError::ConnectionLost(_)
            | StoreError::ShuttingDown(_)
            | StoreError::Maintenance(_)
            | StoreError::NotFound { .. }
            | StoreError::Transition(_)
            | StoreError::Validation(_)
            | StoreError::Conflicting(_)
            | StoreError::Migration(_)
            | StoreError::Decode(_)
            | StoreError::Db(_) => false,
        }
    }

    /// True when the connection that produced this error must never be
    /// reused: it is dead, hung, or attached to a node that is not the primary.
    pub fn poisons_connection(&self) -> bool {
        matches!(
            self,
            StoreError::Deadline(_)
                | StoreError::ConnectionLost(_)
                | StoreError::ReadOnly(_)
                | StoreError::ShuttingDown(_)
        )
    }

    /// True when the database tier (not the request) is at fault: the API
    /// answers 503 `database_unavailable` with `Retry-After`. A saturated
    /// pool ([`StoreError::PoolExhausted`]) is not: the database answers.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Unavailable(_)
                | StoreError::PoolTimeout(_)
                | StoreError::Deadline(_)
                | StoreError::StatementTimeout(_)
                | StoreError::ConnectionLost(_)
                | StoreError::ReadOnly(_)
                | StoreError::ShuttingDown(_)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dash_core::AgentStatus;

    fn all_variants_without_driver_errors() -> Vec<(StoreError, bool, bool, bool)> {
        // (error, retryable, poisons, unavailable)
        vec![
            (StoreError::Unavailable("x".into()), true, false, true),
            (
                StoreError::PoolTimeout(Duration::from_secs(1)),
                true,
                false,
                true,
            ),
            (
                StoreError::PoolExhausted(Duration::from_secs(1)),
                true,
                false,
                false,
            ),
            (
                StoreError::Deadline(Duration::from_secs(1)),
                false,
                true,
                true,
            ),
            (
                StoreError::Maintenance("restore".into()),
                false,
                false,
                false,
            ),
            (
                StoreError::NotFound {
                    entity: "agent",
                    id: "1".into(),
                },
                false,
                false,
                false,
            ),
            (
                StoreError::Transition(
                    dash_core::agent_transition(AgentStatus::Killed, dash_core::AgentAction::Start)
                        .unwrap_err(),
                ),
                false,
                false,
                false,
            ),
            (
                StoreError::Validation(ValidationError {
                    field: "name".into(),
                    message: "empty".into(),
                }),
                false,
                false,
                false,
            ),
            (StoreError::Conflicting("dup".into()), false, false, false),
            (StoreError::Migration("x".into()), false, false, false),
        ]
    }

    #[test]
    fn an_acquire_timeout_is_exhaustion_only_while_the_database_answers() {
        let d = Duration::from_secs(1);
        assert!(matches!(
            StoreError::acquire_timed_out(d, true),
            StoreError::PoolExhausted(_)
        ));
        assert!(matches!(
            StoreError::acquire_timed_out(d, false),
            StoreError::PoolTimeout(_)
        ));
    }

    #[test]
    fn each_variant_answers_retryable_poison_and_unavailable() {
        for (e, retry, poison, unavailable) in all_variants_without_driver_errors() {
            assert_eq!(e.is_retryable(), retry, "{e:?} retryable");
            assert_eq!(e.poisons_connection(), poison, "{e:?} poisons");
            assert_eq!(e.is_unavailable(), unavailable, "{e:?} unavailable");
        }
    }
}
