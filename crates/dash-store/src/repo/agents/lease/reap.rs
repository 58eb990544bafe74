//! The reaper: any worker reclaims agents whose lease expired.

use dash_core::{agent_fail, EventKind};
use serde_json::json;
use uuid::Uuid;

use super::super::lock_agent;
use crate::error::StoreError;
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
            let f = agent_fail(agent.status, agent.retry_count, agent.max_retries)?;
            let error = format!(
                "lease of attempt {attempt} expired: worker {} stopped renewing it",
                worker.as_deref().unwrap_or("?")
            );
            // Claimable at once: the lease already made it wait, and what
            // failed was its worker, not its runtime. It still counts as an
            // attempt, so an agent that kills every worker runs out.
            tx.execute(
                "UPDATE agents SET status = $2, retry_count = $3, last_error = $4,
                     lease_expires_at = NULL, worker = NULL, updated_at = now(),
                     not_before = now(),
                     completed_at = CASE WHEN $2 = 'failed' THEN now() END
                 WHERE id = $1",
                &[&id, &f.status.as_str(), &f.retry_count, &error],
            )
            .await?;
            emit(
                &mut tx,
                EventKind::AgentFenced,
                agent.swarm_id,
                Some(id),
                json!({ "attempt": attempt, "reason": error }),
            )
            .await?;
            emit(
                &mut tx,
                EventKind::for_agent_failure(&f),
                agent.swarm_id,
                Some(id),
                json!({ "from": "running", "to": f.status.as_str(), "error": error, "retry_count": f.retry_count }),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(rows.len())
    }
}
