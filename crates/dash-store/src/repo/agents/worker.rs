//! What a worker reports about a running agent: progress and cost,
//! completion, failure (with the retry policy). Cost is charged to the
//! swarm's budget in the same transaction, with budget events and a pause at
//! exhaustion.

use dash_core::{
    agent_fail, agent_transition, validate_text, AgentAction, AgentStatus, EventKind,
    ValidationError,
};
use serde_json::json;
use uuid::Uuid;

use super::{agent_from_row, lock_agent, AGENT_COLUMNS};
use crate::error::StoreError;
use crate::model::{Agent, Outcome, ProgressReport};
use crate::pool::{Db, Tx};
use crate::repo::budget::{budget_of, enforce};
use crate::repo::swarms::lock_swarm;
use crate::repo::{emit, money, validate_json};

/// Charges `cost` to the agent and its swarm in `tx`, emitting the cost
/// event, and applies the budget rules (`budget.rs`).
pub(super) async fn charge(tx: &mut Tx<'_>, agent: &Agent, cost: f64) -> Result<(), StoreError> {
    if cost == 0.0 {
        return Ok(());
    }
    tx.execute(
        "UPDATE agents SET cost = cost + $2 WHERE id = $1",
        &[&agent.id, &cost],
    )
    .await?;
    emit(
        tx,
        EventKind::AgentCost,
        agent.swarm_id,
        Some(agent.id),
        json!({ "cost": cost }),
    )
    .await?;
    let Some(swarm_id) = agent.swarm_id else {
        return Ok(());
    };
    let swarm = lock_swarm(tx, swarm_id).await?;
    let budget = budget_of(&swarm);
    let out = budget.apply_cost(cost)?;
    tx.execute(
        "UPDATE swarms SET budget_consumed = $2, updated_at = now() WHERE id = $1",
        &[&swarm_id, &out.budget.consumed],
    )
    .await?;
    enforce(
        tx,
        swarm_id,
        swarm.status,
        &budget,
        &out.budget,
        Some(agent.id),
    )
    .await?;
    Ok(())
}

fn progress_value(p: Option<f64>) -> Result<Option<f64>, StoreError> {
    match p {
        Some(v) if !(0.0..=1.0).contains(&v) => Err(ValidationError::new(
            "progress",
            format!("must be between 0 and 1 (got {v})"),
        )
        .into()),
        other => Ok(other),
    }
}

impl Db {
    /// A worker's progress report; `cost` is charged to the swarm's budget.
    pub async fn record_progress(&self, id: Uuid, r: ProgressReport) -> Result<Agent, StoreError> {
        let progress = progress_value(r.progress)?;
        let cost = money("cost", r.cost)?;
        if let Some(m) = &r.message {
            validate_text("message", m, 10_000)?;
        }
        let mut conn = self.conn().await?;
        let mut tx = conn.transaction().await?;
        let current = lock_agent(&mut tx, id).await?;
        if current.status != AgentStatus::Running {
            return Err(StoreError::Conflicting(format!(
                "cannot record progress on an agent that is {}",
                current.status.as_str()
            )));
        }
        tx.execute(
            "UPDATE agents SET progress = coalesce($2, progress), updated_at = now() WHERE id = $1",
            &[&id, &progress],
        )
        .await?;
        emit(
            &mut tx,
            EventKind::AgentProgress,
            current.swarm_id,
            Some(id),
            json!({ "progress": progress, "cost": cost, "message": r.message }),
        )
        .await?;
        charge(&mut tx, &current, cost).await?;
        let agent = lock_agent(&mut tx, id).await?;
        tx.commit().await?;
        Ok(agent)
    }

    /// The worker finished: completed, with its final cost and result.
    pub async fn complete_agent(&self, id: Uuid, o: Outcome) -> Result<Agent, StoreError> {
        self.finish(id, o, true).await
    }

    /// The worker failed: retried (back to pending) while retries remain, else failed.
    pub async fn fail_agent(&self, id: Uuid, o: Outcome) -> Result<Agent, StoreError> {
        self.finish(id, o, false).await
    }

    async fn finish(&self, id: Uuid, o: Outcome, ok: bool) -> Result<Agent, StoreError> {
        check_outcome(&o)?;
        let mut conn = self.conn().await?;
        let mut tx = conn.transaction().await?;
        let current = lock_agent(&mut tx, id).await?;
        let agent = apply_finish(&mut tx, current, o, ok).await?;
        tx.commit().await?;
        Ok(agent)
    }
}

/// Checks a completion's or failure's fields before anything is locked.
pub(super) fn check_outcome(o: &Outcome) -> Result<(), StoreError> {
    money("cost", o.cost)?;
    if let Some(e) = &o.error {
        validate_text("error", e, 10_000)?;
    }
    if let Some(r) = &o.result {
        validate_json("result", r)?;
    }
    Ok(())
}

/// Completes (`ok`) or fails the locked agent `current` in `tx`, with the
/// retry policy, its events and its final cost; returns it as it is now.
pub(super) async fn apply_finish(
    tx: &mut Tx<'_>,
    current: Agent,
    o: Outcome,
    ok: bool,
) -> Result<Agent, StoreError> {
    let id = current.id;
    let cost = money("cost", o.cost)?;
    let (next, retry_count, kind) = if ok {
        let next = agent_transition(current.status, AgentAction::Complete)?;
        (next, current.retry_count, EventKind::AgentCompleted)
    } else {
        let f = agent_fail(current.status, current.retry_count, current.max_retries)?;
        (f.status, f.retry_count, EventKind::for_agent_failure(&f))
    };
    let progress = if ok { 1.0 } else { current.progress };
    // A finished attempt holds no lease.
    let sql = format!(
        "UPDATE agents SET status = $2, retry_count = $3, last_error = coalesce($4, last_error),
             progress = $5, updated_at = now(), lease_expires_at = NULL, worker = NULL,
             completed_at = CASE WHEN $2 IN ('completed', 'failed') THEN now() ELSE NULL END,
             metadata = CASE WHEN $6::jsonb IS NULL THEN metadata ELSE metadata || jsonb_build_object('result', $6::jsonb) END
         WHERE id = $1 RETURNING {AGENT_COLUMNS}"
    );
    let row = tx
        .query_one(
            &sql,
            &[
                &id,
                &next.as_str(),
                &retry_count,
                &o.error,
                &progress,
                &o.result,
            ],
        )
        .await?;
    emit(
        tx,
        kind,
        current.swarm_id,
        Some(id),
        json!({ "from": current.status.as_str(), "to": next.as_str(), "error": o.error, "retry_count": retry_count }),
    )
    .await?;
    if cost == 0.0 {
        return agent_from_row(&row);
    }
    charge(tx, &current, cost).await?;
    lock_agent(tx, id).await
}
