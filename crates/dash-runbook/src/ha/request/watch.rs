//! Watching a filed request: progress lines on stderr while it stands, the
//! new leader's `/primary`, the acting agent's recorded reason when it
//! clears the request, and withdrawing it when the wait runs out.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use dash_dcs::{ClusterView, Dcs, HistoryEntry};

use super::{Watched, POLL, REASON_WAIT, REQUEST_GRACE};
use crate::ha::{primary_http, NODE_API_TIMEOUT};
use crate::output::duration;

pub(super) enum End {
    Done(String),
    Refused(String),
    NotDone(String),
}

/// Progress lines on stderr, each printed once.
pub(super) struct Progress {
    pub kind: &'static str,
    pub started: Instant,
    pub last: String,
}

impl Progress {
    pub fn say(&mut self, what: &str) {
        if self.last != what {
            eprintln!(
                "dashctl db {}: {:>5.1}s  {what}",
                self.kind,
                self.started.elapsed().as_secs_f64()
            );
            self.last = what.to_string();
        }
    }
}

pub(super) fn entry_key(e: &HistoryEntry) -> String {
    format!(
        "{}\u{1}{}\u{1}{}\u{1}{}",
        e.at_ms, e.member, e.decision, e.detail
    )
}

pub(super) async fn wait(
    dcs: &Dcs,
    progress: &mut Progress,
    w: &Watched<'_>,
    seen: &HashSet<String>,
    limit: Duration,
) -> End {
    let http = reqwest::Client::builder()
        .timeout(NODE_API_TIMEOUT)
        .connect_timeout(NODE_API_TIMEOUT)
        .build()
        .unwrap_or_default();
    let deadline = progress.started + limit;
    let mut filed_revision = None;
    let mut cleared_at: Option<Instant> = None;
    loop {
        tokio::time::sleep(POLL).await;
        match dcs.view().await {
            Err(e) => progress.say(&format!("etcd: {e}; still waiting")),
            Ok(v) => {
                let leader = v.leader.as_ref().map(|l| l.name.as_str());
                if let Some(l) = leader.filter(|l| Some(*l) != w.from) {
                    if let Some(end) = new_leader(&http, &v, l, progress).await {
                        return end;
                    }
                } else if let Some(r) = &v.request {
                    filed_revision.get_or_insert(r.mod_revision);
                    cleared_at = None;
                    progress.say(&w.waiting);
                } else if let (None, Some(from)) = (leader, w.from) {
                    progress.say(&format!(
                        "{from} released the leader key; waiting for {} to take it and promote",
                        w.to
                    ));
                } else {
                    let since = *cleared_at.get_or_insert_with(Instant::now);
                    progress.say(&format!(
                        "{}'s agent cleared the request; reading its reason",
                        w.actor
                    ));
                    if let Some(end) = cleared(dcs, w, seen, since).await {
                        return end;
                    }
                }
            }
        }
        if Instant::now() >= deadline {
            return timed_out(dcs, w, filed_revision, limit).await;
        }
    }
}

/// `l` holds the key: done once its node API answers `/primary` 200.
async fn new_leader(
    http: &reqwest::Client,
    v: &ClusterView,
    l: &str,
    progress: &mut Progress,
) -> Option<End> {
    let api = v.member(l).map(|m| m.api.trim_end_matches('/').to_string());
    let code = match &api {
        Some(api) => primary_http(http, api).await.ok(),
        None => None,
    };
    if code == Some(200) {
        progress.say(&format!(
            "{l} holds the leader key and answers /primary 200"
        ));
        return Some(End::Done(l.to_string()));
    }
    progress.say(&format!(
        "{l} holds the leader key; waiting for its node API to answer /primary 200"
    ));
    None
}

/// The request is gone and nothing changed: the actor's recorded reason.
async fn cleared(
    dcs: &Dcs,
    w: &Watched<'_>,
    seen: &HashSet<String>,
    since: Instant,
) -> Option<End> {
    let actor = w.actor;
    let new: Vec<HistoryEntry> = (dcs.history().await.unwrap_or_default())
        .into_iter()
        .filter(|e| e.member == actor && !seen.contains(&entry_key(e)))
        .collect();
    if let Some(e) = new.iter().rev().find(|e| e.decision == "refuse") {
        let why = e.detail.trim_start_matches("refuse the request: ");
        return Some(End::Refused(format!("{actor}'s agent refused: {why}")));
    }
    if since.elapsed() < REASON_WAIT {
        return None;
    }
    let now = match w.from {
        Some(from) => format!("{from} still holds the key"),
        None => "no member holds the key".into(),
    };
    Some(match new.last() {
        Some(e) => End::NotDone(format!(
            "{now}; {actor}'s agent recorded {}: {}",
            e.decision, e.detail
        )),
        None => End::Refused(format!("the request was cleared and {now}; no reason was recorded (an agent records a repeated refusal only once a minute, and etcd ends a request {} after the wait)", duration(REQUEST_GRACE))),
    })
}

/// After the wait: a request nobody acted on is withdrawn, so that it cannot
/// take effect later by surprise.
async fn timed_out(dcs: &Dcs, w: &Watched<'_>, filed: Option<i64>, limit: Duration) -> End {
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
        (l, Some(rev)) if l == w.from && filed.is_none_or(|f| f == rev) => {
            let withdrawn = dcs.clear_request(rev).await.unwrap_or(false);
            End::NotDone(format!(
                "{}'s agent did not act within {waited}{}",
                w.actor,
                match withdrawn {
                    true => "; the request was withdrawn, nothing changed",
                    false => "; the request could not be withdrawn and may still take effect until etcd ends it",
                }
            ))
        }
        (Some(l), _) if Some(l) != w.from => End::NotDone(format!(
            "{l} holds the leader key, but its node API did not answer /primary 200 within {waited}"
        )),
        (None, _) => End::NotDone(match w.from {
            Some(from) => {
                format!("{from} released the leader key, but no member took it within {waited}")
            }
            None => format!("no member took the leader key within {waited}"),
        }),
        _ => End::NotDone(format!("no new leader within {waited}")),
    }
}
