//! Agents: spawn, read, list, lifecycle actions (start, pause, resume,
//! kill) and delete. What a worker reports (progress and cost, complete,
//! fail) is in `worker.rs`.

pub mod lease;
mod worker;

use dash_core::{
    agent_transition, validate_max_retries, validate_text, AgentAction, AgentStatus, EventKind,
    SwarmStatus, ValidationError, DEFAULT_MAX_RETRIES,
};
use std::sync::LazyLock;

use serde_json::{json, Value};
use tokio_postgres::Row;
use uuid::Uuid;

use super::swarms::lock_swarm;
use super::{
    col, emit, finish_create, lock_by_id, not_found, replay, validate_json, Filters, IdemRequest,
    Keyset,
};
use crate::error::StoreError;
use crate::model::{Agent, Created, NewAgent, Order, Page};
use crate::pool::{Db, Tx};

const AGENT_COLUMNS: &str =
    "id, swarm_id, task, model, status, retry_count, max_retries, progress, cost, \
    last_error, metadata, spawned_at, started_at, completed_at, updated_at";

fn agent_from_row(r: &Row) -> Result<Agent, StoreError> {
    let status: String = col(r, 4)?;
    Ok(Agent {
        id: col(r, 0)?,
        swarm_id: col(r, 1)?,
        task: col(r, 2)?,
        model: col(r, 3)?,
        status: status
            .parse()
            .map_err(|e: dash_core::ParseEnumError| StoreError::Migration(e.to_string()))?,
        retry_count: col(r, 5)?,
        max_retries: col(r, 6)?,
        progress: col(r, 7)?,
        cost: col(r, 8)?,
        last_error: col(r, 9)?,
        metadata: col(r, 10)?,
        spawned_at: col(r, 11)?,
        started_at: col(r, 12)?,
        completed_at: col(r, 13)?,
        updated_at: col(r, 14)?,
    })
}

async fn lock_agent(tx: &mut Tx<'_>, id: Uuid) -> Result<Agent, StoreError> {
    let sql = format!("SELECT {AGENT_COLUMNS} FROM agents WHERE id = $1 FOR UPDATE");
    lock_by_id(tx, &sql, id, "agent", agent_from_row).await
}

/// [`lock_agent`], with the agent's attempt (what a worker's writes name).
async fn lock_agent_attempt(tx: &mut Tx<'_>, id: Uuid) -> Result<(Agent, i32), StoreError> {
    let sql = format!("SELECT {AGENT_COLUMNS}, attempt FROM agents WHERE id = $1 FOR UPDATE");
    let row = tx
        .query_opt(&sql, &[&id])
        .await?
        .ok_or_else(|| super::not_found("agent", id))?;
    Ok((agent_from_row(&row)?, col(&row, 15)?))
}

/// Reads an agent without locking it: a spawn holds its swarm's lock, and
/// locking the agent after the swarm would invert the agent-then-swarm order
/// every other call takes (a deadlock with a concurrent progress report).
async fn read_agent(tx: &mut Tx<'_>, id: Uuid) -> Result<Option<Agent>, StoreError> {
    let sql = format!("SELECT {AGENT_COLUMNS} FROM agents WHERE id = $1");
    tx.query_opt(&sql, &[&id])
        .await?
        .map(|row| agent_from_row(&row))
        .transpose()
}

/// Whether a worker (`dashctl worker`) has claimed the agent before.
async fn run_by_workers(tx: &mut Tx<'_>, id: Uuid) -> Result<bool, StoreError> {
    let row = tx
        .query_one("SELECT attempt > 0 FROM agents WHERE id = $1", &[&id])
        .await?;
    Ok(row.get(0))
}

impl Db {
    /// Spawns an agent (pending). A client-chosen id makes the call safe to retry.
    pub async fn spawn_agent(
        &self,
        a: NewAgent,
        idem: Option<IdemRequest>,
    ) -> Result<Created, StoreError> {
        validate_text("task", &a.task, 100_000)?;
        if a.task.trim().is_empty() {
            return Err(ValidationError::new("task", "must not be empty").into());
        }
        if let Some(m) = &a.model {
            validate_text("model", m, 200)?;
        }
        let max_retries = a.max_retries.unwrap_or(DEFAULT_MAX_RETRIES as i64);
        validate_max_retries(max_retries)?;
        let metadata = a.metadata.clone().unwrap_or_else(|| json!({}));
        if !metadata.is_object() {
            return Err(ValidationError::new("metadata", "must be a JSON object").into());
        }
        validate_json("metadata", &metadata)?;
        let id = a.id.unwrap_or_else(Uuid::now_v7);
        let mut conn = self.conn().await?;
        let mut tx = conn.transaction().await?;
        if let Some(done) = replay(&mut tx, idem.as_ref()).await? {
            return Ok(done);
        }
        let mut model = a.model.clone().unwrap_or_default();
        let mut existing = None;
        if let Some(swarm_id) = a.swarm_id {
            // FOR NO KEY UPDATE serializes spawns into one swarm, so two of them
            // cannot both see room for one more agent (FOR SHARE let them).
            let swarm = tx
                .query_opt(
                    "SELECT status, model, max_agents FROM swarms WHERE id = $1 FOR NO KEY UPDATE",
                    &[&swarm_id],
                )
                .await?
                .ok_or_else(|| not_found("swarm", swarm_id))?;
            // A retry of a spawn that already happened answers with that agent,
            // even when the swarm has since filled up or finished.
            if a.id.is_some() {
                existing = read_agent(&mut tx, id).await?;
            }
            if existing.is_none() {
                let status: String = swarm.get(0);
                if status != "active" && status != "paused" {
                    return Err(StoreError::Conflicting(format!(
                        "cannot spawn an agent in a swarm that is {status}"
                    )));
                }
                if a.model.is_none() {
                    model = swarm.get(1);
                }
                let max_agents: i32 = swarm.get(2);
                let live: i64 = tx
                    .query_one(
                        "SELECT count(*) FROM agents WHERE swarm_id = $1 AND status IN ('pending', 'running', 'paused')",
                        &[&swarm_id],
                    )
                    .await?
                    .get(0);
                if live >= max_agents as i64 {
                    return Err(StoreError::Conflicting(format!(
                        "swarm already has {live} live agents, its max_agents"
                    )));
                }
            }
        }
        let same = |existing: Agent| {
            if existing.task != a.task || existing.swarm_id != a.swarm_id {
                return Err(StoreError::Conflicting(format!(
                    "a different agent with id {id} already exists"
                )));
            }
            Ok((200, existing))
        };
        let (status, agent) = match existing {
            Some(found) => same(found)?,
            None => {
                let sql = format!(
                    "INSERT INTO agents (id, swarm_id, task, model, max_retries, metadata)
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING RETURNING {AGENT_COLUMNS}"
                );
                let row = tx
                    .query_opt(
                        &sql,
                        &[
                            &id,
                            &a.swarm_id,
                            &a.task,
                            &model,
                            &(max_retries as i32),
                            &metadata,
                        ],
                    )
                    .await?;
                match row {
                    Some(row) => {
                        let agent = agent_from_row(&row)?;
                        emit(
                            &mut tx,
                            EventKind::AgentSpawned,
                            a.swarm_id,
                            Some(id),
                            json!({ "task": agent.task }),
                        )
                        .await?;
                        (201, agent)
                    }
                    None => same(
                        read_agent(&mut tx, id)
                            .await?
                            .ok_or_else(|| not_found("agent", id))?,
                    )?,
                }
            }
        };
        let body = serde_json::to_value(&agent).expect("agent serializes");
        finish_create(tx, idem.as_ref(), status, body).await
    }

    pub async fn get_agent(&self, id: Uuid) -> Result<Agent, StoreError> {
        static SQL: LazyLock<String> =
            LazyLock::new(|| format!("SELECT {AGENT_COLUMNS} FROM agents WHERE id = $1"));
        self.get_by_id(&SQL, id, "agent", agent_from_row).await
    }

    pub async fn list_agents(
        &self,
        status: Option<AgentStatus>,
        swarm_id: Option<Uuid>,
        limit: i64,
        cursor: Option<&str>,
        order: Order,
    ) -> Result<Page<Agent>, StoreError> {
        let k = Keyset::new(cursor, order)?;
        let (status, fetch) = (status.map(|s| s.as_str()), limit + 1);
        let mut f = Filters::new();
        f.eq("status", &status);
        f.eq("swarm_id", &swarm_id);
        f.after("spawned_at", &k);
        let (filter, limit_clause, params) = f.finish(&fetch);
        let dir = k.dir;
        let sql = format!(
            "SELECT {AGENT_COLUMNS} FROM agents {filter} \
             ORDER BY spawned_at {dir}, id {dir} {limit_clause}"
        );
        self.list_page(&sql, &params, limit, agent_from_row, |a| {
            (a.spawned_at, a.id)
        })
        .await
    }

    /// Start, pause, resume or kill an agent. Starting is refused while its swarm is not active.
    pub async fn agent_action(&self, id: Uuid, action: AgentAction) -> Result<Agent, StoreError> {
        let mut conn = self.conn().await?;
        let mut tx = conn.transaction().await?;
        let current = lock_agent(&mut tx, id).await?;
        let mut next = agent_transition(current.status, action)?;
        if action == AgentAction::Resume && run_by_workers(&mut tx, id).await? {
            // Its worker stopped its runtime when it was paused: a worker
            // claims it again (a new attempt) instead.
            next = AgentStatus::Pending;
        }
        if matches!(action, AgentAction::Start | AgentAction::Resume) {
            if let Some(swarm_id) = current.swarm_id {
                let swarm = lock_swarm(&mut tx, swarm_id).await?;
                if swarm.status != SwarmStatus::Active {
                    return Err(StoreError::Conflicting(format!(
                        "cannot {} an agent while its swarm is {}",
                        if action == AgentAction::Start {
                            "start"
                        } else {
                            "resume"
                        },
                        swarm.status.as_str()
                    )));
                }
            }
        }
        let sql = format!(
            "UPDATE agents SET status = $2, updated_at = now(),
                 started_at = CASE WHEN $2 = 'running' THEN coalesce(started_at, now()) ELSE started_at END,
                 completed_at = CASE WHEN $2 IN ('completed', 'failed', 'killed') THEN now() ELSE completed_at END
             WHERE id = $1 RETURNING {AGENT_COLUMNS}"
        );
        let row = tx.query_one(&sql, &[&id, &next.as_str()]).await?;
        emit(
            &mut tx,
            EventKind::for_agent_action(action),
            current.swarm_id,
            Some(id),
            json!({ "from": current.status.as_str(), "to": next.as_str() }),
        )
        .await?;
        tx.commit().await?;
        agent_from_row(&row)
    }

    /// Deletes an agent that is not running or paused.
    pub async fn delete_agent(&self, id: Uuid) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        let mut tx = conn.transaction().await?;
        let current = lock_agent(&mut tx, id).await?;
        if matches!(current.status, AgentStatus::Running | AgentStatus::Paused) {
            return Err(StoreError::Conflicting(format!(
                "cannot delete an agent that is {}; kill it first",
                current.status.as_str()
            )));
        }
        tx.execute("DELETE FROM agents WHERE id = $1", &[&id])
            .await?;
        emit(
            &mut tx,
            EventKind::AgentDeleted,
            current.swarm_id,
            Some(id),
            Value::Null,
        )
        .await?;
        tx.commit().await
    }

    /// Counts of agents by status, for `dash_agents{status}`.
    pub async fn count_agents(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = self
            .conn()
            .await?
            .query("SELECT status, count(*) FROM agents GROUP BY status", &[])
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}
