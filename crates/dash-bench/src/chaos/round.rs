//! One chaos round and the probes it uses: is the cluster highly available,
//! does the fenced node still take writes.

use std::time::{Duration, Instant};

use dash_platform::{ha, Topology};
use dash_store::Secret;
use nix::sys::signal::Signal;
use uuid::Uuid;

use super::faults::{crash, signal_all};
use super::{ChaosError, ChaosOptions, RoundReport, Scenario};
use crate::load::{LoadConfig, Mix, RetryPolicy};

async fn client(
    topo: &Topology,
    name: &str,
    db: &str,
) -> Result<tokio_postgres::Client, ChaosError> {
    topo.connect(name, db, Duration::from_millis(500))
        .await
        .map_err(|e| ChaosError::Connect {
            node: name.to_string(),
            reason: e.to_string(),
        })
}

/// Waits until a leader has a streaming (synchronous) standby; returns the
/// leader and when.
pub(super) async fn wait_ha(topo: &Topology, limit: Duration) -> Option<(String, Instant)> {
    let pair = ha::wait_ha(topo, limit, &|_| {}, &mut || None).await.ok()?;
    Some((pair.leader, Instant::now()))
}

/// Tries a write on the fenced node for `window`; counts the ones it accepted.
async fn fence_probe(topo: &Topology, name: &str, window: Duration) -> usize {
    let deadline = Instant::now() + window;
    let mut accepted = 0;
    while Instant::now() < deadline {
        if let Ok(c) = client(topo, name, "postgres").await {
            let w = c.execute("INSERT INTO dash_chaos_probe DEFAULT VALUES", &[]);
            if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(300), w).await {
                accepted += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    accepted
}

/// One round: writes through the API, the fault, the wait for writes to
/// resume, then the count of what was acknowledged against what is stored.
pub(super) async fn round(
    n: u32,
    opts: &ChaosOptions,
    topo: &Topology,
    base_url: &str,
    token: &str,
) -> Result<RoundReport, ChaosError> {
    let fail = |reason: String| ChaosError::Round { round: n, reason };
    let Some((leader, _)) = wait_ha(topo, super::HA_LIMIT).await else {
        return Err(fail(format!(
            "the cluster did not become highly available within {:?}",
            super::HA_LIMIT
        )));
    };
    let old = (topo.node(&leader))
        .ok_or_else(|| fail(format!("{leader} leads, but the record has no such node")))?
        .clone();
    client(topo, &old.name, "postgres")
        .await?
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS dash_chaos_probe (at timestamptz NOT NULL DEFAULT now())",
        )
        .await?;
    let mut cfg = LoadConfig::new(
        base_url,
        Secret::new(token),
        opts.concurrency,
        Mix::CreateAgent,
    );
    cfg.duration = Duration::from_secs(45);
    cfg.retry = RetryPolicy::through_outages();
    cfg.request_timeout = Duration::from_secs(5);
    cfg.seed_agents = 0;
    cfg.task = format!("chaos round {n}");
    let load = crate::load::start(cfg)?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let fault_at = Instant::now();
    let mut held = Vec::new();
    let mut held_sessions = 0;
    match opts.scenario {
        Scenario::KillPrimary => {
            if crash(&old.data_dir) == 0 {
                return Err(fail(format!("no process of {} to kill", old.name)));
            }
        }
        Scenario::HangPrimary => {
            if signal_all(&old.data_dir, Signal::SIGSTOP) == 0 {
                return Err(fail(format!("no process of {} to freeze", old.name)));
            }
        }
        Scenario::RestartPrimary => {
            // An immediate shutdown: SIGQUIT to the postmaster. Its agent
            // restarts it in place or hands over to the standby.
            let pid = std::fs::read_to_string(old.data_dir.join("postmaster.pid"))
                .ok()
                .and_then(|t| t.lines().next()?.trim().parse::<i32>().ok())
                .ok_or_else(|| fail(format!("{} has no postmaster to stop", old.name)))?;
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGQUIT);
        }
        Scenario::ExhaustPool => {
            for _ in 0..200 {
                match client(topo, &old.name, "dash").await {
                    Ok(c) => {
                        let _ = c.batch_execute("BEGIN; SELECT 1").await;
                        held.push(c);
                    }
                    Err(_) => break,
                }
            }
            held_sessions = held.len();
            tokio::time::sleep(Duration::from_secs(3)).await;
            drop(held);
        }
    }
    // Writes must resume: more acknowledgements than there were requests in
    // flight once the fault was in place, so at least one write sent after it
    // was acknowledged. (Counted after injecting: finding every process takes
    // milliseconds, in which a healthy primary acknowledges dozens of writes.)
    let acked_at_fault = load.progress().acked;
    let resume_deadline = Instant::now() + Duration::from_secs(30);
    while load.progress().acked <= acked_at_fault + opts.concurrency as u64 {
        if Instant::now() > resume_deadline {
            load.stop();
            return Err(fail(
                "writes did not resume within 30 s of the fault".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    if opts.scenario == Scenario::HangPrimary {
        // Wake the frozen node: the fence must hold.
        signal_all(&old.data_dir, Signal::SIGCONT);
    }
    let fenced_writes = if matches!(opts.scenario, Scenario::ExhaustPool) {
        0
    } else {
        match ha::leader(topo).await {
            Some(now) if now != old.name => {
                fence_probe(topo, &old.name, Duration::from_secs(1)).await
            }
            _ => 0,
        }
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    load.stop();
    let report = load.join().await?;
    let ha = wait_ha(topo, super::HA_LIMIT).await;
    let new = match &ha {
        Some((leader, _)) => leader.clone(),
        None => ha::leader(topo)
            .await
            .ok_or_else(|| fail("no primary after the fault".into()))?,
    };
    let acked: Vec<Uuid> = report.acked_ids().collect();
    let db = client(topo, &new, "dash").await?;
    let found: i64 = db
        .query_one("SELECT count(*) FROM agents WHERE id = ANY($1)", &[&acked])
        .await?
        .get(0);
    let dup_rows = db
        .query(
            "SELECT agent_id FROM events WHERE kind = 'agent.spawned' AND agent_id = ANY($1)
             GROUP BY agent_id HAVING count(*) > 1",
            &[&acked],
        )
        .await?;
    // The outage is the longest silence between consecutive acknowledgements
    // from just before the fault on: a reply to a write committed before the
    // fault can arrive just after it, so "first ack after" alone understates it.
    let window_start = fault_at
        .checked_sub(Duration::from_millis(500))
        .unwrap_or(fault_at);
    let acks: Vec<Instant> = report
        .acks
        .iter()
        .map(|a| a.at)
        .filter(|t| *t >= window_start)
        .collect();
    let gap = acks
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64() * 1000.0)
        .fold(0.0, f64::max);
    Ok(RoundReport {
        round: n,
        old_primary: old.name,
        new_primary: new,
        write_gap_ms: gap,
        acked_writes: acked.len(),
        lost: acked.len() - found as usize,
        duplicates: dup_rows.len() + report.duplicate_acks().len(),
        fenced_writes,
        // Holding connections never costs the cluster its standby.
        ha_restored_ms: if opts.scenario == Scenario::ExhaustPool {
            None
        } else {
            ha.map(|(_, t)| (t - fault_at).as_secs_f64() * 1000.0)
        },
        failed_requests: report.summary.requests - report.summary.ok,
        held_sessions,
    })
}
