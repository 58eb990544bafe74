//! The kinds of entry in the append-only event log, and which kind each
//! lifecycle action or budget crossing records.

use crate::agent::{AgentAction, FailOutcome};
use crate::budget::BudgetLevel;
use crate::swarm::SwarmAction;

string_enum! {
    /// What an event records. The string form (`"agent.spawned"`) is what
    /// the log stores and the API returns.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum EventKind("event kind") {
        /// An agent was created.
        AgentSpawned => "agent.spawned",
        /// A worker started an agent.
        AgentStarted => "agent.started",
        /// An agent reported progress.
        AgentProgress => "agent.progress",
        /// An agent was paused.
        AgentPaused => "agent.paused",
        /// An agent was resumed.
        AgentResumed => "agent.resumed",
        /// An agent finished successfully.
        AgentCompleted => "agent.completed",
        /// An agent failed with no retries left.
        AgentFailed => "agent.failed",
        /// An agent failed and was queued for another attempt.
        AgentRetried => "agent.retried",
        /// An agent was killed.
        AgentKilled => "agent.killed",
        /// An agent was deleted.
        AgentDeleted => "agent.deleted",
        /// An agent reported a cost.
        AgentCost => "agent.cost",
        /// Lines an agent's runtime wrote: `{"stream": "stdout"|"stderr",
        /// "lines": [..]}`, in order, from the worker that runs it.
        AgentOutput => "agent.output",
        /// A worker's attempt was fenced out: its lease expired and the
        /// agent was reclaimed, or a report of an older attempt was
        /// rejected: `{"attempt", "reason"}`.
        AgentFenced => "agent.fenced",
        /// A swarm was created.
        SwarmCreated => "swarm.created",
        /// A swarm's settings changed.
        SwarmUpdated => "swarm.updated",
        /// A swarm was paused.
        SwarmPaused => "swarm.paused",
        /// A swarm was resumed.
        SwarmResumed => "swarm.resumed",
        /// A swarm finished successfully.
        SwarmCompleted => "swarm.completed",
        /// A swarm finished unsuccessfully.
        SwarmFailed => "swarm.failed",
        /// A swarm was destroyed.
        SwarmDestroyed => "swarm.destroyed",
        /// A swarm was deleted.
        SwarmDeleted => "swarm.deleted",
        /// A budget's allocation or thresholds changed.
        BudgetUpdated => "budget.updated",
        /// A budget reached its warning threshold.
        BudgetWarning => "budget.warning",
        /// A budget reached its critical threshold.
        BudgetCritical => "budget.critical",
        /// A budget was used up.
        BudgetExhausted => "budget.exhausted",
    }
}

impl EventKind {
    /// What the event is about: `"agent"`, `"swarm"` or `"budget"`.
    pub fn entity(&self) -> &'static str {
        let s = self.as_str();
        s.split_once('.').map_or(s, |(entity, _)| entity)
    }

    /// The event recorded when a swarm action succeeds.
    pub fn for_swarm_action(a: SwarmAction) -> EventKind {
        match a {
            SwarmAction::Pause => Self::SwarmPaused,
            SwarmAction::Resume => Self::SwarmResumed,
            SwarmAction::Complete => Self::SwarmCompleted,
            SwarmAction::Fail => Self::SwarmFailed,
            SwarmAction::Destroy => Self::SwarmDestroyed,
        }
    }

    /// The event recorded when an agent action succeeds. For `Fail` this is
    /// `agent.failed`; a failure that is retried records `agent.retried`
    /// instead (see [`EventKind::for_agent_failure`]).
    pub fn for_agent_action(a: AgentAction) -> EventKind {
        match a {
            AgentAction::Start => Self::AgentStarted,
            AgentAction::Pause => Self::AgentPaused,
            AgentAction::Resume => Self::AgentResumed,
            AgentAction::Complete => Self::AgentCompleted,
            AgentAction::Fail => Self::AgentFailed,
            AgentAction::Kill => Self::AgentKilled,
        }
    }

    /// The event recorded when a worker reports failure: `agent.retried`
    /// when the agent goes back for another attempt, `agent.failed`
    /// otherwise.
    pub fn for_agent_failure(outcome: &FailOutcome) -> EventKind {
        if outcome.will_retry {
            Self::AgentRetried
        } else {
            Self::AgentFailed
        }
    }

    /// The event recorded when a budget reaches `level`; none for `Normal`.
    pub fn for_budget_level(l: BudgetLevel) -> Option<EventKind> {
        match l {
            BudgetLevel::Normal => None,
            BudgetLevel::Warning => Some(Self::BudgetWarning),
            BudgetLevel::Critical => Some(Self::BudgetCritical),
            BudgetLevel::Exhausted => Some(Self::BudgetExhausted),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_are_entity_dot_verb() {
        for kind in EventKind::ALL {
            let s = kind.as_str();
            let (entity, verb) = s.split_once('.').expect("entity.verb");
            assert!(["agent", "swarm", "budget"].contains(&entity), "{s}");
            assert!(
                !verb.is_empty() && verb.chars().all(|c| c.is_ascii_lowercase()),
                "{s}"
            );
            assert_eq!(kind.entity(), entity);
            let variant = format!("{kind:?}").to_ascii_lowercase();
            assert_eq!(
                variant,
                s.replace('.', ""),
                "variant name matches its string"
            );
        }
        assert_eq!(EventKind::ALL.len(), 25);
    }

    #[test]
    fn serde_uses_the_dotted_string() {
        let json = serde_json::to_string(&EventKind::SwarmPaused).unwrap();
        assert_eq!(json, r#""swarm.paused""#);
        let back: EventKind = serde_json::from_str(r#""budget.warning""#).unwrap();
        assert_eq!(back, EventKind::BudgetWarning);
        let err = serde_json::from_str::<EventKind>(r#""swarm.exploded""#).unwrap_err();
        assert!(err.to_string().contains("unknown event kind"), "{err}");
    }

    #[test]
    fn actions_map_to_their_events() {
        for a in SwarmAction::ALL {
            let kind = EventKind::for_swarm_action(a);
            assert_eq!(kind.entity(), "swarm");
            // "pause" -> "swarm.paused", "destroy" -> "swarm.destroyed", ...
            assert!(kind.as_str()[6..].starts_with(a.as_str().trim_end_matches('e')));
        }
        for a in AgentAction::ALL {
            let kind = EventKind::for_agent_action(a);
            assert_eq!(kind.entity(), "agent");
            assert!(kind.as_str()[6..].starts_with(a.as_str().trim_end_matches('e')));
        }
        assert_eq!(
            EventKind::for_agent_action(AgentAction::Kill),
            EventKind::AgentKilled
        );
        assert_eq!(
            EventKind::for_agent_action(AgentAction::Start),
            EventKind::AgentStarted
        );
    }

    #[test]
    fn a_failure_records_retried_or_failed() {
        let retry = crate::agent_fail(crate::AgentStatus::Running, 0, 3).unwrap();
        assert_eq!(
            EventKind::for_agent_failure(&retry).as_str(),
            "agent.retried"
        );
        let out = crate::agent_fail(crate::AgentStatus::Running, 3, 3).unwrap();
        assert_eq!(EventKind::for_agent_failure(&out).as_str(), "agent.failed");
    }

    #[test]
    fn budget_levels_map_to_their_events() {
        let kinds: Vec<_> = BudgetLevel::ALL
            .into_iter()
            .map(EventKind::for_budget_level)
            .collect();
        assert_eq!(
            kinds,
            [
                None,
                Some(EventKind::BudgetWarning),
                Some(EventKind::BudgetCritical),
                Some(EventKind::BudgetExhausted)
            ]
        );
    }
}
