//! etcd for Dash. etcd holds only leadership: which node may be primary (a
//! key under a lease), the synchronous standby set, the members' reported
//! state, operator requests and the recent history of HA decisions. Dash
//! never implements consensus itself, and losing etcd loses no data.

mod error;
mod keyspace;
mod lease;
mod records;

pub use error::DcsError;
pub use keyspace::{ClusterView, Dcs, Leader, Versioned};
pub use lease::{LeaseKeeperTask, LeaseState, LeaseTiming};
pub use records::{HistoryEntry, MemberState, Request, SyncState};
