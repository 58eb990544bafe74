//! One round of `dashctl chaos --hosts`: wait until the cluster is highly
//! available, start the writers, inject the fault, wait for writes to
//! resume, undo the fault, wait for HA again, then check every
//! acknowledged write against the final primary.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dash_dcs::LeaderChange;

use super::bed::Bed;
use super::faults::{inject, undo, HostScenario};
use super::writers::{check, longest_gap, unix_ms, LocalWriter, Writers, TABLE_SQL};
use super::{HostRound, HostsError, HostsOptions};

/// How long a round waits for the cluster to be highly available.
pub const HA_LIMIT: Duration = Duration::from_secs(90);

/// A node's `/status`, as the agent serves it.
pub use dash_node::Status as NodeStatus;

/// Every member's `/status` (unreachable members are left out).
pub async fn statuses(bed: &Bed, http: &reqwest::Client) -> Vec<(usize, NodeStatus)> {
    let mut out = Vec::new();
    for i in 0..bed.opts.members {
        let url = format!("{}/status", bed.node_api(i));
        if let Ok(resp) = http.get(&url).send().await {
            if let Ok(st) = resp.json::<NodeStatus>().await {
                out.push((i, st));
            }
        }
    }
    out
}

/// Waits until one member leads with a streaming replica (and, in
/// synchronous mode, a recorded synchronous standby). Returns the leader's
/// and a standby's index and when that was first seen.
pub async fn wait_ha(
    bed: &Bed,
    http: &reqwest::Client,
    limit: Duration,
) -> Option<(usize, usize, Instant)> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let (members, all): (Vec<usize>, Vec<NodeStatus>) =
            statuses(bed, http).await.into_iter().unzip();
        if let Ok((l, s)) = NodeStatus::ha_pair(&all, bed.opts.synchronous) {
            return Some((members[l], members[s], Instant::now()));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// Waits until etcd's own leader runs where the agents keep it (off the
/// primary's host and its synchronous standbys' hosts, when another host is
/// left) and has kept its term for `settle`. A new etcd leader extends every
/// lease by its election timeout (1 s): a fault just after a change, such as
/// the agent's own move of etcd's leader after the last failover, measures
/// that extension on top of the failover (key freed up to 4.3 s after the
/// fault instead of at most 3.5 s).
async fn wait_etcd_settled(
    bed: &Bed,
    http: &reqwest::Client,
    settle: Duration,
    limit: Duration,
) -> Result<(), String> {
    let dcs = dash_dcs::Dcs::connect(&bed.etcd_endpoints(), "dash", Duration::from_secs(2))
        .await
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + limit;
    let mut seen: Option<(u64, Instant)> = None;
    while Instant::now() < deadline {
        let all = statuses(bed, http).await;
        let mut avoid = Vec::new();
        if let Some((p, ls)) = all.iter().find(|(_, s)| s.role == "primary" && s.holds_key) {
            avoid.push(bed.addr(*p).to_string());
            for name in &ls.sync_standbys {
                if let Some(i) = bed.index_of(name) {
                    avoid.push(bed.addr(i).to_string());
                }
            }
        }
        if let Ok((host, term)) = dcs.etcd_leader().await {
            let since = match seen {
                Some((t, at)) if t == term => at,
                _ => Instant::now(),
            };
            seen = Some((term, since));
            let placed = avoid.len() >= bed.opts.members || !avoid.contains(&host);
            if placed && since.elapsed() >= settle {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("etcd's leader did not settle within {limit:?}"))
}

/// When member `i` streams as a replica of `leader` (within `limit`).
async fn rejoined(
    bed: &Bed,
    http: &reqwest::Client,
    i: usize,
    leader: &str,
    limit: Duration,
) -> Option<Instant> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let st = statuses(bed, http).await;
        let back = st.iter().any(|(j, s)| {
            *j == i && s.role == "replica" && s.streaming && s.leader.as_deref() == Some(leader)
        });
        if back {
            return Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// The promotions etcd's history records after `since_ms`: (member, ms).
async fn promotions(bed: &Bed, since_ms: i64) -> Vec<(String, i64)> {
    let Ok(dcs) =
        dash_dcs::Dcs::connect(&bed.etcd_endpoints(), "dash", Duration::from_secs(2)).await
    else {
        return Vec::new();
    };
    let history = dcs.history().await.unwrap_or_default();
    history
        .into_iter()
        .filter(|e| e.decision == "promote" && e.at_ms >= since_ms && !e.detail.contains("failed"))
        .map(|e| (e.member, e.at_ms))
        .collect()
}

/// When the leader key changed, as heard by an etcd watch.
struct KeyLog {
    changes: Arc<Mutex<Vec<(Instant, LeaderChange)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl KeyLog {
    /// Watches from the etcd members off host `p`, which the fault may take down.
    async fn start(bed: &Bed, p: usize) -> Option<KeyLog> {
        let endpoints: Vec<String> = (0..bed.opts.members)
            .filter(|i| *i != p)
            .map(|i| format!("http://{}:{}", bed.addr(i), super::bed::ETCD_CLIENT_PORT))
            .collect();
        let dcs = dash_dcs::Dcs::connect(&endpoints, "dash", Duration::from_secs(2))
            .await
            .ok()?;
        let mut rx = dcs.watch_leader();
        let changes = Arc::new(Mutex::new(Vec::new()));
        let log = changes.clone();
        let task = tokio::spawn(async move {
            while let Some(c) = rx.recv().await {
                log.lock().expect("key log").push((Instant::now(), c));
            }
        });
        Some(KeyLog { changes, task })
    }

    /// When the key was first freed after `since`, and then taken again.
    fn freed_and_taken(&self, since: Instant) -> (Option<Instant>, Option<Instant>) {
        let changes = self.changes.lock().expect("key log");
        let freed = changes
            .iter()
            .find(|(t, c)| *t >= since && *c == LeaderChange::Freed)
            .map(|(t, _)| *t);
        let taken = freed.and_then(|f| {
            changes
                .iter()
                .find(|(t, c)| *t >= f && matches!(c, LeaderChange::Taken(_)))
                .map(|(t, _)| *t)
        });
        (freed, taken)
    }
}

impl Drop for KeyLog {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Signed milliseconds from `fault_at` to `t`.
fn after(fault_at: Instant, t: Instant) -> f64 {
    match t.checked_duration_since(fault_at) {
        Some(d) => d.as_secs_f64() * 1000.0,
        None => -((fault_at - t).as_secs_f64() * 1000.0),
    }
}

/// Runs round `n`.
pub async fn round(
    n: u32,
    bed: &Bed,
    opts: &HostsOptions,
    http: &reqwest::Client,
) -> Result<HostRound, HostsError> {
    let fail = |reason: String| HostsError::Round { round: n, reason };
    let not_ha = || {
        fail(format!(
            "the cluster was not highly available within {HA_LIMIT:?}"
        ))
    };
    wait_ha(bed, http, HA_LIMIT).await.ok_or_else(not_ha)?;
    if opts.scenario != HostScenario::Soak {
        wait_etcd_settled(bed, http, opts.ttl, HA_LIMIT)
            .await
            .map_err(fail)?;
    }
    let (p, s, _) = wait_ha(bed, http, HA_LIMIT).await.ok_or_else(not_ha)?;
    let hosts = bed.pg_hosts();
    {
        let db = dash_store::Db::new(
            super::writers::settings(&hosts, bed.password(), 1),
            std::sync::Arc::new(dash_store::pool::NoopObserver),
        );
        let mut conn = db.conn().await.map_err(|e| fail(format!("connect: {e}")))?;
        conn.batch_execute(TABLE_SQL)
            .await
            .map_err(|e| fail(format!("create the table: {e}")))?;
    }
    let key_log = KeyLog::start(bed, p).await;
    let writers = Writers::start(&hosts, bed.password(), opts.concurrency, false);
    let local = if opts.scenario.has_local_writer() {
        LocalWriter::start(
            bed.host(p),
            format!("{}:{}", bed.addr(p), super::bed::PG_PORT),
            bed.password().to_string(),
        )
    } else {
        None
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let fault_wall = unix_ms();
    let fault_at = Instant::now();
    let pending = inject(bed, opts.scenario, p, s).await?;
    // Writes resume when writes sent once the fault is in place are
    // acknowledged: a dying server may still acknowledge writes that were
    // in flight (an agent's PostgreSQL, killed with it, has backends that
    // outlive the postmaster for some milliseconds).
    let injected_at = Instant::now();
    writers.count_fresh();
    let hold = match opts.scenario {
        HostScenario::Partition | HostScenario::EtcdCut | HostScenario::AgentFreeze => {
            // Long enough for the lease to run out and a standby to take over.
            opts.ttl * 2 + Duration::from_secs(2)
        }
        HostScenario::EtcdQuorumLost => opts.ttl * 2,
        HostScenario::Soak => opts.duration,
        _ => Duration::ZERO,
    };
    let quorum_lost = opts.scenario == HostScenario::EtcdQuorumLost;
    let mut pending = Some(pending);
    if quorum_lost {
        tokio::time::sleep(hold).await;
        undo(bed, pending.take().expect("one undo"))?;
    }
    let resume_deadline = Instant::now() + Duration::from_secs(60);
    while writers.fresh() < opts.concurrency as u64 {
        if Instant::now() > resume_deadline {
            let _ = writers.finish().await;
            if let Some(l) = local {
                let _ = l.finish().await;
            }
            if let Some(u) = pending.take() {
                let _ = undo(bed, u);
            }
            return Err(fail(
                "writes did not resume within 60 s of the fault".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let since = fault_at.elapsed();
    if since < hold {
        tokio::time::sleep(hold - since).await;
    }
    if let Some(u) = pending.take() {
        undo(bed, u)?;
    }
    let ha = wait_ha(bed, http, HA_LIMIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut acks = writers.finish().await;
    if let Some(l) = local {
        acks.extend(l.finish().await);
    }
    let (new_p, _, _) =
        ha.ok_or_else(|| fail("the cluster did not become highly available again".into()))?;
    // The old primary comes back as a streaming replica by itself.
    let old_rejoined_ms = if new_p != p {
        rejoined(bed, http, p, &Bed::member_name(new_p), HA_LIMIT)
            .await
            .map(|t| (t - fault_at).as_secs_f64() * 1000.0)
    } else {
        None
    };
    let new_name = Bed::member_name(new_p);
    let promotions = promotions(bed, fault_wall).await;
    let promoted = promotions
        .iter()
        .filter(|(m, _)| *m == new_name && new_p != p)
        .map(|(_, at)| *at)
        .min();
    let old_addr = bed.addr(p).to_string();
    let verdict = check(&hosts, bed.password(), &acks, &old_addr, promoted)
        .await
        .map_err(|e| fail(format!("check: {e}")))?;
    let gap = longest_gap(&acks, fault_at);
    let old_acked_after_fault = acks
        .iter()
        .filter(|a| !a.local && a.node == old_addr && a.at > injected_at)
        .count();
    let (freed, taken) = key_log.map_or((None, None), |k| k.freed_and_taken(fault_at));
    Ok(HostRound {
        round: n,
        old_primary: Bed::member_name(p),
        new_primary: new_name,
        write_gap_ms: gap.as_ref().map_or(0.0, |g| g.ms),
        gap_from_ms: gap.as_ref().map(|g| after(fault_at, g.from)),
        resumed_ms: gap.as_ref().map(|g| after(fault_at, g.to)),
        resumed_on: gap.map(|g| g.resumed_on).unwrap_or_default(),
        key_freed_ms: freed.map(|t| after(fault_at, t)),
        key_taken_ms: taken.map(|t| after(fault_at, t)),
        old_acked_after_fault,
        acked_writes: verdict.acked,
        local_acked: acks.iter().filter(|a| a.local).count(),
        lost: verdict.lost,
        duplicates: verdict.duplicates,
        superseded_writes: verdict.superseded,
        ha_restored_ms: ha.map(|(_, _, t)| (t - fault_at).as_secs_f64() * 1000.0),
        promotions: promotions.len(),
        old_rejoined_ms,
    })
}
