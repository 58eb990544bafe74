//! The database's side of a kill-worker run: completions, fenced writes
//! and re-claims, read once every agent has finished.

use tokio_postgres::Client;

use super::journal;
use super::report::{KillRound, KillWorkerReport, Latency};
use super::{KillWorkerError, KillWorkerOptions};

/// From `killed_at` (Unix seconds) until the killed attempt's lease was
/// reclaimed (the reaper's `agent.fenced`) and until the first claim of a
/// later attempt of `agent` (its `agent.started` event), ms.
pub(super) async fn reclaim_ms(
    client: &Client,
    agent: &str,
    attempt: i32,
    killed_at: f64,
) -> Result<(Option<f64>, Option<f64>), KillWorkerError> {
    let row = client
        .query_one(
            "SELECT extract(epoch FROM min(created_at) FILTER (WHERE kind = 'agent.fenced'
                        AND data->>'rejected' IS NULL AND (data->>'attempt')::int = $2))::float8,
                    extract(epoch FROM min(created_at) FILTER (WHERE kind = 'agent.started'
                        AND (data->>'attempt')::int > $2))::float8
             FROM events WHERE agent_id = $1::text::uuid",
            &[&agent, &attempt],
        )
        .await?;
    let since = |t: Option<f64>| t.map(|t| (t - killed_at) * 1000.0);
    Ok((since(row.get(0)), since(row.get(1))))
}

/// Every figure but the running samples.
pub(super) async fn collect(
    client: &Client,
    o: &KillWorkerOptions,
    rounds: Vec<KillRound>,
    journal_text: &str,
) -> Result<KillWorkerReport, KillWorkerError> {
    let completed: i64 = client
        .query_one(
            "SELECT count(*) FROM agents WHERE status = 'completed'",
            &[],
        )
        .await?
        .get(0);
    let per_agent = client
        .query_one(
            "SELECT count(*) FILTER (WHERE n = 1), count(*) FILTER (WHERE n = 0),
                    coalesce(sum(greatest(n - 1, 0)), 0)::bigint
             FROM (SELECT a.id, count(e.id) AS n FROM agents a
                   LEFT JOIN events e ON e.agent_id = a.id AND e.kind = 'agent.completed'
                   GROUP BY a.id) c",
            &[],
        )
        .await?;
    let fenced = client
        .query_one(
            "SELECT count(*) FILTER (WHERE data->>'rejected' IN ('completion', 'failure')),
                    count(*) FILTER (WHERE data->>'rejected' IS NULL)
             FROM events WHERE kind = 'agent.fenced'",
            &[],
        )
        .await?;
    let (lines, bad) = journal::parse(journal_text);
    let jf = journal::overlaps(&lines);
    let latencies: Vec<f64> = (rounds.iter())
        .flat_map(|r| r.killed.iter().filter_map(|k| k.reclaim_ms))
        .collect();
    let released: Vec<f64> = (rounds.iter())
        .flat_map(|r| r.killed.iter().filter_map(|k| k.released_ms))
        .collect();
    let first: Vec<f64> = (rounds.iter())
        .flat_map(|r| r.killed.iter().filter(|k| k.attempt == 1))
        .filter_map(|k| k.reclaim_ms)
        .collect();
    let killed_attempts = rounds.iter().map(|r| r.killed.len()).sum();
    Ok(KillWorkerReport {
        scenario: "kill-worker",
        agents: o.agents,
        workers: o.workers,
        slots: o.slots,
        cap: o.cap,
        lease_ms: o.lease.as_millis() as u64,
        heartbeat_ms: o.heartbeat.as_millis() as u64,
        killed_attempts,
        not_reclaimed: killed_attempts - latencies.len(),
        reclaim_ms: Latency::of(&latencies),
        reclaim_first_attempt_ms: Latency::of(&first),
        released_ms: Latency::of(&released),
        rounds,
        completed,
        lost: i64::from(o.agents) - completed,
        completed_once: per_agent.get(0),
        never_completed: per_agent.get(1),
        duplicates: per_agent.get(2),
        stale_completions_rejected: fenced.get(0),
        leases_reclaimed: fenced.get(1),
        journal_resolution_ms: 0,
        journal_bad_lines: bad,
        overlaps: jf.overlaps.len() + jf.double_starts,
        journal: jf,
        max_running: 0,
        running_samples: 0,
        seconds: 0.0,
    })
}
