//! Naming the situation from the signals `diagnose` gathered. Pure: every
//! rule is unit-tested without a database. The HA tier's rules (etcd
//! configured) are in `classify/ha.rs`.

use std::time::Duration;

use super::output::{duration, or_dash, seconds};
use super::probe::{NodeProbe, NodeRole};
use super::situation::{Finding, Signals, Situation};
use crate::probe::Role;

/// A node slower than this to connect and answer one query is a transient issue.
const SLOW_MILLIS: f64 = 1000.0;
/// The runbook's own wait before re-checking a transient issue.
const RUNBOOK_WAIT: &str = "sleep 30 && dashctl db status";
/// Re-checking a transient issue.
const RECHECK: &str = "dashctl db diagnose   # re-check; restart the database if it recurs";

/// Every situation present, most important first; empty means healthy.
pub fn classify(s: &Signals) -> Vec<Finding> {
    let mut out: Vec<Finding> = Vec::new();
    let primary = s
        .last
        .iter()
        .find(|n| n.reachable() && n.role == Some(NodeRole::Primary));
    let exhausted: Vec<&NodeProbe> = s.last.iter().filter(|n| too_many_clients(n)).collect();
    let down: Vec<&NodeProbe> = (s.last.iter())
        .filter(|n| active(n) && !n.reachable() && !too_many_clients(n))
        .collect();

    if primary.is_none() && exhausted.is_empty() {
        let mut f = no_primary(s, &down);
        if let Some(view) = &s.ha {
            ha::without_primary(&mut f, view);
        }
        out.push(f);
    }
    if let Some(f) = corruption(s) {
        out.push(f);
    }
    if let Some(f) = sequences::behind(s) {
        out.push(f);
    }
    if let Some(f) = exhaustion(s, primary, &exhausted) {
        out.push(f);
    }
    if let Some(p) = primary {
        if let Some(f) = transient(s, p, &down) {
            out.push(f);
        }
        if let Some(f) = s.ha.as_ref().and_then(ha::with_primary) {
            out.push(f);
        }
    }
    // Two findings of one situation (database down + a flapping node) become
    // one; a command two of them give (whatever its comment) is kept once.
    let mut merged: Vec<Finding> = Vec::new();
    for f in out {
        match merged.iter_mut().find(|m| m.situation == f.situation) {
            Some(m) => {
                m.evidence.extend(f.evidence);
                for c in f.fix {
                    if !m.fix.iter().any(|k| command(k) == command(&c)) {
                        m.fix.push(c);
                    }
                }
            }
            None => merged.push(f),
        }
    }
    if let Some(view) = &s.ha {
        for f in &mut merged {
            ha::name_etcd(f, view);
        }
    }
    merged.sort_by_key(|f| f.situation.rank());
    merged
}

/// A fix line without its `# comment`.
fn command(line: &str) -> &str {
    line.split_once('#').map_or(line, |(c, _)| c).trim()
}

fn active(n: &NodeProbe) -> bool {
    n.recorded_role != Some(Role::Fenced)
}

fn too_many_clients(n: &NodeProbe) -> bool {
    n.failure()
        .is_some_and(|(r, _)| r == "too_many_connections")
}

fn describe_down(n: &NodeProbe, window: Duration) -> String {
    let (reason, detail) = n.failure().unwrap_or(("no answer", ""));
    let recorded = match n.recorded_role {
        Some(Role::Primary) => ", recorded primary",
        Some(Role::Replica) => ", recorded replica",
        _ => "",
    };
    format!(
        "{} ({}{recorded}): {reason} throughout the {} re-probe window ({detail})",
        n.name,
        n.address,
        duration(window)
    )
}

/// A duration as a command-line flag: `300s`, `1500ms`.
pub fn flag_duration(d: Duration) -> String {
    match d.subsec_millis() {
        0 => format!("{}s", d.as_secs()),
        _ => format!("{}ms", d.as_millis()),
    }
}

/// `16/B374D848` as a number.
pub fn parse_lsn(lsn: &str) -> Option<u64> {
    let (hi, lo) = lsn.split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

/// No writable primary: scenario 3 when a replica can take over, else the
/// database is down (scenario 1's restart).
fn no_primary(s: &Signals, down: &[&NodeProbe]) -> Finding {
    let mut evidence = vec!["no node answers as a writable primary".to_string()];
    evidence.extend(down.iter().map(|n| describe_down(n, s.window)));
    let replicas: Vec<&NodeProbe> = (s.last.iter())
        .filter(|n| active(n) && n.reachable() && n.role == Some(NodeRole::Replica))
        .collect();
    let best = replicas
        .iter()
        .max_by_key(|n| n.lsn.as_deref().and_then(parse_lsn).unwrap_or(0));
    match best {
        Some(best) => {
            for r in &replicas {
                evidence.push(format!(
                    "{} ({}) is a replica at LSN {}, WAL receiver {}",
                    r.name,
                    r.address,
                    or_dash(r.lsn.clone()),
                    r.wal_receiver
                        .as_ref()
                        .map_or("absent".to_string(), |w| w.status.clone())
                ));
            }
            Finding {
                situation: Situation::PrimaryLost,
                evidence,
                fix: vec![
                    format!(
                        "dashctl db failover --etcd URLS   # the node agents' etcd: the old primary's agent fences it and the recorded synchronous standby takes over ({} is the most advanced replica here)",
                        best.name
                    ),
                    "dashctl verify".into(),
                ],
            }
        }
        None => {
            evidence.push("no replica answers that could be promoted".into());
            Finding {
                situation: Situation::TransientConnection,
                evidence,
                fix: vec![
                    "kubectl rollout restart statefulset/postgres -n dash   # or restart `dashctl up`; the database is down".into(),
                    RUNBOOK_WAIT.into(),
                    "dashctl verify".into(),
                ],
            }
        }
    }
}

/// Checksum failures in `pg_stat_database`, or amcheck failures.
fn corruption(s: &Signals) -> Option<Finding> {
    let mut evidence = Vec::new();
    for n in s
        .last
        .iter()
        .filter(|n| n.checksum_failures.unwrap_or(0) > 0)
    {
        evidence.push(format!(
            "{} ({}): pg_stat_database reports {} data checksum failure(s), the last at {}",
            n.name,
            n.address,
            n.checksum_failures.unwrap_or(0),
            or_dash(n.checksum_last_failure.clone())
        ));
    }
    if let Some(a) = &s.amcheck {
        evidence.extend(a.failures.iter().map(|f| format!("amcheck: {f}")));
    }
    (!evidence.is_empty()).then(|| Finding {
        situation: Situation::Corruption,
        evidence,
        fix: vec![
            "dashctl db backups   # pick the newest dump whose VERIFIED column says ok".into(),
            "dashctl db verify-backup FILE".into(),
            "dashctl db restore FILE --stop-writes".into(),
            "dashctl verify".into(),
        ],
    })
}

/// Clients waiting for the pool, acquire timeouts rising, old idle-in-transaction
/// sessions, or sessions near `max_connections`.
fn exhaustion(
    s: &Signals,
    primary: Option<&NodeProbe>,
    exhausted: &[&NodeProbe],
) -> Option<Finding> {
    let mut evidence = Vec::new();
    let mut grow_pool = false;
    // Without a primary, waiting callers and acquire timeouts are symptoms of
    // the outage, not of exhaustion.
    let m = match primary {
        Some(_) => s.metrics_after.as_ref().or(s.metrics_before.as_ref()),
        None => None,
    };
    let (before, after) = match primary {
        Some(_) => (&s.metrics_before, &s.metrics_after),
        None => (&None, &None),
    };
    let waiting = [before, after]
        .iter()
        .filter_map(|m| m.as_ref()?.pool_waiting)
        .fold(0.0, f64::max);
    if waiting > 0.0 {
        grow_pool = true;
        evidence.push(format!(
            "the API has {waiting} caller(s) waiting for a pool connection (pg_pool_waiting); in use {} of {}",
            or_dash(m.and_then(|m| m.pool_in_use)),
            or_dash(m.and_then(|m| m.pool_max_size)),
        ));
    }
    let timeouts =
        |m: &Option<super::metrics::ApiMetrics>| m.as_ref().and_then(|m| m.acquire_timeouts);
    if let (Some(a), Some(b)) = (timeouts(before), timeouts(after)) {
        if b > a {
            grow_pool = true;
            evidence.push(format!(
                "pg_pool_acquire_timeouts_total rose by {} in {}",
                b - a,
                duration(s.metrics_gap)
            ));
        }
    }
    if !s.idle_in_transaction.is_empty() {
        let shown: Vec<String> = (s.idle_in_transaction.iter().take(5))
            .map(|x| {
                format!(
                    "pid {} ({}, {}) {}",
                    x.pid,
                    if x.application.is_empty() {
                        "-"
                    } else {
                        &x.application
                    },
                    or_dash(x.user.clone()),
                    x.query_seconds.map_or("-".into(), seconds)
                )
            })
            .collect();
        evidence.push(format!(
            "{} session(s) idle in transaction for over {}: {}",
            s.idle_in_transaction.len(),
            duration(s.idle_threshold),
            shown.join("; ")
        ));
    }
    let mut near_limit = false;
    if let Some(p) = primary {
        if let Some(max) = p.max_connections.filter(|m| *m > 0) {
            let used = p.total_sessions();
            if used as f64 > s.connection_ratio * max as f64 {
                near_limit = true;
                evidence.push(format!(
                    "{} has {used} of max_connections {max} sessions ({:.0}%, over {:.0}%)",
                    p.name,
                    100.0 * used as f64 / max as f64,
                    100.0 * s.connection_ratio
                ));
            }
        }
    }
    for n in exhausted {
        near_limit = true;
        evidence.push(format!(
            "{} ({}) refuses new connections: {}",
            n.name,
            n.address,
            n.failure().map_or("", |f| f.1)
        ));
    }
    if evidence.is_empty() {
        return None;
    }
    let mut fix = vec![
        "dashctl db connections   # who holds the connections".to_string(),
        format!(
            "dashctl db terminate --idle-in-transaction --older-than {}",
            flag_duration(s.idle_threshold)
        ),
    ];
    match &s.pool_advice {
        // The advice weighed the server's limit: its command, when it grows.
        Some(a) if grow_pool => fix.extend(a.command.clone().filter(|_| a.recommended > a.current)),
        None if grow_pool && !near_limit => {
            let current = m.and_then(|m| m.pool_max_size).unwrap_or(20.0) as usize;
            let size = (current * 2).max(current + 5).min(1000);
            fix.push(format!(
                "dashctl db pool --size {size}   # live, no restart"
            ));
        }
        _ => {}
    }
    Some(Finding {
        situation: Situation::PoolExhaustion,
        evidence,
        fix,
    })
}

/// A node that failed and came back, a node still down while the primary
/// answers, or the API seeing connection errors while the database is up.
fn transient(s: &Signals, primary: &NodeProbe, down: &[&NodeProbe]) -> Option<Finding> {
    let mut evidence = Vec::new();
    let mut restart = Vec::new();
    for n in s
        .first
        .iter()
        .filter(|n| !n.reachable() && !too_many_clients(n))
    {
        if let Some(after) = s.recovered_after.get(&n.name) {
            let (reason, _) = n.failure().unwrap_or(("no answer", ""));
            evidence.push(format!(
                "{} ({}) {reason} at first, answered again after {}",
                n.name,
                n.address,
                duration(*after)
            ));
        }
    }
    for n in s
        .first
        .iter()
        .filter(|n| n.reachable() && n.answer_millis() > SLOW_MILLIS)
    {
        evidence.push(format!(
            "{} ({}) answered, but slowly: {:.0}ms for TCP, authentication and one query",
            n.name,
            n.address,
            n.answer_millis()
        ));
    }
    for n in down {
        evidence.push(describe_down(n, s.window));
        restart.push(n.name.clone());
    }
    let errors =
        |m: &Option<super::metrics::ApiMetrics>| m.as_ref().map(|m| m.connection_errors_total());
    if let (Some(a), Some(b)) = (errors(&s.metrics_before), errors(&s.metrics_after)) {
        if b > a {
            evidence.push(format!(
                "the API's pg_connection_errors_total rose by {} in {} while {} answers",
                b - a,
                duration(s.metrics_gap),
                primary.name
            ));
        }
    }
    if s.metrics_after.as_ref().and_then(|m| m.pg_up) == Some(0.0) {
        evidence.push(format!(
            "the API reports pg_up 0 while {} answers as primary",
            primary.name
        ));
    }
    if evidence.is_empty() {
        return None;
    }
    let mut fix = Vec::new();
    if !restart.is_empty() {
        fix.push(format!(
            "kubectl rollout restart statefulset/postgres-replica -n dash   # {} still down: restart it",
            restart.join(", ")
        ));
    }
    fix.push(RUNBOOK_WAIT.into());
    fix.push(RECHECK.into());
    Some(Finding {
        situation: Situation::TransientConnection,
        evidence,
        fix,
    })
}

mod ha;
mod sequences;
#[cfg(test)]
mod tests;
