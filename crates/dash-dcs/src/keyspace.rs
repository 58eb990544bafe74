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
//! | `request` | [`Request`] JSON | none |
//! | `initialize` | the member that ran `initdb` | none |
//! | `history/<ms>-<name>` | [`HistoryEntry`] JSON (the newest 200) | none |

use std::future::Future;
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, PutOptions, SortOrder,
    SortTarget, Txn, TxnOp,
};
use serde::de::DeserializeOwned;

use crate::records::{HistoryEntry, MemberState, Request, SyncState};
use crate::DcsError;

/// How many history entries etcd keeps.
const HISTORY_KEEP: usize = 200;

/// A connection to etcd, scoped to one cluster's keys.
#[derive(Clone)]
pub struct Dcs {
    client: Client,
    root: String,
    timeout: Duration,
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
            .with_keep_alive_while_idle(true);
        let client = tokio::time::timeout(timeout, Client::connect(endpoints, Some(options)))
            .await
            .map_err(|_| DcsError::Timeout(timeout))??;
        Ok(Dcs {
            client,
            root: format!("/dash/{cluster}/"),
            timeout,
        })
    }

    /// The per-call deadline.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The underlying client (the lease keeper streams on it).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    fn key(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.root)
    }

    async fn call<T>(
        &self,
        fut: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, DcsError> {
        tokio::time::timeout(self.timeout, fut)
            .await
            .map_err(|_| DcsError::Timeout(self.timeout))?
            .map_err(DcsError::from)
    }

    /// Reads every key of the cluster at one revision (linearizable: a
    /// member cut off from the etcd majority cannot answer).
    pub async fn view(&self) -> Result<ClusterView, DcsError> {
        let mut kv = self.client.kv_client();
        let resp = self
            .call(kv.get(self.root.clone(), Some(GetOptions::new().with_prefix())))
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
        let mut lease = self.client.lease_client();
        Ok(self.call(lease.grant(secs, None)).await?.id())
    }

    /// Revokes a lease: every key under it is deleted at once.
    pub async fn revoke(&self, lease: i64) -> Result<(), DcsError> {
        let mut client = self.client.lease_client();
        self.call(client.revoke(lease)).await.map(|_| ())
    }

    async fn txn(&self, txn: Txn) -> Result<bool, DcsError> {
        let mut kv = self.client.kv_client();
        Ok(self.call(kv.txn(txn)).await?.succeeded())
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

    /// Publishes this member's state under its lease.
    pub async fn put_member(&self, m: &MemberState, lease: i64) -> Result<(), DcsError> {
        let mut kv = self.client.kv_client();
        let key = self.key(&format!("members/{}", m.name));
        let opts = PutOptions::new().with_lease(lease);
        self.call(kv.put(key, to_json(m), Some(opts)))
            .await
            .map(|_| ())
    }

    /// Files an operator request unless one is pending.
    pub async fn file_request(&self, r: &Request) -> Result<bool, DcsError> {
        let key = self.key("request");
        self.txn(
            Txn::new()
                .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
                .and_then([TxnOp::put(key, to_json(r), None)]),
        )
        .await
    }

    /// Removes the request read at `revision` (done, or refused).
    pub async fn clear_request(&self, revision: i64) -> Result<bool, DcsError> {
        let key = self.key("request");
        self.txn(
            Txn::new()
                .when([Compare::mod_revision(
                    key.clone(),
                    CompareOp::Equal,
                    revision,
                )])
                .and_then([TxnOp::delete(key, None)]),
        )
        .await
    }

    /// Appends a decision to the history, keeping the newest entries.
    pub async fn record(&self, e: &HistoryEntry) -> Result<(), DcsError> {
        let mut kv = self.client.kv_client();
        let key = self.key(&format!("history/{:016}-{}", e.at_ms.max(0), e.member));
        self.call(kv.put(key, to_json(e), None)).await?;
        let prefix = self.key("history/");
        let opts = GetOptions::new()
            .with_prefix()
            .with_keys_only()
            .with_sort(SortTarget::Key, SortOrder::Descend);
        let keys = self.call(kv.get(prefix, Some(opts))).await?;
        for old in keys.kvs().iter().skip(HISTORY_KEEP) {
            self.call(kv.delete(old.key().to_vec(), None::<DeleteOptions>))
                .await?;
        }
        Ok(())
    }

    /// The recorded decisions, oldest first.
    pub async fn history(&self) -> Result<Vec<HistoryEntry>, DcsError> {
        let mut kv = self.client.kv_client();
        let prefix = self.key("history/");
        let resp = self
            .call(kv.get(prefix, Some(GetOptions::new().with_prefix())))
            .await?;
        resp.kvs()
            .iter()
            .map(|item| parse(&String::from_utf8_lossy(item.key()), item.value()))
            .collect()
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("records serialize")
}

fn parse<T: DeserializeOwned>(key: &str, value: &[u8]) -> Result<T, DcsError> {
    serde_json::from_slice(value).map_err(|e| DcsError::BadValue {
        key: key.to_string(),
        reason: e.to_string(),
    })
}
