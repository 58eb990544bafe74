//! What can go wrong talking to etcd.

/// An etcd call that failed or did not answer in time.
#[derive(Debug, thiserror::Error)]
pub enum DcsError {
    #[error("etcd did not answer within {0:?}")]
    Timeout(std::time::Duration),
    #[error("etcd: {0}")]
    Etcd(#[from] etcd_client::Error),
    #[error("etcd key {key} holds a value Dash cannot read: {reason}")]
    BadValue { key: String, reason: String },
    #[error("{0}")]
    Invalid(String),
}
