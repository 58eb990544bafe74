//! What Dash keeps in etcd, as plain serde records. The keys are in
//! `keyspace.rs`; the rules that act on these records are in `dash-node`.

use serde::{Deserialize, Serialize};

/// The synchronous standby set (Patroni's `/sync` key). Only a member named
/// in `standbys` while `leader` is gone may be promoted: the primary changes
/// `synchronous_standby_names` only in the order that keeps that true
/// (record a shrink here first, record a growth here only once the new
/// standby acknowledges commits). An empty `standbys` is asynchronous mode,
/// recorded before the primary stops waiting for a standby; then nobody may
/// be promoted without an operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SyncState {
    /// The primary this set belongs to.
    pub leader: String,
    /// Members that hold every write the leader acknowledged.
    pub standbys: Vec<String>,
}

impl SyncState {
    /// Whether `name` may take over from `leader`.
    pub fn may_promote(&self, name: &str) -> bool {
        self.standbys.iter().any(|s| s == name)
    }
}

/// A halt of the whole cluster (the `halt` key), filed by a physical
/// restore: while it stands, every agent stops its PostgreSQL (cleanly),
/// gives up the leader key and starts nothing. Once `restored` names the
/// member whose data directory now holds the restored cluster, every other
/// member sets its own data directory aside, to be cloned afresh from the
/// restored primary when the halt is lifted. It has no lease: a restore
/// interrupted half-way must wait for an operator, never restart itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Halt {
    /// Who filed it (`dashctl db restore` and its host).
    pub by: String,
    /// Why, as shown in `dashctl db status` and the history.
    pub reason: String,
    /// The member that holds the restored cluster, once it is in place.
    #[serde(default)]
    pub restored: Option<String>,
}

/// What one member reports about itself, under its own lease (gone when the
/// member's agent is gone).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct MemberState {
    pub name: String,
    /// `host:port` of its PostgreSQL, as clients and other members reach it.
    pub pg: String,
    /// Base URL of its node API (`http://host:8008`).
    pub api: String,
    /// `primary`, `replica`, `stopped`, `starting`, `fenced`; under a halt
    /// `halted` (stopped, data kept) or `set-aside` (data moved aside).
    pub role: String,
    /// PostgreSQL timeline, when known.
    pub timeline: Option<u32>,
    /// Primary: current WAL LSN; replica: the greater of received and replayed.
    pub lsn: Option<u64>,
    /// Replica: its WAL receiver streams from the leader.
    pub streaming: bool,
}

/// An operator request the leader and candidates act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Request {
    /// Planned, zero-loss hand-over from `from` (the current leader) to `to`
    /// (a recorded synchronous standby), or to the standby when `to` is unset.
    Switchover { from: String, to: Option<String> },
    /// Operator failover. With a leader (`from`), its agent fences its
    /// PostgreSQL at once (no clean shutdown) and releases the key, and `to`
    /// (a recorded synchronous standby, or the standby when unset) takes it.
    /// Filed while the key is free (`from` unset), only `to` may take it:
    /// a recorded synchronous standby, or any standby when the operator
    /// accepted that it may lack acknowledged writes.
    Failover {
        from: Option<String>,
        to: Option<String>,
        #[serde(default)]
        accept_data_loss: bool,
    },
}

impl std::fmt::Display for Request {
    /// How the request reads in `dashctl db status` and refusals.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let to = |t: &Option<String>| {
            t.clone()
                .unwrap_or_else(|| "its synchronous standby".into())
        };
        match self {
            Request::Switchover { from, to: t } => write!(f, "switchover from {from} to {}", to(t)),
            Request::Failover {
                from,
                to: t,
                accept_data_loss,
            } => {
                match from {
                    Some(from) => write!(f, "failover from {from} to {}", to(t))?,
                    None => write!(f, "failover to {} (the leader key was free)", to(t))?,
                }
                match accept_data_loss {
                    true => write!(f, ", accepting data loss"),
                    false => Ok(()),
                }
            }
        }
    }
}

/// One HA decision, kept in etcd so an incident's timeline survives the
/// database being down.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Unix time in milliseconds.
    pub at_ms: i64,
    pub member: String,
    /// `promote`, `demote`, `fence`, `rejoin`, `release`, `sync`, `async`, ...
    pub decision: String,
    pub detail: String,
}
