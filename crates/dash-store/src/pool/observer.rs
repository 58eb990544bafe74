//! What the store reports about itself. The API implements this with
//! Prometheus metrics; the CLI uses the no-op.

use std::time::Duration;

use crate::conn_failure::ConnFailure;

/// Why a connection attempt or a live connection failed (a bounded label set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnErrorReason {
    /// TCP connect refused or reset.
    Refused,
    /// Connect, handshake or read-write check passed its deadline.
    Timeout,
    /// Authentication or authorization rejected.
    Auth,
    /// Reached a node that is a standby or read-only.
    ReadOnly,
    /// An established connection died or hung.
    Lost,
    /// Anything else (DNS, protocol, server starting up).
    Other,
}

impl ConnErrorReason {
    /// Every reason, so a metric can export each at zero before it happens.
    pub const ALL: [ConnErrorReason; 6] = [
        ConnErrorReason::Refused,
        ConnErrorReason::Timeout,
        ConnErrorReason::Auth,
        ConnErrorReason::ReadOnly,
        ConnErrorReason::Lost,
        ConnErrorReason::Other,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            ConnErrorReason::Refused => "refused",
            ConnErrorReason::Timeout => "timeout",
            ConnErrorReason::Auth => "auth",
            ConnErrorReason::ReadOnly => "read_only",
            ConnErrorReason::Lost => "lost",
            ConnErrorReason::Other => "other",
        }
    }
}

/// The metric's bounded label set: a reset counts as refused, and every
/// server-side refusal but authentication as other.
impl From<ConnFailure> for ConnErrorReason {
    fn from(f: ConnFailure) -> ConnErrorReason {
        match f {
            ConnFailure::Refused | ConnFailure::Reset => ConnErrorReason::Refused,
            ConnFailure::Timeout => ConnErrorReason::Timeout,
            ConnFailure::Auth => ConnErrorReason::Auth,
            ConnFailure::TooManyConnections
            | ConnFailure::NotAccepting
            | ConnFailure::NoDatabase
            | ConnFailure::ServerTimeout
            | ConnFailure::Server
            | ConnFailure::Other => ConnErrorReason::Other,
        }
    }
}

/// Hooks the store calls; every method has a no-op default.
pub trait StoreObserver: Send + Sync + 'static {
    fn acquire(&self, _waited: Duration) {}
    fn acquire_timeout(&self) {}
    fn query(&self, _took: Duration) {}
    fn connection_error(&self, _reason: ConnErrorReason) {}
    /// The writable primary moved to a different host.
    fn failover(&self) {}
}

/// Observer that records nothing.
pub struct NoopObserver;
impl StoreObserver for NoopObserver {}
