//! The reaper: any worker reclaims agents whose lease expired.

use dash_core::EventKind;
use serde_json::json;
use uuid::Uuid;

use super::super::lock_agent;
use super::super::worker::apply_finish;
use crate::error::StoreError;
use crate::model::Outcome;
use crate::pool::Db;
use crate::repo::emit;

/// Most expired leases one reaper pass reclaims.
const REAP_BATCH: i64 = 100;

impl Db {
    /// Reclaims agents whose lease expired (their worker died, hung or was
    /// cut off): each counts as a failed attempt, retried while retries
    /// remain. Returns how many were reclaimed.
    pub async fn reap_expired(&self) -> Result<usize, StoreError> {
        let mut conn = self.conn().await?;
        let mut tx = conn.transaction().await?;
        let rows = tx
            .query(
                "SELECT id, attempt, worker FROM agents
                 WHERE status = 'running' AND lease_expires_at < now()
                 ORDER BY lease_expires_at LIMIT $1 FOR UPDATE SKIP LOCKED",
                &[&REAP_BATCH],
            )
            .await?;
        for r in &rows {
            let (id, attempt, worker): (Uuid, i32, Option<String>) = (r.get(0), r.get(1), r.get(2));
            let agent = lock_agent(&mut tx, id).await?;
            let error = format!(
                "lease of attempt {attempt} expired: worker {} stopped renewing it",
                worker.as_deref().unwrap_or("?")
            );
            emit(
                &mut tx,
                EventKind::AgentFenced,
                agent.swarm_id,
                Some(id),
                json!({ "attempt": attempt, "reason": error }),
            )
            .await?;
            // A failed attempt, by the same rules and events as a runtime's
            // failure, but claimable at once (its `not_before` has passed):
            // the lease already made it wait, and what failed was its
            // worker. It still counts, so an agent that kills every worker
            // runs out of retries.
            let outcome = Outcome {
                error: Some(error),
                ..Outcome::default()
            };
            apply_finish(&mut tx, agent, outcome, false).await?;
        }
        tx.commit().await?;
        Ok(rows.len())
    }
}
