//! etcd for Dash. etcd holds only leadership: which node may be primary (a
//! key under a lease), the synchronous standby set, the members' reported
//! state, operator requests and the recent history of HA decisions. Dash
//! never implements consensus itself, and losing etcd loses no data.
//!
//! `server` runs an etcd member as a child process (`dashctl up`, tests, the
//! namespace test bed); `keyspace` and `lease` are what the agents do in it.

mod error;
mod etcd_leader;
mod halt;
mod history;
mod incidents;
mod keyspace;
mod leader_watch;
mod lease;
mod records;
mod requests;
mod server;

pub use error::DcsError;
pub use incidents::{group, IncidentGroup, IncidentHead, DEFAULT_INCIDENT_GAP};
pub use keyspace::{ClusterView, Dcs, Leader, Versioned};
pub use leader_watch::LeaderChange;
pub use lease::{LeaseKeeperTask, LeaseState, LeaseTiming};
pub use records::{Halt, HistoryEntry, MemberState, Request, SyncState};
pub use server::{EtcdConfig, EtcdError, EtcdMember, READY_TIMEOUT};
