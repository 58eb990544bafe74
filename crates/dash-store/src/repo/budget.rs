//! The budget rules, applied in the transaction of whatever changes a
//! budget (a reported cost, a new allocation): an event for each level the
//! budget crossed upward, and an active swarm paused once it is exhausted.

use dash_core::{Budget, BudgetLevel, EventKind, SwarmAction, SwarmStatus};
use serde_json::json;
use uuid::Uuid;

use super::emit;
use crate::error::StoreError;
use crate::model::Swarm;
use crate::pool::Tx;

/// The budget of a swarm as read from its row.
pub(crate) fn budget_of(swarm: &Swarm) -> Budget {
    Budget {
        allocated: swarm.budget.allocated,
        consumed: swarm.budget.consumed,
        currency: swarm.budget.currency.clone(),
        warning_threshold: swarm.budget.warning_threshold,
        critical_threshold: swarm.budget.critical_threshold,
    }
}

/// Applies the rules to a budget that went from `before` to `after` in
/// `tx`; `agent_id` names the agent whose cost did it, if one did. Returns
/// whether the swarm was paused.
pub(crate) async fn enforce(
    tx: &mut Tx<'_>,
    swarm_id: Uuid,
    status: SwarmStatus,
    before: &Budget,
    after: &Budget,
    agent_id: Option<Uuid>,
) -> Result<bool, StoreError> {
    for level in BudgetLevel::crossed(before.level(), after.level()) {
        if let Some(kind) = EventKind::for_budget_level(level) {
            let data = json!({ "consumed": after.consumed, "allocated": after.allocated,
                               "currency": after.currency, "utilization": after.utilization() });
            emit(tx, kind, Some(swarm_id), agent_id, data).await?;
        }
    }
    if !(after.is_exhausted() && status == SwarmStatus::Active) {
        return Ok(false);
    }
    tx.execute(
        "UPDATE swarms SET status = 'paused', updated_at = now() WHERE id = $1",
        &[&swarm_id],
    )
    .await?;
    emit(
        tx,
        EventKind::for_swarm_action(SwarmAction::Pause),
        Some(swarm_id),
        None,
        json!({ "from": "active", "to": "paused", "reason": "budget exhausted" }),
    )
    .await?;
    Ok(true)
}
