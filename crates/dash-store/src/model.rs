//! The stored shapes of swarms, agents and events as the API returns them,
//! and the inputs that create or change them.

use chrono::{DateTime, Utc};
use dash_core::{AgentStatus, Budget, BudgetLevel, Strategy, SwarmStatus};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SwarmConfig {
    pub model: String,
    pub max_agents: i32,
}

/// A budget as the API shows it: the stored numbers plus what follows from them.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Swarm {
    pub id: Uuid,
    pub name: String,
    pub task: String,
    pub strategy: Strategy,
    pub status: SwarmStatus,
    pub config: SwarmConfig,
    pub budget: BudgetView,
    #[serde(serialize_with = "crate::rfc3339::serialize")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::rfc3339::serialize")]
    pub updated_at: DateTime<Utc>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    #[serde(serialize_with = "crate::rfc3339::serialize")]
    pub spawned_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::rfc3339::option")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "crate::rfc3339::option")]
    pub completed_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "crate::rfc3339::serialize")]
    pub updated_at: DateTime<Utc>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    pub id: i64,
    /// Opaque, increasing in log order; pass it back as `after` to continue.
    pub cursor: String,
    #[cfg_attr(feature = "openapi", schema(value_type = dash_core::EventKind))]
    pub kind: String,
    pub swarm_id: Option<Uuid>,
    pub agent_id: Option<Uuid>,
    pub data: Value,
    #[serde(serialize_with = "crate::rfc3339::serialize")]
    pub created_at: DateTime<Utc>,
}

/// Input for a new budget; omitted fields take the documented defaults.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NewBudget {
    /// Spending limit; 0 means unlimited (the budget never warns, pauses or runs out).
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 1e12))]
    pub allocated: f64,
    /// ISO 4217 code; USD when none is given.
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[A-Z]{3}$"))]
    pub currency: Option<String>,
    /// A fraction of allocated, at most critical_threshold.
    #[cfg_attr(feature = "openapi", schema(exclusive_minimum = 0, maximum = 1))]
    pub warning_threshold: Option<f64>,
    #[cfg_attr(feature = "openapi", schema(exclusive_minimum = 0, maximum = 1))]
    pub critical_threshold: Option<f64>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NewSwarmConfig {
    #[cfg_attr(
        feature = "openapi",
        schema(max_length = 200, pattern = r"^[^\u0000]*$")
    )]
    pub model: Option<String>,
    #[serde(default, deserialize_with = "dash_core::integral::option")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 10000))]
    pub max_agents: Option<i64>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NewSwarm {
    /// Client-chosen id: creating the same id twice returns the first swarm.
    pub id: Option<Uuid>,
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 200,
            pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$"
        )
    )]
    pub name: String,
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(max_length = 100000, pattern = r"^[^\u0000]*$")
    )]
    pub task: String,
    pub strategy: Strategy,
    pub config: Option<NewSwarmConfig>,
    pub budget: Option<NewBudget>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SwarmPatch {
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 200,
            pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$"
        )
    )]
    pub name: Option<String>,
    #[cfg_attr(
        feature = "openapi",
        schema(max_length = 100000, pattern = r"^[^\u0000]*$")
    )]
    pub task: Option<String>,
    pub strategy: Option<Strategy>,
    pub config: Option<NewSwarmConfig>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetPatch {
    /// Spending limit; 0 means unlimited (the budget never warns, pauses or runs out).
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 1e12))]
    pub allocated: Option<f64>,
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[A-Z]{3}$"))]
    pub currency: Option<String>,
    #[cfg_attr(feature = "openapi", schema(exclusive_minimum = 0, maximum = 1))]
    pub warning_threshold: Option<f64>,
    #[cfg_attr(feature = "openapi", schema(exclusive_minimum = 0, maximum = 1))]
    pub critical_threshold: Option<f64>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NewAgent {
    /// Client-chosen id: spawning the same id twice returns the first agent.
    pub id: Option<Uuid>,
    pub swarm_id: Option<Uuid>,
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 100000,
            pattern = r"^[^\u0000]*\S[^\u0000]*$"
        )
    )]
    pub task: String,
    #[cfg_attr(
        feature = "openapi",
        schema(max_length = 200, pattern = r"^[^\u0000]*$")
    )]
    pub model: Option<String>,
    #[serde(default, deserialize_with = "dash_core::integral::option")]
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 100))]
    pub max_retries: Option<i64>,
    pub metadata: Option<Value>,
}

/// A worker's progress report: progress in [0, 1] and cost incurred since the last report.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProgressReport {
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 1))]
    pub progress: Option<f64>,
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 1e12))]
    pub cost: Option<f64>,
    #[cfg_attr(
        feature = "openapi",
        schema(max_length = 10000, pattern = r"^[^\u0000]*$")
    )]
    pub message: Option<String>,
}

/// Completion or failure report from a worker.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Outcome {
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 1e12))]
    pub cost: Option<f64>,
    #[cfg_attr(
        feature = "openapi",
        schema(max_length = 10000, pattern = r"^[^\u0000]*$")
    )]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
