//! The stored shapes of swarms, agents and events as the API returns them,
//! and the inputs that create or change them.

use chrono::{DateTime, Utc};
use dash_core::{AgentStatus, Budget, BudgetLevel, Strategy, SwarmStatus};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SwarmConfig {
    pub model: String,
    pub max_agents: i32,
}

/// A budget as the API shows it: the stored numbers plus what follows from them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BudgetView {
    pub allocated: f64,
    pub consumed: f64,
    pub currency: String,
    pub warning_threshold: f64,
    pub critical_threshold: f64,
    /// `null` when the budget is unlimited (`allocated` is 0).
    pub remaining: Option<f64>,
    pub utilization: f64,
    pub level: BudgetLevel,
}

impl From<&Budget> for BudgetView {
    fn from(b: &Budget) -> Self {
        BudgetView {
            allocated: b.allocated,
            consumed: b.consumed,
            currency: b.currency.clone(),
            warning_threshold: b.warning_threshold,
            critical_threshold: b.critical_threshold,
            remaining: (!b.is_unlimited()).then(|| b.remaining()),
            utilization: b.utilization(),
            level: b.level(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Swarm {
    pub id: Uuid,
    pub name: String,
    pub task: String,
    pub strategy: Strategy,
    pub status: SwarmStatus,
    pub config: SwarmConfig,
    pub budget: BudgetView,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Agent {
    pub id: Uuid,
    pub swarm_id: Option<Uuid>,
    pub task: String,
    pub model: String,
    pub status: AgentStatus,
    pub retry_count: i32,
    pub max_retries: i32,
    pub progress: f64,
    pub cost: f64,
    pub last_error: Option<String>,
    pub metadata: Value,
    pub spawned_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    pub id: i64,
    /// Opaque, increasing in log order; pass it back as `after` to continue.
    pub cursor: String,
    pub kind: String,
    pub swarm_id: Option<Uuid>,
    pub agent_id: Option<Uuid>,
    pub data: Value,
    pub created_at: DateTime<Utc>,
}

/// Input for a new budget; omitted fields take the documented defaults.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NewBudget {
    pub allocated: f64,
    pub currency: Option<String>,
    pub warning_threshold: Option<f64>,
    pub critical_threshold: Option<f64>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NewSwarmConfig {
    pub model: Option<String>,
    #[serde(default, deserialize_with = "dash_core::integral::option")]
    pub max_agents: Option<i64>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NewSwarm {
    /// Client-chosen id: creating the same id twice returns the first swarm.
    pub id: Option<Uuid>,
    pub name: String,
    #[serde(default)]
    pub task: String,
    pub strategy: Strategy,
    pub config: Option<NewSwarmConfig>,
    pub budget: Option<NewBudget>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SwarmPatch {
    pub name: Option<String>,
    pub task: Option<String>,
    pub strategy: Option<Strategy>,
    pub config: Option<NewSwarmConfig>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetPatch {
    pub allocated: Option<f64>,
    pub currency: Option<String>,
    pub warning_threshold: Option<f64>,
    pub critical_threshold: Option<f64>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NewAgent {
    /// Client-chosen id: spawning the same id twice returns the first agent.
    pub id: Option<Uuid>,
    pub swarm_id: Option<Uuid>,
    pub task: String,
    pub model: Option<String>,
    #[serde(default, deserialize_with = "dash_core::integral::option")]
    pub max_retries: Option<i64>,
    pub metadata: Option<Value>,
}

/// A worker's progress report: progress in [0, 1] and cost incurred since the last report.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProgressReport {
    pub progress: Option<f64>,
    pub cost: Option<f64>,
    pub message: Option<String>,
}

/// Completion or failure report from a worker.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Outcome {
    pub cost: Option<f64>,
    pub error: Option<String>,
    pub result: Option<Value>,
}

/// Sort direction of a list (by creation time, then id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    #[default]
    Asc,
    Desc,
}

/// One page of a list and the cursor of the next page, if there is one.
#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// The result of a create: 201 for a new object, 200 for a replay.
#[derive(Debug, Clone)]
pub struct Created {
    pub status: u16,
    pub body: Value,
    pub replayed: bool,
}
