//! What `dashctl db switchover --etcd` and `dashctl db failover --etcd`
//! share: the report, filing the request in etcd (under a lease that ends
//! it even if this command is killed), and watching until another member
//! holds the key and answers `/primary` 200, an agent refuses (with the
//! reason it recorded), or the wait runs out (a request nobody acted on is
//! then withdrawn).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use dash_dcs::{Dcs, HistoryEntry, Request};
use serde::Serialize;

use super::render::list;
use super::{EtcdTarget, HaView, HistoryLine};
use crate::output::duration;
use crate::{exit, RunbookError};

mod watch;

use watch::{entry_key, wait, End, Progress};

/// How often etcd is read while waiting.
const POLL: Duration = Duration::from_millis(200);
/// How long after the request disappears the agent's history entry is awaited.
const REASON_WAIT: Duration = Duration::from_secs(3);
/// A request outlives the command's wait by this much at most (etcd ends it).
const REQUEST_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// `--dry-run`: checked, nothing filed.
    Planned,
    /// Another member leads and answers `/primary` 200.
    Done,
    /// An agent refused the request.
    Refused,
    /// No new writable leader within the wait (or the agent failed).
    NotDone,
}

/// The report of a request through etcd.
#[derive(Debug, Clone, Serialize)]
pub struct RequestReport {
    /// `switchover` or `failover`.
    pub kind: &'static str,
    pub cluster: String,
    /// The leader when the request was filed (none: the key was free).
    pub from: Option<String>,
    /// The member asked to take over.
    pub to: String,
    /// `--accept-data-loss`: `to` may lack acknowledged writes.
    pub accept_data_loss: bool,
    pub outcome: Outcome,
    pub steps: Vec<String>,
    pub new_leader: Option<String>,
    /// From filing the request to `/primary` 200 on the new leader.
    pub seconds: Option<f64>,
    pub message: String,
    /// HA decisions recorded while this command waited.
    pub history: Vec<HistoryLine>,
}

impl RequestReport {
    /// The report before anything is filed (what `--dry-run` prints).
    pub fn planned(kind: &'static str, cluster: &str, steps: Vec<String>) -> RequestReport {
        RequestReport {
            kind,
            cluster: cluster.to_string(),
            from: None,
            to: String::new(),
            accept_data_loss: false,
            outcome: Outcome::Planned,
            steps,
            new_leader: None,
            seconds: None,
            message: String::new(),
            history: Vec::new(),
        }
    }

    pub fn exit_code(&self) -> u8 {
        match self.outcome {
            Outcome::Planned | Outcome::Done => exit::OK,
            Outcome::Refused => exit::REFUSED,
            Outcome::NotDone => exit::CHECK_FAILED,
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        if self.outcome == Outcome::Planned {
            let kind = self.kind;
            out.push_str(&format!(
                "dashctl db {kind} --dry-run: nothing will be changed\n"
            ));
            for s in &self.steps {
                out.push_str(&format!("  {s}\n"));
            }
            return out;
        }
        for h in &self.history {
            out.push_str(&format!(
                "  {}  {}  {}: {}\n",
                h.at, h.member, h.decision, h.detail
            ));
        }
        out.push_str(&match self.outcome {
            Outcome::Done => format!("done: {}\n", self.message),
            Outcome::Refused => format!("refused: {}\n", self.message),
            _ => format!("not done: {}\n", self.message),
        });
        out
    }
}

/// `target` when it is one of `standbys`, else the first of them; or why
/// not (`kind`: `switchover`, `failover`).
pub fn pick_target(
    kind: &str,
    target: Option<&str>,
    standbys: &[String],
    leader: &str,
) -> Result<String, String> {
    match target {
        Some(t) if standbys.iter().any(|s| s == t) => Ok(t.to_string()),
        Some(t) => Err(format!(
            "{t} is not a recorded synchronous standby of {leader} (recorded: {})",
            list(standbys)
        )),
        None => standbys.first().cloned().ok_or_else(|| {
            format!("no synchronous standby is recorded for {leader}: a {kind} could lose acknowledged writes")
        }),
    }
}

/// Refuses while another request is pending.
pub fn none_pending(request: Option<&Request>) -> Result<(), String> {
    match request {
        Some(r) => Err(format!("a {r} is already pending")),
        None => Ok(()),
    }
}

/// etcd as a request command found it before filing anything.
pub(super) struct Before {
    pub dcs: Dcs,
    pub history: Vec<HistoryEntry>,
    /// The view from etcd (node APIs not asked yet).
    pub ha: HaView,
}

/// Connects and reads the cluster and its history.
pub(super) async fn read(etcd: &EtcdTarget) -> Result<Before, RunbookError> {
    let failed = |e| RunbookError::etcd(etcd, e);
    let dcs = etcd.connect().await.map_err(failed)?;
    let view = dcs.view().await.map_err(failed)?;
    let history = dcs.history().await.map_err(failed)?;
    let ha = HaView::from_etcd(etcd, &view, &history);
    Ok(Before { dcs, history, ha })
}

/// One request to file and watch.
pub(super) struct Watched<'a> {
    pub kind: &'static str,
    pub request: Request,
    /// How long to wait for a new leader.
    pub wait: Duration,
    /// The leader when filed.
    pub from: Option<&'a str>,
    pub to: &'a str,
    /// The member whose agent acts on (and clears or refuses) the request.
    pub actor: &'a str,
    /// What the command waits for while the request stands.
    pub waiting: String,
}

/// Files the request, waits, and fills in `report`.
pub(super) async fn file_and_watch(
    etcd: &EtcdTarget,
    before: &Before,
    w: &Watched<'_>,
    report: &mut RequestReport,
) -> Result<(), RunbookError> {
    let (dcs, request, limit) = (&before.dcs, &w.request, w.wait);
    let started = Instant::now();
    let filed = dcs.file_request(request, limit + REQUEST_GRACE).await;
    if !filed.map_err(|e| RunbookError::etcd(etcd, e))? {
        return Err(RunbookError::Refused(
            "another request was filed meanwhile; nothing was changed".into(),
        ));
    }
    let mut progress = Progress {
        kind: w.kind,
        started,
        last: String::new(),
    };
    progress.say(&format!("filed: {request}"));
    // The operator's step belongs in the incident's timeline too.
    let who = format!(
        "{}@{}",
        std::env::var("USER").unwrap_or_else(|_| "?".into()),
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map_or("?".into(), |h| h.trim().to_string())
    );
    let note = HistoryEntry {
        at_ms: chrono::Utc::now().timestamp_millis(),
        member: "operator".into(),
        decision: "request".into(),
        detail: format!("dashctl db {}: {request} (by {who})", w.kind),
    };
    if let Err(e) = dcs.record(&note).await {
        progress.say(&format!(
            "could not record the request in the HA history: {e}"
        ));
    }
    let seen: HashSet<String> = before.history.iter().map(entry_key).collect();
    let end = wait(dcs, &mut progress, w, &seen, limit).await;
    // What the agents recorded meanwhile (best effort, bounded).
    let after = dcs.history().await.unwrap_or_default();
    report.history = (after.iter())
        .filter(|e| !seen.contains(&entry_key(e)))
        .map(HistoryLine::from)
        .collect();
    let from = w.from.unwrap_or("(no leader)");
    match end {
        End::Done(leader) => {
            let took = started.elapsed();
            report.outcome = Outcome::Done;
            report.seconds = Some(took.as_secs_f64());
            report.message = format!(
                "{from} -> {leader} in {}; {leader}'s node API answers /primary 200{}",
                duration(took),
                match leader == w.to {
                    true => String::new(),
                    false => format!(" (asked for {})", w.to),
                }
            );
            report.new_leader = Some(leader);
        }
        End::Refused(why) => (report.outcome, report.message) = (Outcome::Refused, why),
        End::NotDone(why) => {
            let leader = dcs.view().await.ok().and_then(|v| v.leader).map(|l| l.name);
            report.outcome = Outcome::NotDone;
            report.message = why;
            report.new_leader = leader.filter(|l| Some(l.as_str()) != w.from);
        }
    }
    Ok(())
}
