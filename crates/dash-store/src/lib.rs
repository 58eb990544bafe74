//! Dash's PostgreSQL store: settings, the failover-aware pool, migrations,
//! and the queries behind every API call.

pub mod config;
pub mod conn_failure;
pub mod error;
pub mod listen;
pub mod migrate;
pub mod model;
pub mod pool;
pub mod repo;
mod rfc3339;

pub use config::{DbSettings, HostPort, Secret};
pub use conn_failure::ConnFailure;
pub use error::StoreError;
pub use pool::{Conn, Db, PoolStatus, StoreObserver};
pub use repo::{EventCursor, IdemRequest};
