//! Agents that workers run: claims under the running caps, leases fenced by
//! attempt, heartbeats that carry the stop order, cost reports charged once
//! per message id, and the reaper that reclaims expired leases.
//!
//! Every write a worker makes names `(id, attempt)` and needs the agent
//! `running` with that attempt: zero rows means the worker lost the agent
//! (killed, paused, its lease reclaimed) and must stop its runtime. Claims
//! take one transaction-scoped advisory lock, so the running counts they
//! check cannot move under them: a cap is never exceeded by even one, with
//! any number of workers.

use std::time::Duration;

use dash_core::{AgentStatus, EventKind};
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

mod claim;
mod reap;

use super::worker::{apply_finish, charge, check_outcome};
use super::{lock_agent, lock_agent_attempt};
use crate::error::StoreError;
use crate::model::Agent;
use crate::pool::{Db, Tx};
use crate::repo::emit;

/// Longest retry delay after a failed attempt.
const RETRY_MAX: Duration = Duration::from_secs(60);

/// The running caps a claim respects.
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    /// Running agents in all (`MAX_CONCURRENT_AGENTS`).
    pub global: u32,
    /// Running agents of one swarm, besides the swarm's own `max_agents`.
    pub per_swarm: u32,
}

/// An agent a worker now runs.
#[derive(Debug, Clone, Serialize)]
pub struct Claim {
    pub id: Uuid,
    pub swarm_id: Option<Uuid>,
    pub task: String,
    pub model: String,
    /// This claim's attempt: every later write names it.
    pub attempt: i32,
    pub retry_count: i32,
    pub max_retries: i32,
    /// What the swarm may still spend (`None`: no limit or no swarm).
    pub budget_remaining: Option<f64>,
    pub currency: String,
}

/// What a worker is told after a heartbeat or a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "directive", content = "reason", rename_all = "snake_case")]
pub enum Directive {
    Continue,
    /// Stop the runtime at the next step boundary and yield the agent: its
    /// swarm was paused or its budget is spent.
    Stop(String),
    /// The lease is gone (killed, paused, reclaimed, finished): stop now,
    /// report nothing more.
    Lost(String),
}

/// How a completion or failure of an attempt ended.
#[derive(Debug, Clone)]
pub enum Finish {
    Applied(Agent),
    /// Rejected: the agent is no longer running this attempt.
    Fenced(String),
}

/// Delay before retry number `retry` (1-based): 1 s doubling, capped.
pub fn retry_delay(retry: i32) -> Duration {
    let shift = retry.clamp(1, 16) as u32 - 1;
    (Duration::from_secs(1) * 2u32.pow(shift)).min(RETRY_MAX)
}

pub(super) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Why `(id, attempt)` is no longer running, read in `tx`.
async fn why_lost(tx: &mut Tx<'_>, id: Uuid, attempt: i32) -> Result<String, StoreError> {
    let row = tx
        .query_opt("SELECT status, attempt FROM agents WHERE id = $1", &[&id])
        .await?;
    Ok(match row {
        None => "the agent was deleted".into(),
        Some(r) => {
            let (status, now): (String, i32) = (r.get(0), r.get(1));
            if now != attempt {
                format!("attempt {attempt} was superseded by attempt {now}")
            } else {
                format!("the agent is {status}")
            }
        }
    })
}

/// Whether the agent's swarm lets it go on (`None`: it may).
async fn swarm_stop(tx: &mut Tx<'_>, swarm_id: Option<Uuid>) -> Result<Option<String>, StoreError> {
    let Some(swarm_id) = swarm_id else {
        return Ok(None);
    };
    let row = tx
        .query_opt(
            "SELECT status, budget_allocated > 0 AND budget_consumed >= budget_allocated
             FROM swarms WHERE id = $1",
            &[&swarm_id],
        )
        .await?;
    Ok(match row {
        None => Some("its swarm was deleted".into()),
        Some(r) => {
            let (status, spent): (String, bool) = (r.get(0), r.get(1));
            if spent {
                Some("the swarm's budget is spent".into())
            } else if status != "active" {
                Some(format!("the swarm is {status}"))
            } else {
                None
            }
        }
    })
}

/// Locks the agent if it runs `attempt`; else emits `agent.fenced` and says why.
async fn lock_attempt(
    tx: &mut Tx<'_>,
    id: Uuid,
    attempt: i32,
    what: &str,
) -> Result<Result<Agent, String>, StoreError> {
    let (agent, now) = lock_agent_attempt(tx, id).await?;
    if agent.status == AgentStatus::Running && now == attempt {
        return Ok(Ok(agent));
    }
    let why = why_lost(tx, id, attempt).await?;
    emit(
        tx,
        EventKind::AgentFenced,
        agent.swarm_id,
        Some(id),
        json!({ "attempt": attempt, "rejected": what, "reason": why }),
    )
    .await?;
    Ok(Err(why))
}

impl Db {
    /// Renews the lease of `(id, attempt)`, with the runtime's latest
    /// `progress` (0 to 1) if it reported one; says whether to go on.
    pub async fn heartbeat(
        &self,
        id: Uuid,
        attempt: i32,
        lease: Duration,
        progress: Option<f64>,
    ) -> Result<Directive, StoreError> {
        let progress = progress.filter(|p| (0.0..=1.0).contains(p));
        let mut conn = self.conn().await?;
        let mut tx = conn.transaction().await?;
        let row = tx
            .query_opt(
                "UPDATE agents SET lease_expires_at = now() + $3 * interval '1 millisecond',
                     progress = coalesce($4, progress)
                 WHERE id = $1 AND attempt = $2 AND status = 'running' RETURNING swarm_id",
                &[&id, &attempt, &ms(lease), &progress],
            )
            .await?;
        let directive = match row {
            None => Directive::Lost(why_lost(&mut tx, id, attempt).await?),
            Some(r) => match swarm_stop(&mut tx, r.get(0)).await? {
                Some(why) => Directive::Stop(why),
                None => Directive::Continue,
            },
        };
        tx.commit().await?;
        Ok(directive)
    }

    /// Why an agent of swarm `swarm_id` should stop now (the swarm paused,
    /// out of budget or gone), if it should: what a progress report
    /// through the API answers.
    pub async fn stop_reason(&self, swarm_id: Option<Uuid>) -> Result<Option<String>, StoreError> {
        let mut conn = self.conn().await?;
        let mut tx = conn.transaction().await?;
        let why = swarm_stop(&mut tx, swarm_id).await?;
        tx.commit().await?;
        Ok(why)
    }

    /// Records one usage report of `(id, attempt)`: charged once per
    /// `message_id` (a retried report is not charged again), and charged
    /// even from a fenced attempt, since the money was spent. Says whether
    /// to go on.
    pub async fn report_usage(
        &self,
        id: Uuid,
        attempt: i32,
        message_id: &str,
        tokens: i64,
        cost: f64,
        progress: Option<f64>,
    ) -> Result<Directive, StoreError> {
        dash_core::validate_text("message_id", message_id, 200)?;
        if message_id.is_empty() {
            return Err(dash_core::ValidationError::new("message_id", "must not be empty").into());
        }
        let cost = crate::repo::money("cost", Some(cost))?;
        let tokens = tokens.max(0);
        let progress = progress.filter(|p| (0.0..=1.0).contains(p));
        let mut conn = self.conn().await?;
        let mut tx = conn.transaction().await?;
        let agent = lock_agent(&mut tx, id).await?;
        let new = tx
            .execute(
                "INSERT INTO agent_usage (agent_id, message_id, attempt, tokens, cost)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                &[&id, &message_id, &attempt, &tokens, &cost],
            )
            .await?;
        if new == 1 {
            charge(&mut tx, &agent, cost).await?;
        }
        let runs = tx
            .execute(
                "UPDATE agents SET progress = coalesce($3, progress), updated_at = now()
                 WHERE id = $1 AND attempt = $2 AND status = 'running'",
                &[&id, &attempt, &progress],
            )
            .await?;
        let directive = if runs == 0 {
            Directive::Lost(why_lost(&mut tx, id, attempt).await?)
        } else {
            match swarm_stop(&mut tx, agent.swarm_id).await? {
                Some(why) => Directive::Stop(why),
                None => Directive::Continue,
            }
        };
        tx.commit().await?;
        Ok(directive)
    }

    /// The runtime of `(id, attempt)` ended: completed (`ok`) or failed,
    /// with the retry policy (a delay doubling from 1 s; `fallback_model`
    /// in the agent's metadata replaces its model for the retry). Rejected
    /// (and recorded as `agent.fenced`) unless that attempt still runs.
    pub async fn finish_attempt(
        &self,
        id: Uuid,
        attempt: i32,
        ok: bool,
        error: Option<&str>,
        result: Option<serde_json::Value>,
    ) -> Result<Finish, StoreError> {
        let what = if ok { "completion" } else { "failure" };
        let outcome = crate::model::Outcome {
            cost: None,
            error: error.map(str::to_string),
            result,
        };
        check_outcome(&outcome)?;
        let mut conn = self.conn().await?;
        let mut tx = conn.transaction().await?;
        let agent = match lock_attempt(&mut tx, id, attempt, what).await? {
            Ok(a) => a,
            Err(why) => {
                tx.commit().await?;
                return Ok(Finish::Fenced(why));
            }
        };
        let mut done = apply_finish(&mut tx, agent.clone(), outcome, ok).await?;
        if done.status == AgentStatus::Pending {
            schedule_retry(&mut tx, &agent, done.retry_count).await?;
            done = lock_agent(&mut tx, id).await?;
        }
        tx.commit().await?;
        Ok(Finish::Applied(done))
    }

    /// The runtime was stopped because its swarm is paused or out of
    /// budget: the agent goes back to `pending` (not a failed attempt) and
    /// runs again when the swarm is active with budget.
    pub async fn yield_attempt(
        &self,
        id: Uuid,
        attempt: i32,
        why: &str,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn().await?;
        let mut tx = conn.transaction().await?;
        let agent = match lock_attempt(&mut tx, id, attempt, "yield").await? {
            Ok(a) => a,
            Err(_) => {
                tx.commit().await?;
                return Ok(false);
            }
        };
        tx.execute(
            "UPDATE agents SET status = 'pending', lease_expires_at = NULL, worker = NULL,
                 updated_at = now() WHERE id = $1",
            &[&id],
        )
        .await?;
        emit(
            &mut tx,
            EventKind::AgentPaused,
            agent.swarm_id,
            Some(id),
            json!({ "from": "running", "to": "pending", "attempt": attempt, "reason": why }),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Appends lines the runtime of `(id, attempt)` wrote to `stream`
    /// (`stdout` or `stderr`) as one `agent.output` event, only while that
    /// attempt runs; returns whether they were recorded.
    pub async fn append_output(
        &self,
        id: Uuid,
        attempt: i32,
        stream: &str,
        lines: &[String],
    ) -> Result<bool, StoreError> {
        if lines.is_empty() {
            return Ok(true);
        }
        let data = json!({ "stream": stream, "attempt": attempt, "lines": lines });
        crate::repo::validate_json("output", &data)?;
        let mut conn = self.conn().await?;
        let n = conn
            .execute(
                "INSERT INTO events (kind, swarm_id, agent_id, data)
                 SELECT $1, swarm_id, id, $4 FROM agents
                 WHERE id = $2 AND attempt = $3 AND status = 'running'",
                &[&EventKind::AgentOutput.as_str(), &id, &attempt, &data],
            )
            .await?;
        Ok(n == 1)
    }
}

/// Delays the retry of `before` (now pending again) and swaps in its
/// `fallback_model`, if its metadata names one.
async fn schedule_retry(tx: &mut Tx<'_>, before: &Agent, retry: i32) -> Result<(), StoreError> {
    let delay = retry_delay(retry);
    let fallback = before
        .metadata
        .get("fallback_model")
        .and_then(|m| m.as_str());
    let fallback = fallback.filter(|m| !m.is_empty() && m.len() <= 200);
    tx.execute(
        "UPDATE agents SET not_before = now() + $2 * interval '1 millisecond',
             model = coalesce($3, model)
         WHERE id = $1 AND status = 'pending'",
        &[&before.id, &ms(delay), &fallback],
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_double_from_a_second_and_stop_at_a_minute() {
        let got: Vec<u64> = (1..=8).map(|r| retry_delay(r).as_secs()).collect();
        assert_eq!(got, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(retry_delay(0), Duration::from_secs(1));
        assert_eq!(retry_delay(i32::MAX), RETRY_MAX);
    }
}
