//! `dashctl db incidents`: the runbook's "Document incident timeline" step.
//! Every HA decision (detections, fences, releases, promotions, rejoins,
//! refusals) and every operator request is kept in etcd's history, which
//! survives the database being down; every maintenance toggle and pool
//! resize is kept in the database's admin log (`dash_control.admin_log`).
//! This merges both, groups them into incidents (runs of entries with no
//! quiet gap longer than `--gap` between them), names each by its most
//! telling decision, and prints the timeline relative to its start, ready
//! for the review. Either source may be unreachable; the report says so.

use std::time::Duration;

use dash_dcs::{HistoryEntry, IncidentGroup, IncidentHead};
use serde::Serialize;

use crate::ha::{EtcdTarget, HistoryLine};
use crate::output::duration;
use crate::{RunbookError, Target};

/// At most this many admin log entries are read.
const ADMIN_LOG_LIMIT: i64 = 1000;

/// One incident as the report shows it: an [`IncidentGroup`] with RFC 3339
/// times and its length in seconds.
#[derive(Debug, Clone, Serialize)]
pub struct Incident {
    #[serde(flatten)]
    pub head: IncidentHead,
    pub started: String,
    pub ended: String,
    pub seconds: f64,
    pub entries: Vec<HistoryLine>,
}

/// The report of `dashctl db incidents`.
#[derive(Debug, Clone, Serialize)]
pub struct IncidentsReport {
    pub cluster: String,
    /// Entries older than this (Unix ms) were left out (`--since`).
    pub since_ms: Option<i64>,
    pub incidents: Vec<Incident>,
    /// What was read, and what could not be.
    pub sources: Vec<String>,
    pub notes: Vec<String>,
}

/// `--since`: an RFC 3339 time, or a duration back from now (`24h`, `30m`,
/// plain seconds); Unix ms.
pub fn parse_since(v: &str) -> Result<i64, String> {
    let v = v.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(v) {
        return Ok(t.timestamp_millis());
    }
    let back = match v.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => humantime::parse_duration(v).map_err(|_| {
            format!("{v:?}: give a duration back from now (24h, 30m) or an RFC 3339 time")
        })?,
    };
    let back_ms = i64::try_from(back.as_millis()).unwrap_or(i64::MAX);
    Ok(chrono::Utc::now()
        .timestamp_millis()
        .saturating_sub(back_ms))
}

/// Groups `entries` (any order) into incidents separated by more than `gap`
/// of quiet; only entries at or after `since_ms` count ([`dash_dcs::group`]).
pub fn group(entries: &[HistoryEntry], gap: Duration, since_ms: Option<i64>) -> Vec<Incident> {
    (dash_dcs::group(entries, gap, since_ms).into_iter())
        .map(Incident::from)
        .collect()
}

impl From<IncidentGroup> for Incident {
    fn from(g: IncidentGroup) -> Incident {
        let line =
            |e: Option<&HistoryEntry>| e.map(|e| HistoryLine::from(e).at).unwrap_or_default();
        Incident {
            started: line(g.entries.first()),
            ended: line(g.entries.last()),
            seconds: (g.ended_ms - g.started_ms) as f64 / 1000.0,
            entries: g.entries.iter().map(HistoryLine::from).collect(),
            head: g.head,
        }
    }
}

/// Reads etcd's history and the database's admin log (whichever answer)
/// and groups them; an error only when neither could be read.
pub async fn gather(
    etcd: Option<&EtcdTarget>,
    target: &Target,
    gap: Duration,
    since_ms: Option<i64>,
) -> Result<IncidentsReport, RunbookError> {
    let (mut entries, mut sources, mut notes) = (Vec::new(), Vec::new(), Vec::new());
    let mut etcd_error = None;
    match etcd {
        Some(etcd) => match read_history(etcd).await {
            Ok(h) => {
                sources.push(format!("etcd HA history (cluster {})", etcd.cluster));
                entries.extend(h);
            }
            Err(e) => {
                notes.push(format!("etcd not read: {e}"));
                etcd_error = Some(e);
            }
        },
        None => notes.push("no etcd given or recorded: HA decisions not read".into()),
    }
    match admin_changes(target, since_ms).await {
        Ok(a) => {
            sources.push("the database's admin log (maintenance, pool size)".into());
            entries.extend(a);
        }
        Err(e) => notes.push(format!("the database's admin log not read: {e}")),
    }
    if sources.is_empty() {
        return Err(etcd_error.unwrap_or_else(|| {
            RunbookError::Invalid(format!("nothing to read: {}", notes.join("; ")))
        }));
    }
    Ok(IncidentsReport {
        cluster: etcd.map_or_else(String::new, |e| e.cluster.clone()),
        since_ms,
        incidents: group(&entries, gap, since_ms),
        sources,
        notes,
    })
}

async fn read_history(etcd: &EtcdTarget) -> Result<Vec<HistoryEntry>, RunbookError> {
    let failed = |e| RunbookError::etcd(etcd, e);
    let dcs = etcd.connect().await.map_err(failed)?;
    dcs.history().await.map_err(failed)
}

/// The admin log's changes as history entries (member `api`).
async fn admin_changes(
    target: &Target,
    since_ms: Option<i64>,
) -> Result<Vec<HistoryEntry>, String> {
    let mut settings = target.candidate_settings();
    settings.pool_size = 1;
    let db = dash_store::Db::new(
        settings,
        std::sync::Arc::new(dash_store::pool::NoopObserver),
    );
    let since = since_ms.and_then(chrono::DateTime::from_timestamp_millis);
    let log = db.admin_log(since, ADMIN_LOG_LIMIT).await;
    db.close();
    let log = log.map_err(|e| e.to_string())?;
    Ok(log
        .into_iter()
        .map(|e| HistoryEntry {
            at_ms: e.at.timestamp_millis(),
            member: "api".into(),
            decision: e.setting,
            detail: format!(
                "{} -> {} (by {})",
                e.old_value.as_deref().unwrap_or("off"),
                e.new_value.as_deref().unwrap_or("off"),
                e.changed_by
            ),
        })
        .collect())
}

impl IncidentsReport {
    pub fn render(&self) -> String {
        let mut out = format!(
            "Incidents, oldest first (from {})\n",
            self.sources.join(" and ")
        );
        for n in &self.notes {
            out.push_str(&format!("  note: {n}\n"));
        }
        if self.incidents.is_empty() {
            out.push_str("  none recorded in that window\n");
        }
        for (i, inc) in self.incidents.iter().enumerate() {
            out.push_str(&format!(
                "\n{}. {}  {} .. {} ({})\n",
                i + 1,
                inc.head.title,
                inc.started,
                inc.ended,
                duration(Duration::from_secs_f64(inc.seconds.max(0.0)))
            ));
            let start = inc.entries.first().map_or(0, |e| e.at_ms);
            for e in &inc.entries {
                out.push_str(&format!(
                    "  +{:>8}  {:<10} {:<10} {}\n",
                    format!("{:.3}s", (e.at_ms - start) as f64 / 1000.0),
                    e.member,
                    e.decision,
                    e.detail
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(at_ms: i64, member: &str, decision: &str) -> HistoryEntry {
        HistoryEntry {
            at_ms,
            member: member.into(),
            decision: decision.into(),
            detail: format!("{decision} by {member}"),
        }
    }

    #[test]
    fn quiet_gaps_split_incidents_and_each_is_named_by_what_happened() {
        let h = vec![
            entry(1_000, "n1", "bootstrap"),
            entry(1_020, "n1", "promote"),
            entry(3_000, "n0", "clone"),
            // ten minutes later: a crash
            entry(600_000, "n1", "release"),
            entry(600_030, "n0", "promote"),
            entry(605_000, "n1", "rejoin"),
            // and later still, a planned switchover back
            entry(2_000_000, "operator", "request"),
            entry(2_000_100, "n0", "demote"),
            entry(2_000_300, "n1", "promote"),
        ];
        let all = group(&h, Duration::from_secs(300), None);
        let titles: Vec<&str> = all.iter().map(|i| i.head.title.as_str()).collect();
        assert_eq!(
            titles,
            [
                "cluster created, n1 leads",
                "failover n1 -> n0",
                "switchover n0 -> n1"
            ]
        );
        // Without the quiet gaps, one incident names every hop.
        let one = group(&h[3..], Duration::from_secs(3600), None);
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].head.title, "failover n1 -> n0 -> n1");
        assert_eq!(all[1].seconds, 5.0);
        assert_eq!(all[1].entries.len(), 3);
        let since = group(&h, Duration::from_secs(300), Some(600_000));
        assert_eq!(since.len(), 2, "--since leaves the creation out");
    }

    #[test]
    fn since_takes_a_time_or_a_duration_back_and_refuses_the_rest() {
        assert_eq!(parse_since("2026-11-30T10:00:00Z"), Ok(1_796_032_800_000));
        let now = chrono::Utc::now().timestamp_millis();
        let day = parse_since("24h").unwrap();
        assert!((now - 86_400_000 - day).abs() < 5_000, "{day}");
        assert!(parse_since("yesterday").is_err());
        assert!(parse_since("999999999999h").is_ok(), "saturates, no panic");
    }

    #[test]
    fn a_refusal_and_a_leader_lost_without_a_successor_are_said_plainly() {
        let h = vec![entry(10, "n1", "fence"), entry(20, "n0", "refuse")];
        let all = group(&h, Duration::from_secs(60), None);
        assert_eq!(all.len(), 1);
        assert_eq!(
            all[0].head.title,
            "refused request: n1 lost the key, no new leader recorded"
        );
        let text = IncidentsReport {
            cluster: "dash".into(),
            since_ms: None,
            incidents: all,
            sources: vec!["etcd".into()],
            notes: vec![],
        }
        .render();
        assert!(text.contains("+  0.010s  n0"), "{text}");
    }
}
