//! `dashctl db diagnose`: reads the same signals as `status`, watches failing
//! nodes for a short re-probe window, samples the API's metrics twice, and
//! names the situation: healthy or one of the runbook's scenarios 1 to 4,
//! with its evidence and the exact `dashctl` command that fixes it. With
//! etcd configured, the HA view (leader key, sync set, agents) is evidence
//! too, and the nodes are etcd's members.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::amcheck::{amcheck, Amcheck};
use super::api_client::ApiClient;
use super::classify::classify;
use super::connections::idle_in_transaction;
use super::ha::{self, EtcdTarget};
use super::output::duration;
use super::pool_advice::{self, PoolAdvice, PoolInputs};
use super::probe::{probe, NodeRole};
use super::sequences;
use super::session;
use super::situation::{Finding, Signals, Situation};
use super::status::{self, StatusReport, Verdict};
use super::Target;
use crate::probe::Role;

/// How often failing nodes are re-probed inside the window.
const REPROBE_EVERY: Duration = Duration::from_millis(250);
/// Least time between the two metrics samples (counters must have a chance to move).
const METRICS_GAP: Duration = Duration::from_secs(1);

/// `dashctl db diagnose` options.
#[derive(Debug, Clone)]
pub struct DiagnoseOptions {
    /// How long a failing node is watched before it counts as down.
    pub window: Duration,
    /// Run amcheck on every index and table.
    pub deep: bool,
    /// Idle-in-transaction sessions older than this are evidence of scenario 4.
    pub idle_threshold: Duration,
    /// Sessions above this share of `max_connections` are evidence of scenario 4.
    pub connection_ratio: f64,
    /// The agents' etcd, when configured.
    pub etcd: Option<EtcdTarget>,
    /// How many API processes share the database (`--api-replicas`); else
    /// estimated from the API's sessions, and said so.
    pub api_replicas: Option<usize>,
}

impl Default for DiagnoseOptions {
    fn default() -> Self {
        DiagnoseOptions {
            window: Duration::from_secs(5),
            deep: false,
            idle_threshold: Duration::from_secs(300),
            connection_ratio: 0.8,
            etcd: None,
            api_replicas: None,
        }
    }
}

/// The verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Diagnosis {
    pub situation: Situation,
    pub exit_code: u8,
    pub title: String,
    pub evidence: Vec<String>,
    pub fix: Vec<String>,
    /// Lesser findings present at the same time.
    pub also: Vec<Finding>,
    /// Things diagnose could not check.
    pub notes: Vec<String>,
    pub observed_seconds: f64,
    pub amcheck: Option<Amcheck>,
    /// The post-incident pool review: a size with its arithmetic.
    pub pool_advice: Option<PoolAdvice>,
    pub status: StatusReport,
}

impl Diagnosis {
    pub fn render(&self) -> String {
        let mut out = format!(
            "Diagnosis: {} (exit {})\n",
            self.title.to_uppercase(),
            self.exit_code
        );
        if let (Verdict::NoPrimary, Some(hint)) = (self.status.verdict, &self.status.hint) {
            out.push_str(&format!("Hint: {hint}\n"));
        }
        if !self.evidence.is_empty() {
            out.push_str("\nEvidence:\n");
            for e in &self.evidence {
                out.push_str(&format!("  - {e}\n"));
            }
        }
        if !self.fix.is_empty() {
            out.push_str("\nFix:\n");
            for f in &self.fix {
                out.push_str(&format!("  $ {f}\n"));
            }
        }
        for f in &self.also {
            out.push_str(&format!("\nAlso seen: {}\n", f.situation.title()));
            for e in &f.evidence {
                out.push_str(&format!("  - {e}\n"));
            }
            for c in &f.fix {
                out.push_str(&format!("  $ {c}\n"));
            }
        }
        if let Some(a) = &self.pool_advice {
            out.push_str(&a.render());
        }
        if let Some(a) = &self.amcheck {
            out.push_str(&match &a.unavailable {
                Some(why) => format!("\namcheck: could not run: {why}\n"),
                None => format!(
                    "\namcheck: {} indexes and {} tables checked, {} problem(s)\n",
                    a.indexes_checked,
                    a.tables_checked,
                    a.failures.len()
                ),
            });
        }
        for n in &self.notes {
            out.push_str(&format!("note: {n}\n"));
        }
        out.push_str(&format!(
            "\nObserved for {}. The runbook: docs/runbooks/DATABASE_FAILOVER.md\n\n\
             Signals at the end of the observation (as `dashctl db status` shows them):\n",
            duration(Duration::from_secs_f64(self.observed_seconds))
        ));
        out.push_str(&self.status.render());
        out
    }
}

/// Observes the target and names the situation.
pub async fn diagnose(target: &Target, opts: &DiagnoseOptions) -> Diagnosis {
    let started = Instant::now();
    let (target, ha) = match &opts.etcd {
        Some(etcd) => {
            let (t, view) = ha::observe(target, etcd).await;
            (t, Some(view))
        }
        None => (target.clone(), None),
    };
    let target = &target;
    let first = status::gather(target).await;
    let mut notes = Vec::new();
    let mut last = first.nodes.clone();
    let mut recovered_after = BTreeMap::new();

    let mut pending: Vec<usize> = (0..last.len())
        .filter(|&i| !last[i].reachable() && last[i].recorded_role != Some(Role::Fenced))
        .collect();
    let deadline = started + opts.window;
    while !pending.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(REPROBE_EVERY).await;
        let probes = futures::future::join_all(
            pending
                .iter()
                .map(|&i| probe(&target.settings, &target.nodes[i])),
        )
        .await;
        for (&i, p) in pending.iter().zip(probes) {
            if p.reachable() {
                recovered_after.insert(p.name.clone(), started.elapsed());
            }
            last[i] = p;
        }
        pending.retain(|&i| !last[i].reachable());
    }

    let api = ApiClient::new(target.api.clone());
    let mut samples: Vec<_> = first.api.metrics.clone().into_iter().collect();
    if first.api.metrics.is_some() {
        samples.extend(pool_advice::sample(&api, started + METRICS_GAP).await);
    }
    let metrics_after = samples.get(1..).and_then(|s| s.last()).cloned();
    let metrics_gap = started.elapsed();
    if first.api.metrics.is_none() {
        notes.push(format!(
            "the API's metrics ({}) were not readable: pool signals not checked ({})",
            target.api.metrics_url,
            first.api.error.clone().unwrap_or_default()
        ));
    }

    let mut idle = Vec::new();
    let mut deep = None;
    let mut seqs = Vec::new();
    let mut slots = None;
    let primary = last
        .iter()
        .find(|n| n.reachable() && n.role == Some(NodeRole::Primary))
        .and_then(|p| target.nodes.iter().find(|n| n.name == p.name));
    match primary {
        Some(node) => {
            match session::connect(&target.settings, &node.address, &target.settings.dbname).await {
                Ok(client) => {
                    match idle_in_transaction(&client, opts.idle_threshold).await {
                        Ok(s) => idle = s,
                        Err(e) => notes.push(format!("idle-in-transaction sessions not read: {e}")),
                    }
                    match pool_advice::server_slots(&client).await {
                        Ok(s) => slots = Some(s),
                        Err(e) => notes.push(format!("connection slots not read: {e}")),
                    }
                    match sequences::read(&client).await {
                        Ok(s) => seqs = s,
                        Err(e) => notes.push(format!("sequences not checked: {e}")),
                    }
                    if opts.deep {
                        deep = Some(amcheck(&client).await);
                    }
                }
                Err(e) => notes.push(format!(
                    "could not open a session on the primary {}: {}",
                    node.name,
                    dash_core::error_chain(&e)
                )),
            }
        }
        None if opts.deep => notes.push("--deep: no writable primary to run amcheck on".into()),
        None => {}
    }

    let advice = pool_advice::advise(&PoolInputs {
        samples,
        observed: metrics_gap,
        server: slots,
        api_replicas: opts.api_replicas,
    });
    let signals = Signals {
        first: first.nodes.clone(),
        last: last.clone(),
        recovered_after,
        window: opts.window,
        metrics_before: first.api.metrics.clone(),
        metrics_after: metrics_after.clone(),
        metrics_gap,
        idle_in_transaction: idle,
        idle_threshold: opts.idle_threshold,
        connection_ratio: opts.connection_ratio,
        amcheck: deep.clone(),
        ha: ha.clone(),
        sequences: seqs,
        pool_advice: advice.clone(),
    };
    let mut findings = classify(&signals);
    let mut api_pool = first.api.clone();
    if let Some(m) = metrics_after {
        api_pool.metrics = Some(m);
    }
    let mut status = status::judge(target, last, api_pool);
    if let Some(view) = ha {
        status.attach_ha(view);
    }
    let observed_seconds = started.elapsed().as_secs_f64();
    if findings.is_empty() {
        return Diagnosis {
            situation: Situation::Healthy,
            exit_code: Situation::Healthy.exit_code(),
            title: Situation::Healthy.title().into(),
            evidence: vec![healthy_line(&status)],
            fix: Vec::new(),
            also: Vec::new(),
            notes,
            observed_seconds,
            amcheck: deep,
            pool_advice: advice,
            status,
        };
    }
    let main = findings.remove(0);
    Diagnosis {
        situation: main.situation,
        exit_code: main.situation.exit_code(),
        title: main.situation.title().into(),
        evidence: main.evidence,
        fix: main.fix,
        also: findings,
        notes,
        observed_seconds,
        amcheck: deep,
        pool_advice: advice,
        status,
    }
}

fn healthy_line(status: &StatusReport) -> String {
    let up = status.nodes.iter().filter(|n| n.reachable()).count();
    match status.primary() {
        Some(p) => format!(
            "primary {} answers; {up} of {} nodes answer; no checksum failures, no sequence behind its column, no pool pressure",
            p.name,
            status.nodes.len()
        ),
        None => format!("{up} of {} nodes answer", status.nodes.len()),
    }
}
