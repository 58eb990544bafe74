//! The HA view as text, and the problems it shows. Pure: unit-tested
//! without etcd or agents.

use std::time::Duration;

use super::{HaMember, HaView};
use crate::output::{bytes, duration, or_dash, Table};

/// Longest `last_action` shown in the table (JSON has it whole).
const ACTION_WIDTH: usize = 60;

impl HaView {
    /// The "HA (etcd)" section of `dashctl db status`.
    pub fn render(&self) -> String {
        let mut out = format!(
            "\nHA (etcd cluster {} at {})\n",
            self.cluster,
            self.endpoints.join(",")
        );
        if let Some(e) = &self.etcd_error {
            out.push_str(&format!("  etcd unreachable: {e}\n"));
            return out;
        }
        out.push_str(&format!(
            "  leader key: {}\n",
            self.leader
                .as_deref()
                .unwrap_or("(none: no member holds it)")
        ));
        out.push_str(&format!("  sync standbys: {}\n", self.sync_cell()));
        if let Some(r) = &self.request {
            out.push_str(&format!("  pending request: {r}\n"));
        }
        if let Some(h) = &self.halt {
            out.push_str(&format!(
                "  HALTED by {}: {}{}; every server stays stopped until it is lifted \
                 (a restore lifts it when done; `dashctl db restore --abort` lifts one left behind)\n",
                h.by,
                h.reason,
                h.restored.as_ref().map(|m| format!(" ({m} holds the restored cluster)")).unwrap_or_default()
            ));
        }
        if self.members.is_empty() {
            out.push_str("  no member records (no agent is running for this cluster)\n");
        } else {
            let mut t = Table::new(&[
                "MEMBER",
                "ROLE",
                "TL",
                "LSN",
                "STREAMING",
                "NODE API",
                "HOLDS KEY",
                "LEASE LEFT",
                "LAG",
                "LAST ACTION",
            ]);
            for m in &self.members {
                t.row(member_row(m));
            }
            out.push_str(&t.render());
            out.push_str("  (ROLE to STREAMING as each member last published it in etcd; the rest from its node API /status)\n");
            for m in &self.members {
                if let Some(e) = &m.node_api.error {
                    out.push_str(&format!("  {}: node API {}: {e}\n", m.name, m.api));
                }
            }
        }
        for a in &self.absent {
            out.push_str(&format!(
                "  {}: no member record (in the history; last: {} at {})\n",
                a.member, a.decision, a.at
            ));
        }
        out.push_str(&format!(
            "\nHA history (newest {} from etcd)\n",
            self.history.len()
        ));
        if let Some(e) = &self.history_error {
            out.push_str(&format!("  not read: {e}\n"));
        } else if self.history.is_empty() {
            out.push_str("  no decision recorded\n");
        } else {
            let mut t = Table::new(&["TIME", "MEMBER", "DECISION", "DETAIL"]);
            for h in &self.history {
                t.row(vec![
                    h.at.clone(),
                    h.member.clone(),
                    h.decision.clone(),
                    h.detail.clone(),
                ]);
            }
            out.push_str(&t.render());
        }
        out
    }

    fn sync_cell(&self) -> String {
        match (self.standbys(), &self.sync) {
            ([], Some(s)) if Some(&s.leader) != self.leader.as_ref() => format!(
                "none for the leader (the recorded set belongs to {}: {})",
                s.leader,
                list(&s.standbys)
            ),
            ([], _) => "none recorded: asynchronous, acknowledged writes are exposed".into(),
            (names, _) => names.join(", "),
        }
    }

    /// What is wrong, one sentence each; empty when the HA tier is sound.
    pub fn problems(&self) -> Vec<String> {
        let flags = format!(
            "etcd ({}, cluster {})",
            self.endpoints.join(","),
            self.cluster
        );
        if let Some(e) = &self.etcd_error {
            return vec![format!(
                "{flags} did not answer: {e}; leadership cannot be checked from here"
            )];
        }
        let mut out = Vec::new();
        if let Some(h) = &self.halt {
            out.push(format!(
                "the cluster is HALTED in {flags} by {}: {}; every server stays stopped until the halt is lifted",
                h.by, h.reason
            ));
        }
        match self.leader.as_deref() {
            None => out.push(format!(
                "no member holds the leader key in {flags}: the cluster has no primary"
            )),
            Some(l) => match self.member(l) {
                None => out.push(format!(
                    "the leader key names {l}, which has no member record (its agent is gone)"
                )),
                Some(m) => match (m.node_api.primary_http, &m.node_api.primary_error) {
                    (Some(200), _) => {}
                    (Some(code), _) => out.push(format!(
                        "the leader {l}'s node API ({}) answers /primary with {code}, not 200: it is not a writable primary holding the key",
                        m.api
                    )),
                    (None, e) => out.push(format!(
                        "the leader {l}'s node API ({}) does not answer /primary: {}",
                        m.api,
                        e.as_deref().unwrap_or("not asked")
                    )),
                },
            },
        }
        if self.leader.is_some() && self.standbys().is_empty() {
            out.push(
                "no synchronous standby is recorded: the primary runs asynchronously, so acknowledged writes are exposed to a failover"
                    .into(),
            );
        }
        let absent = |s: &str| self.absent.iter().any(|a| a.member == s);
        for s in (self.standbys().iter()).filter(|s| self.member(s).is_none() && !absent(s)) {
            out.push(format!(
                "{s} is recorded as synchronous standby but has no member record (its agent is gone)"
            ));
        }
        for a in (self.absent.iter()).filter(|a| Some(&a.member) != self.leader.as_ref()) {
            let sync = match self.standbys().contains(&a.member) {
                true => "; it is the recorded synchronous standby",
                false => "",
            };
            out.push(format!(
                "{} has no member record but is in the HA history (last: {} at {}): its agent is not running, or it left the cluster{sync}",
                a.member, a.decision, a.at
            ));
        }
        for m in self.members.iter().filter(|m| !m.leader) {
            if m.role == "replica" && !m.streaming {
                out.push(format!("{} is a replica that is not streaming", m.name));
            } else if m.role != "replica" {
                out.push(format!(
                    "{} reports role {}, not a streaming replica",
                    m.name, m.role
                ));
            }
            if let Some(e) = &m.node_api.error {
                out.push(format!(
                    "{}'s node API ({}) does not answer: {e}",
                    m.name, m.api
                ));
            }
        }
        out
    }
}

fn member_row(m: &HaMember) -> Vec<String> {
    let role = match (m.leader, m.sync_standby) {
        (true, _) => format!("{} (leader)", m.role),
        (false, true) => format!("{} (sync)", m.role),
        _ => m.role.clone(),
    };
    let api = &m.node_api;
    let api_cell = match (api.reachable, api.primary_http) {
        (false, _) => "unreachable".to_string(),
        (true, Some(code)) => format!("ok, /primary {code}"),
        (true, None) if m.leader => "ok, /primary no answer".into(),
        (true, None) => "ok".into(),
    };
    let s = api.status.as_ref();
    vec![
        m.name.clone(),
        role,
        or_dash(m.timeline),
        or_dash(m.lsn.clone()),
        match (m.leader, m.streaming) {
            (true, _) => "-".into(),
            (false, true) => "yes".into(),
            (false, false) => "no".into(),
        },
        api_cell,
        s.map_or("-".into(), |s| yes_no(s.holds_key)),
        s.and_then(|s| s.lease_remaining_ms)
            .map_or("-".into(), |ms| duration(Duration::from_millis(ms))),
        s.and_then(|s| s.lag_bytes).map_or("-".into(), bytes),
        s.map_or("-".into(), |s| shorten(&s.last_action, ACTION_WIDTH)),
    ]
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.into()
}

fn shorten(s: &str, width: usize) -> String {
    match s.char_indices().nth(width) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None if s.is_empty() => "-".into(),
        None => s.to_string(),
    }
}

/// `a, b` or `none`.
pub(crate) fn list(names: &[String]) -> String {
    match names {
        [] => "none".into(),
        _ => names.join(", "),
    }
}
