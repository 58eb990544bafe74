//! Dash's keys in etcd, under `/dash/<cluster>/`, and every read and
//! conditional write the agents make on them. Each call runs under the
//! client-side deadline given to [`Dcs::connect`]: a partitioned or lost etcd
//! member must never hang an agent.
//!
//! | key | value | lease |
//! |---|---|---|
//! | `leader` | the primary's member name | the primary agent's |
//! | `sync` | [`SyncState`] JSON | none |
//! | `members/<name>` | [`MemberState`] JSON | that agent's |
//! | `request` | [`Request`] JSON | its own, ending when the request times out |
//! | `initialize` | the member that ran `initdb` | none |
//! | `history/<ms>-<name>` | [`HistoryEntry`] JSON (the newest 200) | none |

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, ConnectOptions, GetOptions, PutOptions, Txn, TxnOp};
use serde::de::DeserializeOwned;

use crate::records::{Halt, MemberState, Request, SyncState};
use crate::DcsError;

/// A connection to etcd, scoped to one cluster's keys. It talks to one
/// member at a time and moves to the next when a call fails or times out
/// (a crashed member refuses at once, a partitioned one is only noticed by
/// the deadline), so a lost member costs one call, not every third one.
#[derive(Clone)]
pub struct Dcs {
    pub(crate) clients: Arc<Vec<Client>>,
    current: Arc<AtomicUsize>,
    root: String,
    pub(crate) timeout: Duration,
}

/// The leader key as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leader {
    pub name: String,
    pub lease: i64,
    pub mod_revision: i64,
}

/// A record with the revision a conditional write compares against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned<T> {
    pub value: T,
    pub mod_revision: i64,
}

/// Everything under the cluster's prefix, read at one revision.
#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    pub revision: i64,
    pub leader: Option<Leader>,
    pub sync: Option<Versioned<SyncState>>,
    pub members: Vec<MemberState>,
    pub request: Option<Versioned<Request>>,
    /// A cluster-wide halt for a restore (see [`Halt`]).
    pub halt: Option<Versioned<Halt>>,
    pub initialized_by: Option<String>,
}

impl ClusterView {
    /// The `sync` key's revision for a compare (0: the key is absent).
    pub fn sync_revision(&self) -> i64 {
        self.sync.as_ref().map_or(0, |s| s.mod_revision)
    }
    /// A member's reported state.
    pub fn member(&self, name: &str) -> Option<&MemberState> {
        self.members.iter().find(|m| m.name == name)
    }
}

impl Dcs {
    /// Connects to any of `endpoints` (`http://host:2379`). `timeout` bounds
    /// every call, the TCP connect and the HTTP/2 keep-alive that notices a
    /// silent member.
    pub async fn connect(
        endpoints: &[String],
        cluster: &str,
        timeout: Duration,
    ) -> Result<Dcs, DcsError> {
        if endpoints.is_empty() {
            return Err(DcsError::Invalid("no etcd endpoint given".into()));
        }
        if cluster.is_empty() || cluster.contains('/') {
            return Err(DcsError::Invalid(format!(
                "cluster name {cluster:?} must be non-empty and without '/'"
            )));
        }
        let options = ConnectOptions::new()
            .with_connect_timeout(timeout)
            .with_keep_alive(timeout, timeout)
            .with_keep_alive_while_idle(true)
            // A member without a leader (the minority side of a partition)
            // answers at once instead of hanging.
            .with_require_leader(true);
        let mut clients = Vec::new();
        for endpoint in endpoints {
            // Connections are made lazily: a member that is down now is tried when its turn comes.
            let client = tokio::time::timeout(
                timeout,
                Client::connect([endpoint.as_str()], Some(options.clone())),
            )
            .await
            .map_err(|_| DcsError::Timeout(timeout))??;
            clients.push(client);
        }
        Ok(Dcs {
            clients: Arc::new(clients),
            current: Arc::new(AtomicUsize::new(0)),
            root: format!("/dash/{cluster}/"),
            timeout,
        })
    }

    /// The per-call deadline.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The member in use now (the lease keeper streams on it).
    pub fn client(&self) -> Client {
        self.clients[self.current.load(Ordering::Relaxed) % self.clients.len()].clone()
    }

    /// Moves to the next member (after a failure on this one).
    pub fn rotate(&self) {
        self.current.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn key(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.root)
    }

    /// Runs one call on the member in use, under the deadline. A member
    /// that refuses at once is skipped for the next one within the same
    /// call; one that times out is skipped from the next call on.
    pub(crate) async fn call<T, F, Fut>(&self, f: F) -> Result<T, DcsError>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let started = tokio::time::Instant::now();
        let mut last = None;
        for _ in 0..self.clients.len() {
            let left = self.timeout.saturating_sub(started.elapsed());
            if left.is_zero() {
                break;
            }
            match tokio::time::timeout(left, f(self.client())).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) => {
                    self.rotate();
                    last = Some(DcsError::from(e));
                }
                Err(_) => {
                    self.rotate();
                    return Err(DcsError::Timeout(self.timeout));
                }
            }
        }
        Err(last.unwrap_or(DcsError::Timeout(self.timeout)))
    }

    /// Reads every key of the cluster at one revision (linearizable: a
    /// member cut off from the etcd majority cannot answer).
    pub async fn view(&self) -> Result<ClusterView, DcsError> {
        let root = self.root.clone();
        let resp = self
            .call(|c| {
                let root = root.clone();
                async move {
                    c.kv_client()
                        .get(root, Some(GetOptions::new().with_prefix()))
                        .await
                }
            })
            .await?;
        let mut view = ClusterView {
            revision: resp.header().map_or(0, |h| h.revision()),
            ..ClusterView::default()
        };
        for item in resp.kvs() {
            let key = String::from_utf8_lossy(item.key()).to_string();
            let Some(suffix) = key.strip_prefix(&self.root) else {
                continue;
            };
            let value = item.value();
            match suffix {
                "leader" => {
                    view.leader = Some(Leader {
                        name: String::from_utf8_lossy(value).to_string(),
                        lease: item.lease(),
                        mod_revision: item.mod_revision(),
                    })
                }
                "sync" => {
                    view.sync = Some(Versioned {
                        value: parse(&key, value)?,
                        mod_revision: item.mod_revision(),
                    })
                }
                "request" => {
                    view.request = Some(Versioned {
                        value: parse(&key, value)?,
                        mod_revision: item.mod_revision(),
                    })
                }
                "halt" => {
                    view.halt = Some(Versioned {
                        value: parse(&key, value)?,
                        mod_revision: item.mod_revision(),
                    })
                }
                "initialize" => {
                    view.initialized_by = Some(String::from_utf8_lossy(value).to_string())
                }
                s if s.starts_with("members/") => {
                    // One unreadable member record must not blind the others.
                    if let Ok(m) = parse::<MemberState>(&key, value) {
                        view.members.push(m);
                    }
                }
                _ => {}
            }
        }
        view.members.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(view)
    }

    /// A new lease of `ttl` (whole seconds, at least 1; etcd may raise it to
    /// its own minimum, never lower it).
    pub async fn grant(&self, ttl: Duration) -> Result<i64, DcsError> {
        let secs = ttl.as_secs_f64().ceil().max(1.0) as i64;
        let granted = self
            .call(|c| async move { c.lease_client().grant(secs, None).await })
            .await?;
        Ok(granted.id())
    }

    /// Revokes a lease: every key under it is deleted at once.
    pub async fn revoke(&self, lease: i64) -> Result<(), DcsError> {
        self.call(|c| async move { c.lease_client().revoke(lease).await })
            .await
            .map(|_| ())
    }

    pub(crate) async fn txn(&self, txn: Txn) -> Result<bool, DcsError> {
        let resp = self
            .call(|c| {
                let txn = txn.clone();
                async move { c.kv_client().txn(txn).await }
            })
            .await?;
        Ok(resp.succeeded())
    }

    /// Claims the right to run `initdb` for a new cluster (once, ever).
    pub async fn claim_initialize(&self, me: &str) -> Result<bool, DcsError> {
        let key = self.key("initialize");
        self.txn(
            Txn::new()
                .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
                .and_then([TxnOp::put(key, me, None)]),
        )
        .await
    }

    /// Takes the leader key under `lease` if nobody holds it and the sync
    /// set is still the one read at `sync_revision` (0: absent), and records
    /// `sync` (the new leader's set) in the same transaction.
    pub async fn acquire(
        &self,
        me: &str,
        lease: i64,
        sync_revision: i64,
        sync: &SyncState,
    ) -> Result<bool, DcsError> {
        let leader = self.key("leader");
        let sync_key = self.key("sync");
        self.txn(
            Txn::new()
                .when([
                    Compare::create_revision(leader.clone(), CompareOp::Equal, 0),
                    Compare::mod_revision(sync_key.clone(), CompareOp::Equal, sync_revision),
                ])
                .and_then([
                    TxnOp::put(leader, me, Some(PutOptions::new().with_lease(lease))),
                    TxnOp::put(sync_key, to_json(sync), None),
                ]),
        )
        .await
    }

    /// Moves the leader key from our older lease `old` to `new` (an agent
    /// that restarted while its server kept running), in one conditional
    /// write: the key is never free meanwhile.
    pub async fn reclaim(&self, me: &str, old: i64, new: i64) -> Result<bool, DcsError> {
        let leader = self.key("leader");
        self.txn(
            Txn::new()
                .when([
                    Compare::value(leader.clone(), CompareOp::Equal, me),
                    Compare::lease(leader.clone(), CompareOp::Equal, old),
                ])
                .and_then([TxnOp::put(
                    leader,
                    me,
                    Some(PutOptions::new().with_lease(new)),
                )]),
        )
        .await
    }

    /// Deletes the leader key if `me` holds it (the fast path and switchover).
    pub async fn release(&self, me: &str) -> Result<bool, DcsError> {
        let leader = self.key("leader");
        self.txn(
            Txn::new()
                .when([Compare::value(leader.clone(), CompareOp::Equal, me)])
                .and_then([TxnOp::delete(leader, None)]),
        )
        .await
    }

    /// Records the sync set, only while `me` holds the leader key under
    /// `lease` and nobody changed the set since `prev_revision`.
    pub async fn set_sync(
        &self,
        me: &str,
        lease: i64,
        prev_revision: i64,
        sync: &SyncState,
    ) -> Result<bool, DcsError> {
        let leader = self.key("leader");
        let sync_key = self.key("sync");
        self.txn(
            Txn::new()
                .when([
                    Compare::value(leader.clone(), CompareOp::Equal, me),
                    Compare::lease(leader, CompareOp::Equal, lease),
                    Compare::mod_revision(sync_key.clone(), CompareOp::Equal, prev_revision),
                ])
                .and_then([TxnOp::put(sync_key, to_json(sync), None)]),
        )
        .await
    }

    pub(crate) async fn put(
        &self,
        key: String,
        value: String,
        opts: Option<PutOptions>,
    ) -> Result<(), DcsError> {
        self.call(|c| {
            let (key, value, opts) = (key.clone(), value.clone(), opts.clone());
            async move { c.kv_client().put(key, value, opts).await }
        })
        .await
        .map(|_| ())
    }

    /// Publishes this member's state under its lease.
    pub async fn put_member(&self, m: &MemberState, lease: i64) -> Result<(), DcsError> {
        let key = self.key(&format!("members/{}", m.name));
        let value = to_json(m);
        self.put(key, value, Some(PutOptions::new().with_lease(lease)))
            .await
    }
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("records serialize")
}

pub(crate) fn parse<T: DeserializeOwned>(key: &str, value: &[u8]) -> Result<T, DcsError> {
    serde_json::from_slice(value).map_err(|e| DcsError::BadValue {
        key: key.to_string(),
        reason: e.to_string(),
    })
}
