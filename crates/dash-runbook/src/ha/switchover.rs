//! `dashctl db switchover --etcd`: runbook scenario 3, planned and
//! zero-loss, done by the node agents. This command checks the guard rails,
//! files `Request::Switchover` in etcd, and watches: the leader narrows the
//! sync set to the target, stops cleanly and releases the key; the target
//! takes it and promotes. Done when another member holds the key and its
//! node API answers `/primary` 200; an agent's refusal is reported with the
//! reason it recorded.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use dash_dcs::{Dcs, HistoryEntry, Request};
use serde::Serialize;

use super::render::list;
use super::{primary_http, EtcdTarget, HaView, HistoryLine, NODE_API_TIMEOUT};
use crate::output::duration;
use crate::{confirm, exit, RunbookError};

/// How often etcd is read while waiting.
const POLL: Duration = Duration::from_millis(200);
/// How long after the request disappears the agent's history entry is awaited.
const REASON_WAIT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone)]
pub struct SwitchoverOptions {
    /// The standby to hand over to (default: the recorded synchronous standby).
    pub target: Option<String>,
    pub dry_run: bool,
    pub yes: bool,
    /// How long to wait for a new leader whose `/primary` answers 200.
    pub wait: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// `--dry-run`: checked, nothing filed.
    Planned,
    /// Another member leads and answers `/primary` 200.
    Done,
    /// The leader's agent refused the request.
    Refused,
    /// No new writable leader within the wait (or the agent failed).
    NotDone,
}

#[derive(Debug, Clone, Serialize)]
pub struct SwitchoverReport {
    pub cluster: String,
    pub from: String,
    /// `--target`, or the recorded standby the leader hands over to.
    pub to: String,
    pub outcome: Outcome,
    pub steps: Vec<String>,
    pub new_leader: Option<String>,
    /// From filing the request to `/primary` 200 on the new leader.
    pub seconds: Option<f64>,
    pub message: String,
    /// HA decisions recorded while this command waited.
    pub history: Vec<HistoryLine>,
}

impl SwitchoverReport {
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
            out.push_str("dashctl db switchover --dry-run: nothing will be changed\n");
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

/// The guard rails: `(from, to)` when a switchover may be filed, else why not.
pub fn check(ha: &HaView, target: Option<&str>) -> Result<(String, String), String> {
    let Some(from) = ha.leader.clone() else {
        return Err("no member holds the leader key: there is no primary to switch over from (the agents promote a synchronous standby on their own)".into());
    };
    let standbys = ha.standbys();
    if standbys.is_empty() {
        return Err(format!(
            "no synchronous standby is recorded for {from}: a switchover could lose acknowledged writes"
        ));
    }
    let to = match target {
        Some(t) if standbys.iter().any(|s| s == t) => t.to_string(),
        Some(t) => {
            return Err(format!(
                "{t} is not a recorded synchronous standby of {from} (recorded: {})",
                list(standbys)
            ))
        }
        None => standbys[0].clone(),
    };
    match ha.member(&to) {
        Some(m) if m.role == "replica" && m.streaming => {}
        Some(m) => {
            return Err(format!(
                "{to} is not streaming from {from} (it reports role {}, streaming {})",
                m.role, m.streaming
            ))
        }
        None => {
            return Err(format!(
                "{to} has no member record: its agent is not running"
            ))
        }
    }
    if let Some(Request::Switchover { from: f, to: t }) = &ha.request {
        return Err(format!(
            "a switchover from {f} to {} is already pending",
            t.as_deref().unwrap_or("its standby")
        ));
    }
    Ok((from, to))
}

/// The steps, as `--dry-run` prints them.
pub fn plan(ha: &HaView, from: &str, to: &str, wait: Duration) -> Vec<String> {
    vec![
        format!("1. check: {from} holds the leader key, {to} is a recorded synchronous standby and streams, no request is pending (checked now: ok)"),
        format!("2. file in etcd (cluster {}): switchover from {from} to {to}", ha.cluster),
        format!("3. {from}'s agent narrows the synchronous standby set to {to}, stops PostgreSQL cleanly (its shutdown checkpoint reaches {to}) and releases the leader key"),
        format!("4. {to}'s agent takes the key and promotes; {from} rejoins as its replica"),
        format!("5. check: another member holds the key and its node API answers /primary 200, within {}; a refusal is reported with the agent's reason", duration(wait)),
    ]
}

/// Checks, files the request, and waits for the new leader.
pub async fn switchover(
    etcd: &EtcdTarget,
    opts: &SwitchoverOptions,
) -> Result<SwitchoverReport, RunbookError> {
    let failed = |e| RunbookError::etcd(etcd, e);
    let dcs = etcd.connect().await.map_err(failed)?;
    let view = dcs.view().await.map_err(failed)?;
    let before = dcs.history().await.map_err(failed)?;
    let ha = HaView::from_etcd(etcd, &view, &before);
    let (from, to) = check(&ha, opts.target.as_deref()).map_err(RunbookError::Refused)?;
    let mut report = SwitchoverReport {
        cluster: etcd.cluster.clone(),
        from: from.clone(),
        to: to.clone(),
        outcome: Outcome::Planned,
        steps: plan(&ha, &from, &to, opts.wait),
        new_leader: None,
        seconds: None,
        message: String::new(),
        history: Vec::new(),
    };
    if opts.dry_run {
        return Ok(report);
    }
    confirm::confirm(
        &format!("switch the primary over from {from} to {to}"),
        &format!(
            "Switch over cluster {} from {from} to {to}? {from} stops and {to} becomes the primary.",
            etcd.cluster
        ),
        opts.yes,
    )?;
    let request = Request::Switchover {
        from: from.clone(),
        to: opts.target.clone(),
    };
    let started = Instant::now();
    if !dcs.file_request(&request).await.map_err(failed)? {
        return Err(RunbookError::Refused(
            "another request was filed meanwhile; nothing was changed".into(),
        ));
    }
    let mut watch = Watch {
        started,
        last: String::new(),
    };
    watch.say(&format!("filed: switchover from {from} to {to}"));
    let seen: HashSet<String> = before.iter().map(entry_key).collect();
    let end = wait(&dcs, &mut watch, &from, &to, &seen, opts.wait).await;
    // What the agents recorded meanwhile (best effort, bounded).
    let after = dcs.history().await.unwrap_or_default();
    report.history = (after.iter())
        .filter(|e| !seen.contains(&entry_key(e)))
        .map(HistoryLine::from)
        .collect();
    match end {
        End::Done(leader) => {
            let took = started.elapsed();
            report.outcome = Outcome::Done;
            report.seconds = Some(took.as_secs_f64());
            report.message = format!(
                "{from} -> {leader} in {}; {leader}'s node API answers /primary 200{}",
                duration(took),
                match leader == to {
                    true => String::new(),
                    false => format!(" (asked for {to})"),
                }
            );
            report.new_leader = Some(leader);
        }
        End::Refused(why) => (report.outcome, report.message) = (Outcome::Refused, why),
        End::NotDone(why) => {
            let leader = dcs.view().await.ok().and_then(|v| v.leader).map(|l| l.name);
            report.outcome = Outcome::NotDone;
            report.message = why;
            report.new_leader = leader.filter(|l| *l != from);
        }
    }
    Ok(report)
}

enum End {
    Done(String),
    Refused(String),
    NotDone(String),
}

/// Progress lines on stderr, each printed once.
struct Watch {
    started: Instant,
    last: String,
}

impl Watch {
    fn say(&mut self, what: &str) {
        if self.last != what {
            eprintln!(
                "dashctl db switchover: {:>5.1}s  {what}",
                self.started.elapsed().as_secs_f64()
            );
            self.last = what.to_string();
        }
    }
}

fn entry_key(e: &HistoryEntry) -> String {
    format!(
        "{}\u{1}{}\u{1}{}\u{1}{}",
        e.at_ms, e.member, e.decision, e.detail
    )
}

async fn wait(
    dcs: &Dcs,
    watch: &mut Watch,
    from: &str,
    to: &str,
    seen: &HashSet<String>,
    limit: Duration,
) -> End {
    let http = reqwest::Client::builder()
        .timeout(NODE_API_TIMEOUT)
        .connect_timeout(NODE_API_TIMEOUT)
        .build()
        .unwrap_or_default();
    let deadline = watch.started + limit;
    let mut filed_revision = None;
    let mut cleared_at: Option<Instant> = None;
    loop {
        tokio::time::sleep(POLL).await;
        match dcs.view().await {
            Err(e) => watch.say(&format!("etcd: {e}; still waiting")),
            Ok(v) => match v.leader.as_ref().map(|l| l.name.as_str()) {
                Some(l) if l != from => {
                    let api = v.member(l).map(|m| m.api.trim_end_matches('/').to_string());
                    let code = match &api {
                        Some(api) => primary_http(&http, api).await.ok(),
                        None => None,
                    };
                    if code == Some(200) {
                        watch.say(&format!(
                            "{l} holds the leader key and answers /primary 200"
                        ));
                        return End::Done(l.to_string());
                    }
                    watch.say(&format!(
                        "{l} holds the leader key; waiting for its node API to answer /primary 200"
                    ));
                }
                None => watch.say(&format!(
                    "{from} released the leader key; waiting for {to} to take it and promote"
                )),
                Some(_) => match &v.request {
                    Some(r) => {
                        filed_revision.get_or_insert(r.mod_revision);
                        cleared_at = None;
                        watch.say(&format!("waiting for {from}'s agent: narrow the sync set to {to}, stop cleanly, release the key"));
                    }
                    None => {
                        let since = *cleared_at.get_or_insert_with(Instant::now);
                        watch.say(&format!(
                            "{from}'s agent cleared the request; reading its reason"
                        ));
                        let new: Vec<HistoryEntry> = (dcs.history().await.unwrap_or_default())
                            .into_iter()
                            .filter(|e| e.member == from && !seen.contains(&entry_key(e)))
                            .collect();
                        if let Some(e) = new.iter().rev().find(|e| e.decision == "refuse") {
                            let why = e.detail.trim_start_matches("refuse the request: ");
                            return End::Refused(format!("{from}'s agent refused: {why}"));
                        }
                        if since.elapsed() >= REASON_WAIT {
                            return match new.last() {
                                Some(e) => End::NotDone(format!(
                                    "{from} still holds the key; its agent recorded {}: {}",
                                    e.decision, e.detail
                                )),
                                None => End::Refused(format!("the request was cleared and {from} still leads; no reason was recorded (an agent records a repeated refusal only once a minute)")),
                            };
                        }
                    }
                },
            },
        }
        if Instant::now() >= deadline {
            return timed_out(dcs, from, filed_revision, limit).await;
        }
    }
}

/// After the wait: a request nobody acted on is withdrawn, so that it cannot
/// take effect later by surprise.
async fn timed_out(dcs: &Dcs, from: &str, filed: Option<i64>, limit: Duration) -> End {
    let view = dcs.view().await.ok();
    let leader = view
        .as_ref()
        .and_then(|v| v.leader.as_ref())
        .map(|l| l.name.clone());
    let pending = view
        .as_ref()
        .and_then(|v| v.request.as_ref())
        .map(|r| r.mod_revision);
    let waited = duration(limit);
    match (leader.as_deref(), pending) {
        (Some(l), Some(rev)) if l == from && filed.is_none_or(|f| f == rev) => {
            let withdrawn = dcs.clear_request(rev).await.unwrap_or(false);
            End::NotDone(format!(
                "{from}'s agent did not act within {waited}{}",
                match withdrawn {
                    true => "; the request was withdrawn, nothing changed",
                    false => "; the request could not be withdrawn and may still take effect",
                }
            ))
        }
        (Some(l), _) if l != from => End::NotDone(format!(
            "{l} holds the leader key, but its node API did not answer /primary 200 within {waited}"
        )),
        (None, _) => End::NotDone(format!(
            "{from} released the leader key, but no member took it within {waited}"
        )),
        _ => End::NotDone(format!("no new leader within {waited}")),
    }
}
