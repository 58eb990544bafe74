//! Swarms: create, read, list, update, lifecycle actions, budgets.

use dash_core::{
    swarm_transition, validate_currency, validate_max_agents, validate_name, validate_text,
    validate_thresholds, Budget, EventKind, Strategy, SwarmAction, SwarmStatus,
    DEFAULT_CRITICAL_THRESHOLD, DEFAULT_WARNING_THRESHOLD,
};
use serde_json::json;
use tokio_postgres::Row;
use uuid::Uuid;

use super::budget::{budget_of, enforce};
use super::{emit, finish_create, lock_by_id, money, replay, Filters, IdemRequest, Keyset};
use crate::error::StoreError;
use crate::model::{
    BudgetPatch, BudgetView, Created, NewSwarm, Order, Page, Swarm, SwarmConfig, SwarmPatch,
};
use crate::pool::{Db, Tx};

pub(crate) const SWARM_COLUMNS: &str = "id, name, task, strategy, status, model, max_agents, \
    budget_allocated, budget_consumed, budget_currency, budget_warning, budget_critical, created_at, updated_at";

pub(crate) fn swarm_from_row(r: &Row) -> Result<Swarm, StoreError> {
    let parse = |i: usize| -> String { r.get(i) };
    let budget = Budget {
        allocated: r.get(7),
        consumed: r.get(8),
        currency: r.get(9),
        warning_threshold: r.get(10),
        critical_threshold: r.get(11),
    };
    Ok(Swarm {
        id: r.get(0),
        name: r.get(1),
        task: r.get(2),
        strategy: parse(3)
            .parse()
            .map_err(|e: dash_core::ParseEnumError| StoreError::Migration(e.to_string()))?,
        status: parse(4)
            .parse()
            .map_err(|e: dash_core::ParseEnumError| StoreError::Migration(e.to_string()))?,
        config: SwarmConfig {
            model: r.get(5),
            max_agents: r.get(6),
        },
        budget: BudgetView::from(&budget),
        created_at: r.get(12),
        updated_at: r.get(13),
    })
}

/// Locks a swarm row for a change of its non-key columns. `FOR NO KEY UPDATE`
/// (not `FOR UPDATE`): a transaction that updated one of the swarm's agents
/// twice holds `FOR KEY SHARE` on the swarm from the foreign-key check, and
/// two such transactions upgrading to `FOR UPDATE` deadlock each other.
pub(crate) async fn lock_swarm(tx: &mut Tx<'_>, id: Uuid) -> Result<Swarm, StoreError> {
    let sql = format!("SELECT {SWARM_COLUMNS} FROM swarms WHERE id = $1 FOR NO KEY UPDATE");
    lock_by_id(tx, &sql, id, "swarm", swarm_from_row).await
}

fn validate_new(s: &NewSwarm) -> Result<Budget, StoreError> {
    validate_name("name", &s.name)?;
    validate_text("task", &s.task, 100_000)?;
    if let Some(c) = &s.config {
        if let Some(m) = &c.model {
            validate_text("config.model", m, 200)?;
        }
        if let Some(n) = c.max_agents {
            validate_max_agents(n)?;
        }
    }
    let b = s.budget.clone().unwrap_or_default();
    let budget = Budget {
        allocated: money("budget.allocated", Some(b.allocated))?,
        consumed: 0.0,
        currency: b.currency.unwrap_or_else(|| "USD".into()),
        warning_threshold: b.warning_threshold.unwrap_or(DEFAULT_WARNING_THRESHOLD),
        critical_threshold: b.critical_threshold.unwrap_or(DEFAULT_CRITICAL_THRESHOLD),
    };
    validate_currency(&budget.currency)?;
    validate_thresholds(budget.warning_threshold, budget.critical_threshold)?;
    Ok(budget)
}

impl Db {
    /// Creates a swarm. With an id that exists already, returns that swarm
    /// (200) when it is the same request, or refuses (409) when it is not.
    pub async fn create_swarm(
        &self,
        s: NewSwarm,
        idem: Option<IdemRequest>,
    ) -> Result<Created, StoreError> {
        let budget = validate_new(&s)?;
        let id = s.id.unwrap_or_else(Uuid::now_v7);
        let model = s
            .config
            .as_ref()
            .and_then(|c| c.model.clone())
            .unwrap_or_default();
        let max_agents = s.config.as_ref().and_then(|c| c.max_agents).unwrap_or(10) as i32;
        let mut conn = self.conn().await?;
        let mut tx = conn.transaction().await?;
        if let Some(done) = replay(&mut tx, idem.as_ref()).await? {
            return Ok(done);
        }
        let sql = format!(
            "INSERT INTO swarms (id, name, task, strategy, model, max_agents, budget_allocated, budget_currency,
                                 budget_warning, budget_critical)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (id) DO NOTHING RETURNING {SWARM_COLUMNS}"
        );
        let row = tx
            .query_opt(
                &sql,
                &[
                    &id,
                    &s.name,
                    &s.task,
                    &s.strategy.as_str(),
                    &model,
                    &max_agents,
                    &budget.allocated,
                    &budget.currency,
                    &budget.warning_threshold,
                    &budget.critical_threshold,
                ],
            )
            .await?;
        let (status, swarm) = match row {
            Some(row) => {
                let swarm = swarm_from_row(&row)?;
                emit(
                    &mut tx,
                    EventKind::SwarmCreated,
                    Some(id),
                    None,
                    json!({ "name": swarm.name }),
                )
                .await?;
                (201, swarm)
            }
            None => {
                let existing = lock_swarm(&mut tx, id).await?;
                if existing.name != s.name
                    || existing.strategy != s.strategy
                    || existing.task != s.task
                {
                    return Err(StoreError::Conflicting(format!(
                        "a different swarm with id {id} already exists"
                    )));
                }
                (200, existing)
            }
        };
        let body = serde_json::to_value(&swarm).expect("swarm serializes");
        finish_create(tx, idem.as_ref(), status, body).await
    }

    pub async fn get_swarm(&self, id: Uuid) -> Result<Swarm, StoreError> {
        static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            format!("SELECT {SWARM_COLUMNS} FROM swarms WHERE id = $1")
        });
        self.get_by_id(&SQL, id, "swarm", swarm_from_row).await
    }

    pub async fn list_swarms(
        &self,
        status: Option<SwarmStatus>,
        limit: i64,
        cursor: Option<&str>,
        order: Order,
    ) -> Result<Page<Swarm>, StoreError> {
        let k = Keyset::new(cursor, order)?;
        let (status, fetch) = (status.map(|s| s.as_str()), limit + 1);
        let mut f = Filters::new();
        f.eq("status", &status);
        f.after("created_at", &k);
        let (filter, limit_clause, params) = f.finish(&fetch);
        let dir = k.dir;
        let sql = format!(
            "SELECT {SWARM_COLUMNS} FROM swarms {filter} \
             ORDER BY created_at {dir}, id {dir} {limit_clause}"
        );
        self.list_page(&sql, &params, limit, swarm_from_row, |s| {
            (s.created_at, s.id)
        })
        .await
    }

    pub async fn update_swarm(&self, id: Uuid, p: SwarmPatch) -> Result<Swarm, StoreError> {
        if let Some(n) = &p.name {
            validate_name("name", n)?;
        }
        if let Some(t) = &p.task {
            validate_text("task", t, 100_000)?;
        }
        let (model, max_agents) = match &p.config {
            Some(c) => (c.model.clone(), c.max_agents),
            None => (None, None),
        };
        if let Some(m) = &model {
            validate_text("config.model", m, 200)?;
        }
        if let Some(n) = max_agents {
            validate_max_agents(n)?;
        }
        let mut conn = self.conn().await?;
        let mut tx = conn.transaction().await?;
        let current = lock_swarm(&mut tx, id).await?;
        if current.status.is_terminal() {
            return Err(StoreError::Conflicting(format!(
                "cannot update a swarm that is {}",
                current.status.as_str()
            )));
        }
        let sql = format!(
            "UPDATE swarms SET name = coalesce($2, name), task = coalesce($3, task),
                 strategy = coalesce($4, strategy), model = coalesce($5, model),
                 max_agents = coalesce($6, max_agents), updated_at = now()
             WHERE id = $1 RETURNING {SWARM_COLUMNS}"
        );
        let row = tx
            .query_one(
                &sql,
                &[
                    &id,
                    &p.name,
                    &p.task,
                    &p.strategy.map(|s: Strategy| s.as_str()),
                    &model,
                    &max_agents.map(|n| n as i32),
                ],
            )
            .await?;
        let swarm = swarm_from_row(&row)?;
        emit(
            &mut tx,
            EventKind::SwarmUpdated,
            Some(id),
            None,
            serde_json::to_value(&p).unwrap_or_default(),
        )
        .await?;
        tx.commit().await?;
        Ok(swarm)
    }

    /// Pause, resume, complete, fail or destroy a swarm.
    pub async fn swarm_action(&self, id: Uuid, action: SwarmAction) -> Result<Swarm, StoreError> {
        let mut conn = self.conn().await?;
        let mut tx = conn.transaction().await?;
        if matches!(action, SwarmAction::Destroy | SwarmAction::Fail) {
            // Agents before their swarm, the order every agent call takes
            // (agent, then swarm), so ending a swarm cannot deadlock with them.
            tx.query(
                "SELECT id FROM agents WHERE swarm_id = $1 AND status IN ('pending', 'running', 'paused')
                 ORDER BY id FOR UPDATE",
                &[&id],
            )
            .await?;
        }
        let current = lock_swarm(&mut tx, id).await?;
        let next = swarm_transition(current.status, action)?;
        if action == SwarmAction::Resume
            && current.budget.allocated > 0.0
            && current.budget.consumed >= current.budget.allocated
        {
            return Err(StoreError::Conflicting(
                "cannot resume a swarm whose budget is exhausted; raise budget.allocated first"
                    .into(),
            ));
        }
        let sql = format!("UPDATE swarms SET status = $2, updated_at = now() WHERE id = $1 RETURNING {SWARM_COLUMNS}");
        let row = tx.query_one(&sql, &[&id, &next.as_str()]).await?;
        if matches!(action, SwarmAction::Destroy | SwarmAction::Fail) {
            // Work that can no longer finish is ended with its swarm.
            tx.execute(
                "UPDATE agents SET status = 'killed', completed_at = now(), updated_at = now()
                 WHERE swarm_id = $1 AND status IN ('pending', 'running', 'paused')",
                &[&id],
            )
            .await?;
        }
        emit(
            &mut tx,
            EventKind::for_swarm_action(action),
            Some(id),
            None,
            json!({ "from": current.status.as_str(), "to": next.as_str() }),
        )
        .await?;
        tx.commit().await?;
        swarm_from_row(&row)
    }

    /// Deletes a swarm and its agents; refuses while any of its agents is live.
    pub async fn delete_swarm(&self, id: Uuid) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        let mut tx = conn.transaction().await?;
        lock_swarm(&mut tx, id).await?;
        let live: i64 = tx
            .query_one(
                "SELECT count(*) FROM agents WHERE swarm_id = $1 AND status IN ('pending', 'running', 'paused')",
                &[&id],
            )
            .await?
            .get(0);
        if live > 0 {
            return Err(StoreError::Conflicting(format!(
                "swarm has {live} live agent(s); destroy it or kill them first"
            )));
        }
        tx.execute("DELETE FROM swarms WHERE id = $1", &[&id])
            .await?;
        emit(&mut tx, EventKind::SwarmDeleted, Some(id), None, json!({})).await?;
        tx.commit().await
    }

    /// Changes a swarm's budget and applies the budget rules at once: a
    /// level crossed upward writes its event, an exhausted budget pauses an
    /// active swarm. Raising `allocated` above what is consumed does not
    /// resume a paused swarm by itself: resuming is an explicit action.
    pub async fn patch_budget(&self, id: Uuid, p: BudgetPatch) -> Result<Swarm, StoreError> {
        if p.allocated.is_some() {
            money("allocated", p.allocated)?;
        }
        if let Some(c) = &p.currency {
            validate_currency(c)?;
        }
        let mut conn = self.conn().await?;
        let mut tx = conn.transaction().await?;
        let cur = lock_swarm(&mut tx, id).await?;
        let warning = p.warning_threshold.unwrap_or(cur.budget.warning_threshold);
        let critical = p
            .critical_threshold
            .unwrap_or(cur.budget.critical_threshold);
        validate_thresholds(warning, critical)?;
        let sql = format!(
            "UPDATE swarms SET budget_allocated = coalesce($2, budget_allocated),
                 budget_currency = coalesce($3, budget_currency), budget_warning = $4, budget_critical = $5,
                 updated_at = now()
             WHERE id = $1 RETURNING {SWARM_COLUMNS}"
        );
        let row = tx
            .query_one(&sql, &[&id, &p.allocated, &p.currency, &warning, &critical])
            .await?;
        let mut swarm = swarm_from_row(&row)?;
        emit(
            &mut tx,
            EventKind::BudgetUpdated,
            Some(id),
            None,
            serde_json::to_value(&p).unwrap_or_default(),
        )
        .await?;
        // A lower allocation can exhaust the budget as surely as a cost can.
        let (before, after) = (budget_of(&cur), budget_of(&swarm));
        if enforce(&mut tx, id, cur.status, &before, &after, None).await? {
            swarm = lock_swarm(&mut tx, id).await?;
        }
        tx.commit().await?;
        Ok(swarm)
    }

    /// Counts of swarms by status, for `dash_swarms{status}`.
    pub async fn count_swarms(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = self
            .conn()
            .await?
            .query("SELECT status, count(*) FROM swarms GROUP BY status", &[])
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}
