//! Claims: up to a worker's free slots in one transaction, under one
//! transaction-scoped advisory lock, so the running counts the caps are
//! checked against cannot move under it (a cap is never passed by one,
//! with any number of workers), and one round trip claims a whole batch.

use std::time::Duration;

use super::{ms, Caps, Claim};
use crate::error::StoreError;
use crate::pool::Db;

/// Key of the advisory lock claims take (ASCII "dashclm").
const CLAIM_LOCK: i64 = 0x0064_6173_6863_6c6d;

/// Pending agents that may run now (retry delay passed, swarm active with
/// budget and room for one more), oldest first, locked; then ranked so
/// that the batch itself stays under the caps; claimed with the next
/// attempt and a lease; an `agent.started` event each.
const CLAIM: &str = "
WITH locked AS (
    SELECT a.id, a.swarm_id, a.spawned_at FROM agents a LEFT JOIN swarms s ON s.id = a.swarm_id
    WHERE a.status = 'pending' AND a.not_before <= now()
      AND (a.swarm_id IS NULL OR (
           s.status = 'active'
           AND (s.budget_allocated = 0 OR s.budget_consumed < s.budget_allocated)
           AND (SELECT count(*) FROM agents r WHERE r.swarm_id = s.id AND r.status = 'running')
               < least(s.max_agents, $3)))
    ORDER BY a.spawned_at, a.id LIMIT $5
    FOR UPDATE OF a SKIP LOCKED),
ranked AS (
    SELECT l.id, l.swarm_id,
           row_number() OVER (ORDER BY l.spawned_at, l.id) AS overall,
           row_number() OVER (PARTITION BY l.swarm_id ORDER BY l.spawned_at, l.id) AS in_swarm
    FROM locked l),
admitted AS (
    SELECT r.id FROM ranked r LEFT JOIN swarms s ON s.id = r.swarm_id
    WHERE r.overall + (SELECT count(*) FROM agents WHERE status = 'running') <= $2
      AND (r.swarm_id IS NULL
           OR r.in_swarm + (SELECT count(*) FROM agents x
                            WHERE x.swarm_id = r.swarm_id AND x.status = 'running')
              <= least(s.max_agents, $3))),
claimed AS (
    UPDATE agents a SET status = 'running', attempt = a.attempt + 1, worker = $1,
        lease_expires_at = now() + $4 * interval '1 millisecond',
        started_at = coalesce(a.started_at, now()), updated_at = now()
    FROM admitted WHERE a.id = admitted.id
    RETURNING a.id, a.swarm_id, a.task, a.model, a.attempt, a.retry_count, a.max_retries),
started AS (
    INSERT INTO events (kind, swarm_id, agent_id, data)
    SELECT 'agent.started', c.swarm_id, c.id,
           jsonb_build_object('from', 'pending', 'to', 'running', 'attempt', c.attempt, 'worker', $1::text)
    FROM claimed c)
SELECT c.id, c.swarm_id, c.task, c.model, c.attempt, c.retry_count, c.max_retries,
       CASE WHEN s.budget_allocated > 0 THEN greatest(s.budget_allocated - s.budget_consumed, 0) END,
       coalesce(s.budget_currency, 'USD')
FROM claimed c LEFT JOIN swarms s ON s.id = c.swarm_id";

impl Db {
    /// Claims up to `max` agents that may run now, oldest first, under
    /// `caps`; each becomes `running` with its next attempt and a lease of
    /// `lease`.
    pub async fn claim_agents(
        &self,
        worker: &str,
        lease: Duration,
        caps: Caps,
        max: usize,
    ) -> Result<Vec<Claim>, StoreError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let mut conn = self.conn().await?;
        let mut tx = conn.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&CLAIM_LOCK])
            .await?;
        let rows = tx
            .query(
                CLAIM,
                &[
                    &worker,
                    &i64::from(caps.global),
                    &(caps.per_swarm.min(i32::MAX as u32) as i32),
                    &ms(lease),
                    &(max.min(1000) as i64),
                ],
            )
            .await?;
        tx.commit().await?;
        let claim = |r: &tokio_postgres::Row| Claim {
            id: r.get(0),
            swarm_id: r.get(1),
            task: r.get(2),
            model: r.get(3),
            attempt: r.get(4),
            retry_count: r.get(5),
            max_retries: r.get(6),
            budget_remaining: r.get(7),
            currency: r.get(8),
        };
        Ok(rows.iter().map(claim).collect())
    }

    /// [`Db::claim_agents`] for one agent.
    pub async fn claim_agent(
        &self,
        worker: &str,
        lease: Duration,
        caps: Caps,
    ) -> Result<Option<Claim>, StoreError> {
        Ok(self.claim_agents(worker, lease, caps, 1).await?.pop())
    }
}
