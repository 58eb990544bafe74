//! Dash's domain: swarms, agents, budgets, events and pagination as plain
//! types and pure state machines. No I/O lives here; `dash-store` and
//! `dash-api` build on it.

#[macro_use]
mod macros;

pub mod agent;
pub mod bearer;
pub mod budget;
pub mod error;
pub mod event;
pub mod integral;
pub mod page;
pub mod swarm;
pub mod validate;

pub use agent::{
    agent_fail, agent_transition, AgentAction, AgentStatus, FailOutcome, DEFAULT_MAX_RETRIES,
};
pub use budget::{
    Budget, BudgetLevel, CostOutcome, DEFAULT_CRITICAL_THRESHOLD, DEFAULT_CURRENCY,
    DEFAULT_WARNING_THRESHOLD,
};
pub use error::{error_causes, error_chain, ParseEnumError, TransitionError};
pub use event::EventKind;
pub use page::Cursor;
pub use swarm::{swarm_transition, Strategy, SwarmAction, SwarmStatus};
pub use validate::{
    validate_currency, validate_max_agents, validate_max_retries, validate_money, validate_name,
    validate_text, validate_threshold, validate_thresholds, ValidationError,
};
