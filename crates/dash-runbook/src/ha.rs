//! The HA tier as etcd and the node agents (`dashctl node`) see it: the
//! leader key, the synchronous standby set, every member's record, what each
//! agent's node API says, and the newest HA decisions. Gathering is here
//! (every call bounded: etcd 2 s, a node API 1 s); rendering and the problems
//! it shows are pure ([`render`]); the switchover and the failover through
//! etcd are [`switchover`] and [`failover`], sharing [`request`].

pub mod failover;
mod render;
pub mod request;
pub mod switchover;

use std::time::Duration;

use dash_dcs::{ClusterView, Dcs, HistoryEntry, MemberState, Request, SyncState};
use serde::Serialize;

use super::{NodeTarget, Target};
use crate::probe::Role;

/// Deadline of every etcd call (and of the connect).
pub const ETCD_TIMEOUT: Duration = Duration::from_secs(2);
/// Deadline of one node API request.
pub const NODE_API_TIMEOUT: Duration = Duration::from_secs(1);
/// How many of the newest history entries the view keeps.
pub const HISTORY_SHOWN: usize = 10;

/// Where the agents keep their state: etcd's client URLs and the cluster
/// name (the prefix `/dash/<cluster>/`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EtcdTarget {
    pub endpoints: Vec<String>,
    pub cluster: String,
}

impl EtcdTarget {
    /// `None` when no endpoint is given (etcd is not configured).
    pub fn new(endpoints: &[String], cluster: &str) -> Option<EtcdTarget> {
        let endpoints: Vec<String> = (endpoints.iter())
            .map(|e| e.trim().to_string())
            .filter(|e| !e.is_empty())
            .collect();
        (!endpoints.is_empty()).then(|| EtcdTarget {
            endpoints,
            cluster: cluster.to_string(),
        })
    }

    /// The flags that name this target again: `--etcd URLS --cluster NAME`.
    pub fn flags(&self) -> String {
        format!(
            "--etcd {} --cluster {}",
            self.endpoints.join(","),
            self.cluster
        )
    }

    pub async fn connect(&self) -> Result<Dcs, dash_dcs::DcsError> {
        Dcs::connect(&self.endpoints, &self.cluster, ETCD_TIMEOUT).await
    }
}

/// The HA view (`dashctl db status` with etcd configured).
#[derive(Debug, Clone, Default, Serialize)]
pub struct HaView {
    pub cluster: String,
    pub endpoints: Vec<String>,
    /// Why etcd could not be read; everything else is then empty.
    pub etcd_error: Option<String>,
    /// The leader key's holder.
    pub leader: Option<String>,
    pub sync: Option<SyncState>,
    /// An operator request waiting for the leader.
    pub request: Option<Request>,
    /// A cluster-wide halt (a point-in-time restore under way, or one that
    /// was interrupted): nothing runs until it is lifted.
    pub halt: Option<dash_dcs::Halt>,
    pub members: Vec<HaMember>,
    /// The newest decisions, oldest first.
    pub history: Vec<HistoryLine>,
    /// Members etcd's history knows that have no member record now (their
    /// agent is not running, or they left): each one's last decision.
    pub absent: Vec<HistoryLine>,
    pub history_error: Option<String>,
}

/// One member as it reports itself in etcd, and what its node API says.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HaMember {
    pub name: String,
    /// Its PostgreSQL, `host:port`.
    pub pg: String,
    /// Its node API's base URL.
    pub api: String,
    pub role: String,
    pub timeline: Option<u32>,
    pub lsn: Option<String>,
    pub streaming: bool,
    /// It holds the leader key.
    pub leader: bool,
    /// It is in the recorded synchronous standby set.
    pub sync_standby: bool,
    pub node_api: NodeApi,
}

/// One agent's node API, as this command reached it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NodeApi {
    pub reachable: bool,
    /// Why `/status` did not answer.
    pub error: Option<String>,
    pub status: Option<NodeStatus>,
    /// `GET /primary`'s HTTP status, asked of the leader only (200 only on
    /// the key-holding writable primary).
    pub primary_http: Option<u16>,
    /// Why `/primary` did not answer.
    pub primary_error: Option<String>,
}

/// An agent's `GET /status`, as the agent serves it.
pub use dash_node::Status as NodeStatus;

/// One recorded HA decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryLine {
    pub at_ms: i64,
    /// `at_ms` as RFC 3339 UTC.
    pub at: String,
    pub member: String,
    pub decision: String,
    pub detail: String,
}

impl From<&HistoryEntry> for HistoryLine {
    fn from(e: &HistoryEntry) -> HistoryLine {
        let at = chrono::DateTime::from_timestamp_millis(e.at_ms)
            .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
            .unwrap_or_else(|| e.at_ms.to_string());
        HistoryLine {
            at_ms: e.at_ms,
            at,
            member: e.member.clone(),
            decision: e.decision.clone(),
            detail: e.detail.clone(),
        }
    }
}

/// An LSN as PostgreSQL prints it: `0/3000060`.
pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

impl HaView {
    /// The view built from what etcd holds (no node API answers yet).
    pub fn from_etcd(etcd: &EtcdTarget, view: &ClusterView, history: &[HistoryEntry]) -> HaView {
        let leader = view.leader.as_ref().map(|l| l.name.clone());
        let sync = view.sync.as_ref().map(|s| s.value.clone());
        let members = (view.members.iter())
            .map(|m| HaMember::from_state(m, leader.as_deref(), sync.as_ref()))
            .collect();
        let skip = history.len().saturating_sub(HISTORY_SHOWN);
        let mut absent: Vec<HistoryLine> = Vec::new();
        for e in history.iter().rev() {
            if view.member(&e.member).is_none() && !absent.iter().any(|a| a.member == e.member) {
                absent.push(HistoryLine::from(e));
            }
        }
        absent.sort_by(|a, b| a.member.cmp(&b.member));
        HaView {
            cluster: etcd.cluster.clone(),
            endpoints: etcd.endpoints.clone(),
            leader,
            sync,
            request: view.request.as_ref().map(|r| r.value.clone()),
            halt: view.halt.as_ref().map(|h| h.value.clone()),
            members,
            history: history.iter().skip(skip).map(HistoryLine::from).collect(),
            absent,
            ..HaView::default()
        }
    }

    /// A view that says only that etcd could not be read.
    pub fn unreachable(etcd: &EtcdTarget, error: String) -> HaView {
        HaView {
            cluster: etcd.cluster.clone(),
            endpoints: etcd.endpoints.clone(),
            etcd_error: Some(error),
            ..HaView::default()
        }
    }

    pub fn member(&self, name: &str) -> Option<&HaMember> {
        self.members.iter().find(|m| m.name == name)
    }

    /// The standbys recorded for the current leader (empty: asynchronous).
    pub fn standbys(&self) -> &[String] {
        match (&self.sync, &self.leader) {
            (Some(s), Some(l)) if &s.leader == l => &s.standbys,
            _ => &[],
        }
    }

    /// The members as nodes to probe: named as in etcd, at their `pg`
    /// address, with the role they report (a fenced one is not judged).
    pub fn nodes(&self) -> Vec<NodeTarget> {
        (self.members.iter())
            .filter_map(|m| {
                let address = dash_store::config::parse_hosts(&m.pg, 5432).ok()?.pop()?;
                Some(NodeTarget {
                    name: m.name.clone(),
                    address,
                    recorded_role: match m.role.as_str() {
                        "primary" => Some(Role::Primary),
                        "replica" => Some(Role::Replica),
                        "fenced" => Some(Role::Fenced),
                        _ => None,
                    },
                })
            })
            .collect()
    }
}

impl HaMember {
    fn from_state(m: &MemberState, leader: Option<&str>, sync: Option<&SyncState>) -> HaMember {
        HaMember {
            name: m.name.clone(),
            pg: m.pg.clone(),
            api: m.api.trim_end_matches('/').to_string(),
            role: m.role.clone(),
            timeline: m.timeline,
            lsn: m.lsn.map(format_lsn),
            streaming: m.streaming,
            leader: leader == Some(m.name.as_str()),
            sync_standby: sync
                .is_some_and(|s| Some(s.leader.as_str()) == leader && s.may_promote(&m.name)),
            node_api: NodeApi::default(),
        }
    }
}

/// Reads etcd and asks every member's node API, all bounded.
pub async fn gather(etcd: &EtcdTarget) -> HaView {
    let dcs = match etcd.connect().await {
        Ok(d) => d,
        Err(e) => return HaView::unreachable(etcd, e.to_string()),
    };
    let view = match dcs.view().await {
        Ok(v) => v,
        Err(e) => return HaView::unreachable(etcd, e.to_string()),
    };
    let (history, history_error) = match dcs.history().await {
        Ok(h) => (h, None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    let mut ha = HaView::from_etcd(etcd, &view, &history);
    ha.history_error = history_error;
    ask_node_apis(&mut ha).await;
    ha
}

/// The HA view and the target whose nodes are the members' PostgreSQL
/// addresses (the credentials and the API stay `target`'s). Without member
/// records (etcd unreachable, or no agent yet) the target is unchanged.
pub async fn observe(target: &Target, etcd: &EtcdTarget) -> (Target, HaView) {
    let ha = gather(etcd).await;
    let nodes = ha.nodes();
    if nodes.is_empty() {
        return (target.clone(), ha);
    }
    let mut t = target.clone();
    t.settings.hosts = nodes.iter().map(|n| n.address.clone()).collect();
    t.nodes = nodes;
    t.source = format!(
        "etcd members of cluster {} ({}); credentials from {}",
        etcd.cluster,
        etcd.endpoints.join(","),
        target.source
    );
    (t, ha)
}

/// `/status` of every member and `/primary` of the leader, at once.
async fn ask_node_apis(ha: &mut HaView) {
    let http = match reqwest::Client::builder()
        .timeout(NODE_API_TIMEOUT)
        .connect_timeout(NODE_API_TIMEOUT)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            for m in &mut ha.members {
                m.node_api.error = Some(format!("no HTTP client: {e}"));
            }
            return;
        }
    };
    let asks = ha.members.iter().map(|m| {
        let http = http.clone();
        let (api, leader) = (m.api.clone(), m.leader);
        async move {
            let mut out = NodeApi::default();
            match node_status(&http, &api).await {
                Ok(s) => (out.reachable, out.status) = (true, Some(s)),
                Err(e) => out.error = Some(e),
            }
            if leader {
                match primary_http(&http, &api).await {
                    Ok(code) => out.primary_http = Some(code),
                    Err(e) => out.primary_error = Some(e),
                }
            }
            out
        }
    });
    let answers = futures::future::join_all(asks).await;
    for (m, a) in ha.members.iter_mut().zip(answers) {
        m.node_api = a;
    }
}

async fn node_status(http: &reqwest::Client, api: &str) -> Result<NodeStatus, String> {
    let resp = (http.get(format!("{api}/status")).send().await).map_err(|e| http_error(&e))?;
    if !resp.status().is_success() {
        return Err(format!("/status answered {}", resp.status().as_u16()));
    }
    resp.json().await.map_err(|e| http_error(&e))
}

/// `GET {api}/primary`'s status code.
pub async fn primary_http(http: &reqwest::Client, api: &str) -> Result<u16, String> {
    let resp = (http.get(format!("{api}/primary")).send().await).map_err(|e| http_error(&e))?;
    Ok(resp.status().as_u16())
}

/// A reqwest error with its cause (reqwest's own text omits it).
fn http_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return format!("no answer within {NODE_API_TIMEOUT:?}");
    }
    dash_core::error_chain(e)
}

#[cfg(test)]
mod tests;
