//! What the dashboard shows, as JSON: the database as the pool sees it, the
//! cluster (from etcd, or from the pool alone), swarms with their budgets,
//! agents by status and the recent events. The pure parts that turn etcd's
//! records or the pool's view into node cards live here, beside their tests.

use std::collections::BTreeMap;

use dash_dcs::{ClusterView, HistoryEntry, DEFAULT_INCIDENT_GAP};
use dash_store::config::HostPort;
use serde::Serialize;

/// Steps of the latest incident that are shown (its newest ones).
pub const INCIDENT_STEPS: usize = 12;

/// One dashboard snapshot: `at_ms` when it was built, then its content.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct Snapshot {
    pub at_ms: i64,
    #[serde(flatten)]
    pub body: Body,
}

/// A snapshot's content; a new one is sent only when this changes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Body {
    pub database: DatabaseState,
    pub cluster: ClusterSnapshot,
    pub swarms: Vec<SwarmRow>,
    /// Agents by status, every status listed.
    pub agents: BTreeMap<String, i64>,
    /// The newest events, newest first.
    pub events: Vec<EventRow>,
    /// Why swarms, agents or events could not be read (they show the last values read).
    pub data_error: Option<String>,
}

/// The API's pool: whether it reaches a writable primary, which, and why not.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct DatabaseState {
    pub reachable: bool,
    pub primary: Option<String>,
    pub error: Option<String>,
}

/// The database cluster.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ClusterSnapshot {
    /// `etcd` (the node agents' records) or `pool` (what the API's pool sees).
    pub source: &'static str,
    /// Why the source could not be read.
    pub error: Option<String>,
    /// The member holding the leader key (etcd) or the pool's primary.
    pub leader: Option<String>,
    /// No leader key, or its holder is not a writable primary.
    pub failover_in_progress: bool,
    pub nodes: Vec<NodeCard>,
    pub incident: Option<IncidentSummary>,
}

/// One PostgreSQL node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct NodeCard {
    pub name: String,
    /// `host:port` of its PostgreSQL.
    pub address: String,
    /// `primary`, `replica`, `stopped`, `starting`, `fenced`, `unknown`.
    pub role: String,
    /// It is the leader (etcd) or the pool's primary.
    pub primary: bool,
    /// Replicas: its WAL receiver streams from the primary.
    pub streaming: Option<bool>,
    /// Replicas: it is a synchronous standby.
    pub sync: Option<bool>,
    /// Replicas: bytes of WAL behind the primary.
    pub lag_bytes: Option<u64>,
    pub timeline: Option<u32>,
}

/// The newest incident of the HA history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct IncidentSummary {
    pub title: String,
    pub started_ms: i64,
    pub ended_ms: i64,
    /// Its newest [`INCIDENT_STEPS`] decisions, oldest first: `{at_ms,
    /// member, decision, detail}`.
    #[schema(value_type = Vec<Object>)]
    pub steps: Vec<HistoryEntry>,
    /// How many decisions it had in all.
    pub total_steps: usize,
}

/// One swarm and its budget.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SwarmRow {
    pub id: uuid::Uuid,
    pub name: String,
    pub status: String,
    pub strategy: String,
    pub budget: dash_store::model::BudgetView,
}

/// One event of the log, without its data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct EventRow {
    pub cursor: String,
    pub kind: String,
    pub swarm_id: Option<uuid::Uuid>,
    pub agent_id: Option<uuid::Uuid>,
    pub created_at: String,
}

impl EventRow {
    /// From an event's JSON as the feed sends it; `None` when it is not one.
    pub fn from_json(json: &str) -> Option<EventRow> {
        serde_json::from_str(json).ok().map(|e| EventRow::from(&e))
    }
}

impl From<&dash_store::model::Event> for EventRow {
    fn from(e: &dash_store::model::Event) -> EventRow {
        EventRow {
            cursor: e.cursor.clone(),
            kind: e.kind.clone(),
            swarm_id: e.swarm_id,
            agent_id: e.agent_id,
            created_at: e
                .created_at
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        }
    }
}

impl From<&dash_store::model::Swarm> for SwarmRow {
    fn from(s: &dash_store::model::Swarm) -> SwarmRow {
        SwarmRow {
            id: s.id,
            name: s.name.clone(),
            status: s.status.as_str().into(),
            strategy: s.strategy.as_str().into(),
            budget: s.budget.clone(),
        }
    }
}

/// The cluster as the node agents record it in etcd.
pub fn from_etcd(view: &ClusterView, history: &[HistoryEntry]) -> ClusterSnapshot {
    let leader = view.leader.as_ref().map(|l| l.name.clone());
    let leading = leader.as_deref().and_then(|l| view.member(l));
    let leader_lsn = leading.and_then(|m| m.lsn);
    let sync = view.sync.as_ref().map(|s| &s.value);
    let mut nodes: Vec<NodeCard> = (view.members.iter())
        .map(|m| {
            let primary = leader.as_deref() == Some(m.name.as_str());
            let replica = !primary && m.role == "replica";
            NodeCard {
                name: m.name.clone(),
                address: m.pg.clone(),
                role: m.role.clone(),
                primary,
                streaming: replica.then_some(m.streaming),
                sync: replica.then(|| sync.is_some_and(|s| s.may_promote(&m.name))),
                lag_bytes: match (replica, leader_lsn, m.lsn) {
                    (true, Some(l), Some(r)) => Some(l.saturating_sub(r)),
                    _ => None,
                },
                timeline: m.timeline,
            }
        })
        .collect();
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    ClusterSnapshot {
        source: "etcd",
        error: None,
        failover_in_progress: leading.is_none_or(|m| m.role != "primary"),
        leader,
        nodes,
        incident: latest_incident(history),
    }
}

/// The newest group of `history`'s decisions.
pub fn latest_incident(history: &[HistoryEntry]) -> Option<IncidentSummary> {
    let g = dash_dcs::group(history, DEFAULT_INCIDENT_GAP, None).pop()?;
    let total_steps = g.entries.len();
    Some(IncidentSummary {
        title: g.head.title,
        started_ms: g.started_ms,
        ended_ms: g.ended_ms,
        steps: g.entries[total_steps.saturating_sub(INCIDENT_STEPS)..].to_vec(),
        total_steps,
    })
}

/// A standby as the primary's `pg_stat_replication` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Standby {
    pub name: String,
    pub address: String,
    pub state: Option<String>,
    pub sync_state: Option<String>,
    pub lag_bytes: Option<u64>,
}

/// The cluster as the API's pool alone sees it: its hosts, the one that is
/// primary, and the primary's standbys when it could be asked.
pub fn from_pool(
    hosts: &[HostPort],
    primary: Option<&HostPort>,
    standbys: &[Standby],
) -> ClusterSnapshot {
    let card = |h: &HostPort, role: &str| NodeCard {
        name: h.to_string(),
        address: h.to_string(),
        role: role.into(),
        primary: Some(h) == primary,
        ..NodeCard::default()
    };
    let mut nodes: Vec<NodeCard> = primary.map(|p| card(p, "primary")).into_iter().collect();
    if primary.is_some() && !standbys.is_empty() {
        nodes.extend(standbys.iter().map(|s| NodeCard {
            name: s.name.clone(),
            address: s.address.clone(),
            role: "replica".into(),
            streaming: Some(s.state.as_deref() == Some("streaming")),
            sync: Some(matches!(s.sync_state.as_deref(), Some("sync" | "quorum"))),
            lag_bytes: s.lag_bytes,
            ..NodeCard::default()
        }));
    } else {
        let other = if primary.is_some() {
            "replica"
        } else {
            "unknown"
        };
        nodes.extend(
            hosts
                .iter()
                .filter(|h| Some(*h) != primary)
                .map(|h| card(h, other)),
        );
    }
    ClusterSnapshot {
        source: "pool",
        error: None,
        leader: primary.map(|p| p.to_string()),
        failover_in_progress: false,
        nodes,
        incident: None,
    }
}

#[cfg(test)]
mod tests {
    use dash_dcs::{Leader, MemberState, SyncState, Versioned};

    use super::*;

    fn member(name: &str, role: &str, lsn: u64, streaming: bool) -> MemberState {
        MemberState {
            name: name.into(),
            pg: format!("{name}:5432"),
            role: role.into(),
            lsn: Some(lsn),
            streaming,
            ..MemberState::default()
        }
    }

    fn view(leader: Option<&str>, members: Vec<MemberState>) -> ClusterView {
        ClusterView {
            leader: leader.map(|name| Leader {
                name: name.into(),
                lease: 1,
                mod_revision: 1,
            }),
            sync: Some(Versioned {
                value: SyncState {
                    leader: "n0".into(),
                    standbys: vec!["n1".into()],
                },
                mod_revision: 1,
            }),
            members,
            ..ClusterView::default()
        }
    }

    #[test]
    fn etcd_cards_say_who_leads_and_how_far_each_replica_is_behind() {
        let members = vec![
            member("n1", "replica", 900, true),
            member("n0", "primary", 1000, false),
            member("n2", "replica", 1200, false),
        ];
        let c = from_etcd(&view(Some("n0"), members), &[]);
        assert_eq!(c.leader.as_deref(), Some("n0"));
        assert!(!c.failover_in_progress);
        let names: Vec<&str> = c.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["n0", "n1", "n2"]);
        assert!(c.nodes[0].primary && c.nodes[0].lag_bytes.is_none());
        assert_eq!(c.nodes[1].lag_bytes, Some(100));
        assert_eq!(
            (c.nodes[1].sync, c.nodes[1].streaming),
            (Some(true), Some(true))
        );
        assert_eq!(c.nodes[2].lag_bytes, Some(0), "ahead reads as no lag");
        assert_eq!(c.nodes[2].sync, Some(false));
    }

    #[test]
    fn no_leader_key_or_a_leader_that_is_not_writable_is_a_failover_in_progress() {
        let members = || vec![member("n0", "fenced", 1000, false)];
        assert!(from_etcd(&view(None, members()), &[]).failover_in_progress);
        assert!(from_etcd(&view(Some("n0"), members()), &[]).failover_in_progress);
        assert!(from_etcd(&view(Some("gone"), vec![]), &[]).failover_in_progress);
    }

    #[test]
    fn the_latest_incident_keeps_its_newest_steps() {
        let history: Vec<HistoryEntry> = (0..20)
            .map(|i| HistoryEntry {
                at_ms: 1_000 + i,
                member: "n0".into(),
                decision: if i == 19 { "promote" } else { "sync" }.into(),
                detail: String::new(),
            })
            .collect();
        let i = latest_incident(&history).unwrap();
        assert_eq!((i.total_steps, i.steps.len()), (20, INCIDENT_STEPS));
        assert_eq!(i.steps.last().unwrap().decision, "promote");
        assert_eq!((i.started_ms, i.ended_ms), (1_000, 1_019));
        assert!(latest_incident(&[]).is_none());
    }

    #[test]
    fn pool_cards_show_the_primary_and_its_standbys_or_the_listed_hosts() {
        let hosts = vec![
            HostPort {
                host: "a".into(),
                port: 1,
            },
            HostPort {
                host: "b".into(),
                port: 2,
            },
        ];
        let down = from_pool(&hosts, None, &[]);
        assert!(down.nodes.iter().all(|n| n.role == "unknown" && !n.primary));
        assert_eq!(down.nodes.len(), 2);
        let up = from_pool(&hosts, Some(&hosts[1]), &[]);
        assert_eq!(up.leader.as_deref(), Some("b:2"));
        assert_eq!(
            (up.nodes[0].role.as_str(), up.nodes[0].primary),
            ("primary", true)
        );
        assert_eq!(up.nodes[1].role, "replica");
        let standby = Standby {
            name: "r1".into(),
            state: Some("streaming".into()),
            sync_state: Some("sync".into()),
            lag_bytes: Some(42),
            ..Standby::default()
        };
        let seen = from_pool(&hosts, Some(&hosts[0]), &[standby]);
        assert_eq!(seen.nodes.len(), 2);
        let r = &seen.nodes[1];
        assert_eq!(
            (r.streaming, r.sync, r.lag_bytes),
            (Some(true), Some(true), Some(42))
        );
    }
}
