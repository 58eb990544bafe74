//! Grouping the HA history into incidents: runs of decisions with no quiet
//! gap longer than a limit between them, each named by its most telling
//! decision. Pure; `dashctl db incidents` and the dashboard both use it.

use std::time::Duration;

use serde::Serialize;

use crate::HistoryEntry;

/// What `dashctl db incidents` takes as quiet between two incidents by default.
pub const DEFAULT_INCIDENT_GAP: Duration = Duration::from_secs(300);

/// What an incident was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IncidentHead {
    /// What happened, in a few words (`failover node1 -> node0`).
    pub title: String,
    /// The leader before and after, when the entries say.
    pub leader_before: Option<String>,
    pub leader_after: Option<String>,
}

/// One incident: consecutive decisions with no long quiet between them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IncidentGroup {
    #[serde(flatten)]
    pub head: IncidentHead,
    /// Unix ms of the first and the last decision.
    pub started_ms: i64,
    pub ended_ms: i64,
    /// The decisions, oldest first.
    pub entries: Vec<HistoryEntry>,
}

/// Decisions that mean the leader changed or was lost, most telling first.
const KINDS: &[(&str, &str)] = &[
    ("refuse", "refused request"),
    ("fence", "failover"),
    ("release", "failover"),
    ("demote", "switchover"),
    ("restart", "restart in place"),
    ("bootstrap", "cluster created"),
    ("promote", "new leader"),
    ("request", "operator request"),
    ("maintenance", "maintenance"),
    ("pool_size", "pool resized"),
];

/// Groups `entries` (any order) into incidents separated by more than `gap`
/// of quiet, oldest first; only entries at or after `since_ms` count.
pub fn group(entries: &[HistoryEntry], gap: Duration, since_ms: Option<i64>) -> Vec<IncidentGroup> {
    let mut sorted: Vec<&HistoryEntry> = (entries.iter())
        .filter(|e| since_ms.is_none_or(|s| e.at_ms >= s))
        .collect();
    sorted.sort_by_key(|e| e.at_ms);
    let gap_ms = i64::try_from(gap.as_millis()).unwrap_or(i64::MAX);
    let mut runs: Vec<Vec<&HistoryEntry>> = Vec::new();
    for e in sorted {
        match runs.last_mut() {
            Some(run) if e.at_ms - run.last().map_or(e.at_ms, |l| l.at_ms) <= gap_ms => run.push(e),
            _ => runs.push(vec![e]),
        }
    }
    runs.into_iter().map(|run| incident(&run)).collect()
}

fn incident(run: &[&HistoryEntry]) -> IncidentGroup {
    let kind = (KINDS.iter())
        .find(|(d, _)| run.iter().any(|e| e.decision == *d))
        .map_or("HA activity", |(_, k)| k);
    // Who led before: the member that released, demoted or was fenced first;
    // then every member that took the key, in order (a failover and the
    // switchover back within one incident read `a -> b -> a`).
    let before = (run.iter())
        .find(|e| matches!(e.decision.as_str(), "release" | "demote" | "fence"))
        .map(|e| e.member.clone());
    let mut chain: Vec<String> = before.iter().cloned().collect();
    for e in run.iter().filter(|e| e.decision == "promote") {
        if chain.last() != Some(&e.member) {
            chain.push(e.member.clone());
        }
    }
    let after = (run.iter().rev())
        .find(|e| e.decision == "promote")
        .map(|e| e.member.clone());
    let title = match (&before, &after) {
        (Some(_), Some(_)) if chain.len() > 1 => format!("{kind} {}", chain.join(" -> ")),
        (_, Some(a)) if kind == "cluster created" => format!("{kind}, {a} leads"),
        (Some(b), None) => format!("{kind}: {b} lost the key, no new leader recorded"),
        _ => kind.to_string(),
    };
    IncidentGroup {
        head: IncidentHead {
            title,
            leader_before: before,
            leader_after: after,
        },
        started_ms: run.first().map_or(0, |e| e.at_ms),
        ended_ms: run.last().map_or(0, |e| e.at_ms),
        entries: run.iter().map(|e| (*e).clone()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(list: &[(i64, &str, &str)]) -> Vec<HistoryEntry> {
        (list.iter())
            .map(|(at_ms, member, decision)| HistoryEntry {
                at_ms: *at_ms,
                member: member.to_string(),
                decision: decision.to_string(),
                detail: String::new(),
            })
            .collect()
    }

    #[test]
    fn the_newest_incident_is_last_and_spans_its_entries() {
        let h = history(&[
            (600_030, "n0", "promote"),
            (1_000, "n1", "bootstrap"),
            (600_000, "n1", "release"),
        ]);
        let all = group(&h, DEFAULT_INCIDENT_GAP, None);
        assert_eq!(all.len(), 2);
        let last = all.last().unwrap();
        assert_eq!(last.head.title, "failover n1 -> n0");
        assert_eq!((last.started_ms, last.ended_ms), (600_000, 600_030));
        assert_eq!(last.head.leader_before.as_deref(), Some("n1"));
        assert_eq!(last.head.leader_after.as_deref(), Some("n0"));
        assert!(group(&[], DEFAULT_INCIDENT_GAP, None).is_empty());
        assert_eq!(group(&h, Duration::MAX, None).len(), 1, "no overflow");
    }
}
