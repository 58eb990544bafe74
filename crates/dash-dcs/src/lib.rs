//! etcd for Dash. etcd holds only leadership: which node may be primary (a
//! key under a lease), the synchronous standby set, the members' reported
//! state, operator requests and the recent history of HA decisions. Dash
//! never implements consensus itself.

mod server;

pub use server::{EtcdConfig, EtcdError, EtcdMember, READY_TIMEOUT};
