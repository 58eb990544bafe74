//! Initial Assessment (`dashctl db status`): every node probed at once, plus the
//! API's pool as its metrics report it, and a verdict. With etcd configured,
//! also the HA tier ([`crate::ha`]): the nodes are then etcd's members.

use serde::Serialize;

use super::api_client::ApiClient;
use super::ha::{self, EtcdTarget, HaView};
use super::metrics::ApiMetrics;
use super::output::{bytes, or_dash, seconds, Table};
use super::probe::{probe, NodeProbe, NodeRole};
use super::{exit, Target};
use crate::probe::Role;

/// What `GET metrics` gave.
#[derive(Debug, Clone, Serialize)]
pub struct ApiPool {
    pub metrics_url: String,
    pub metrics: Option<ApiMetrics>,
    pub error: Option<String>,
}

/// The overall state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// A writable primary and every node answer.
    Healthy,
    /// A writable primary answers, but a node does not (or a replica is not streaming).
    Degraded,
    /// No writable primary answers.
    NoPrimary,
}

impl Verdict {
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Healthy => exit::OK,
            Verdict::Degraded => exit::CHECK_FAILED,
            Verdict::NoPrimary => exit::NO_PRIMARY,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub source: String,
    pub database: String,
    pub nodes: Vec<NodeProbe>,
    pub api: ApiPool,
    pub verdict: Verdict,
    /// Why the verdict is not healthy.
    pub problems: Vec<String>,
    /// The leader key, sync set, members and agents (etcd configured only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ha: Option<HaView>,
    /// What to configure, when nothing was and no primary answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl StatusReport {
    /// The node answering as a writable primary, if any.
    pub fn primary(&self) -> Option<&NodeProbe> {
        self.nodes
            .iter()
            .find(|n| n.reachable() && n.role == Some(NodeRole::Primary))
    }

    pub fn exit_code(&self) -> u8 {
        self.verdict.exit_code()
    }

    /// Adds the HA view: its problems count against the verdict (a healthy
    /// database without a leader key or a synchronous standby is degraded).
    pub fn attach_ha(&mut self, ha: HaView) {
        let problems = ha.problems();
        if self.verdict == Verdict::Healthy && !problems.is_empty() {
            self.verdict = Verdict::Degraded;
        }
        self.problems.extend(problems);
        self.ha = Some(ha);
    }

    /// The report as tables.
    pub fn render(&self) -> String {
        let mut out = format!("Database {} (from {})\n\n", self.database, self.source);
        let mut t = Table::new(&[
            "NODE",
            "ADDRESS",
            "TCP",
            "AUTH",
            "SQL",
            "ROLE",
            "TL",
            "LSN",
            "REPLICATION",
            "SESSIONS",
        ]);
        for n in &self.nodes {
            t.row(vec![
                n.name.clone(),
                n.address.clone(),
                n.tcp.cell(),
                n.auth.cell(),
                n.sql.cell(),
                role_cell(n),
                or_dash(n.timeline),
                or_dash(n.lsn.clone()),
                replication_cell(n),
                sessions_cell(n),
            ]);
        }
        out.push_str(&t.render());
        for n in &self.nodes {
            if let Some((reason, detail)) = n.failure() {
                out.push_str(&format!("  {}: {reason}: {detail}\n", n.name));
            }
            if let Some(e) = &n.error {
                out.push_str(&format!("  {}: {e}\n", n.name));
            }
        }
        let peers: Vec<_> = (self.nodes.iter())
            .flat_map(|n| n.replication.iter().map(move |r| (n, r)))
            .collect();
        if !peers.is_empty() {
            out.push_str("\nReplication (pg_stat_replication on the primary)\n");
            let mut t = Table::new(&[
                "PRIMARY",
                "STANDBY",
                "CLIENT",
                "STATE",
                "SYNC",
                "REPLAY LSN",
                "LAG",
                "REPLAY LAG",
            ]);
            for (n, r) in peers {
                t.row(vec![
                    n.name.clone(),
                    r.application_name.clone(),
                    r.client.clone(),
                    or_dash(r.state.clone()),
                    or_dash(r.sync_state.clone()),
                    or_dash(r.replay_lsn.clone()),
                    r.lag_bytes.map_or("-".into(), |b| bytes(b.max(0) as u64)),
                    r.replay_lag_seconds.map_or("-".into(), seconds),
                ]);
            }
            out.push_str(&t.render());
        }
        out.push_str(&format!("\nAPI pool ({})\n", self.api.metrics_url));
        match (&self.api.metrics, &self.api.error) {
            (Some(m), _) if m.has_pool() => out.push_str(&format!("  {}\n", m.summary())),
            (Some(_), _) => out.push_str("  no pg_pool_* metrics in the answer\n"),
            (None, Some(e)) => out.push_str(&format!("  unreachable: {e}\n")),
            (None, None) => out.push_str("  not read\n"),
        }
        if let Some(ha) = &self.ha {
            out.push_str(&ha.render());
        }
        out.push_str(&format!(
            "\nVerdict: {}\n",
            match self.verdict {
                Verdict::Healthy => "healthy",
                Verdict::Degraded => "degraded",
                Verdict::NoPrimary => "NO WRITABLE PRIMARY",
            }
        ));
        for p in &self.problems {
            out.push_str(&format!("  - {p}\n"));
        }
        if let (Verdict::NoPrimary, Some(hint)) = (self.verdict, &self.hint) {
            out.push_str(&format!("  Hint: {hint}\n"));
        }
        out
    }
}

fn role_cell(n: &NodeProbe) -> String {
    let now = match n.role {
        Some(NodeRole::Primary) => "primary",
        Some(NodeRole::Replica) => "replica",
        None => "-",
    };
    match n.recorded_role {
        Some(r) if role_name(r) != now => format!("{now} (recorded {})", role_name(r)),
        _ => now.to_string(),
    }
}

fn role_name(r: Role) -> &'static str {
    match r {
        Role::Primary => "primary",
        Role::Replica => "replica",
        Role::Fenced => "fenced",
    }
}

fn replication_cell(n: &NodeProbe) -> String {
    match n.role {
        Some(NodeRole::Primary) => {
            let streaming = (n.replication.iter())
                .filter(|r| r.state.as_deref() == Some("streaming"))
                .count();
            match (streaming, n.replication.len()) {
                (0, 0) => "no standby".into(),
                (s, total) => format!("{s} of {total} standby streaming"),
            }
        }
        Some(NodeRole::Replica) => match &n.wal_receiver {
            Some(w) => format!(
                "{} from {}, backlog {}",
                w.status,
                w.sender,
                n.replay_backlog_bytes
                    .map_or("-".into(), |b| bytes(b.max(0) as u64))
            ),
            None => "no WAL receiver".into(),
        },
        None => "-".into(),
    }
}

fn sessions_cell(n: &NodeProbe) -> String {
    if n.sessions.is_empty() {
        return "-".into();
    }
    let states: Vec<String> = n.sessions.iter().map(|(s, c)| format!("{s} {c}")).collect();
    format!(
        "{}/{} ({})",
        n.total_sessions(),
        or_dash(n.max_connections),
        states.join(", ")
    )
}

/// Probes every node at once and reads the API's metrics.
pub async fn gather(target: &Target) -> StatusReport {
    let probes = futures::future::join_all(target.nodes.iter().map(|n| probe(&target.settings, n)));
    let client = ApiClient::new(target.api.clone());
    let (nodes, metrics) = tokio::join!(probes, client.metrics());
    let api = match metrics {
        Ok(m) => ApiPool {
            metrics_url: target.api.metrics_url.clone(),
            metrics: Some(m),
            error: None,
        },
        Err(e) => ApiPool {
            metrics_url: target.api.metrics_url.clone(),
            metrics: None,
            error: Some(e.to_string()),
        },
    };
    judge(target, nodes, api)
}

/// [`gather`] with the HA view: the nodes probed are etcd's members (when
/// etcd names any), so this works from any host.
pub async fn gather_ha(target: &Target, etcd: &EtcdTarget) -> StatusReport {
    let (target, ha) = ha::observe(target, etcd).await;
    let mut report = gather(&target).await;
    report.attach_ha(ha);
    report
}

/// Builds the report and its verdict from the probes.
pub fn judge(target: &Target, nodes: Vec<NodeProbe>, api: ApiPool) -> StatusReport {
    let mut problems = Vec::new();
    let primaries: Vec<&NodeProbe> = (nodes.iter())
        .filter(|n| n.reachable() && n.role == Some(NodeRole::Primary))
        .collect();
    for n in &nodes {
        if n.recorded_role == Some(Role::Fenced) {
            continue;
        }
        if let Some((reason, detail)) = n.failure() {
            problems.push(format!(
                "{} ({}) does not answer: {reason}: {detail}",
                n.name, n.address
            ));
        }
        if n.role == Some(NodeRole::Replica) {
            let streaming = n
                .wal_receiver
                .as_ref()
                .is_some_and(|w| w.status == "streaming");
            if !streaming {
                problems.push(format!(
                    "replica {} is not streaming from a primary",
                    n.name
                ));
            }
        }
        if n.checksum_failures.unwrap_or(0) > 0 {
            problems.push(format!(
                "{} reports {} data checksum failure(s) in pg_stat_database",
                n.name,
                n.checksum_failures.unwrap_or(0)
            ));
        }
    }
    if primaries.len() > 1 {
        let names: Vec<&str> = primaries.iter().map(|n| n.name.as_str()).collect();
        problems.push(format!(
            "more than one writable primary: {} (split brain)",
            names.join(", ")
        ));
    }
    let verdict = match (primaries.is_empty(), problems.is_empty()) {
        (true, _) => Verdict::NoPrimary,
        (false, true) => Verdict::Healthy,
        (false, false) => Verdict::Degraded,
    };
    if verdict == Verdict::NoPrimary {
        problems.insert(0, "no node answers as a writable primary".into());
    }
    StatusReport {
        source: target.source.clone(),
        database: format!("{} as {}", target.settings.dbname, target.settings.user),
        nodes,
        api,
        verdict,
        problems,
        ha: None,
        hint: target.unconfigured_hint(),
    }
}
