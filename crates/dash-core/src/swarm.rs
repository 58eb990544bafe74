//! Swarms: how a swarm coordinates its agents ([`Strategy`]) and the
//! lifecycle state machine ([`SwarmStatus`], [`SwarmAction`],
//! [`swarm_transition`]).

use crate::error::TransitionError;

string_enum! {
    /// How a swarm divides work among its agents.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum Strategy("strategy") {
        /// Agents work independently on the same kind of task.
        Parallel => "parallel",
        /// Mappers work on shards; a reducer combines their results.
        MapReduce => "map-reduce",
        /// Each agent's output feeds the next.
        Pipeline => "pipeline",
        /// Agents spawn and supervise sub-agents.
        Tree => "tree",
    }
}

string_enum! {
    /// Where a swarm is in its lifecycle.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum SwarmStatus("swarm status") {
        /// Running; agents may be spawned and scheduled.
        Active => "active",
        /// Stopped by an operator or by an exhausted budget; can resume.
        Paused => "paused",
        /// Finished successfully.
        Completed => "completed",
        /// Finished unsuccessfully.
        Failed => "failed",
        /// Torn down; nothing further can happen to it.
        Destroyed => "destroyed",
    }
}

string_enum! {
    /// Something an operator (or the budget) asks a swarm to do.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum SwarmAction("swarm action") {
        /// Active -> Paused.
        Pause => "pause",
        /// Paused -> Active.
        Resume => "resume",
        /// Active | Paused -> Completed.
        Complete => "complete",
        /// Active | Paused -> Failed.
        Fail => "fail",
        /// Any status but Destroyed -> Destroyed.
        Destroy => "destroy",
    }
}

impl SwarmStatus {
    /// Whether the swarm has finished: `Completed`, `Failed` or `Destroyed`.
    ///
    /// A finished swarm never becomes active again; the only move left to
    /// `Completed` and `Failed` is `Destroy`, which stays terminal.
    pub fn is_terminal(&self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Destroyed)
    }

    /// The actions [`swarm_transition`] accepts from this status, in
    /// declaration order. Handy for showing buttons or CLI hints.
    pub fn allowed_actions(&self) -> Vec<SwarmAction> {
        SwarmAction::ALL
            .into_iter()
            .filter(|a| swarm_transition(*self, *a).is_ok())
            .collect()
    }
}

/// Applies `action` to a swarm in status `from` and returns the new status.
///
/// The rules:
/// - `Active` --pause--> `Paused`, `Paused` --resume--> `Active`
/// - `Active | Paused` --complete--> `Completed`
/// - `Active | Paused` --fail--> `Failed`
/// - any status but `Destroyed` --destroy--> `Destroyed`
///
/// Everything else, including repeating an action that already took effect
/// (pausing a paused swarm), is an error; idempotency belongs to callers.
pub fn swarm_transition(
    from: SwarmStatus,
    action: SwarmAction,
) -> Result<SwarmStatus, TransitionError> {
    use SwarmAction as A;
    use SwarmStatus as S;

    match (from, action) {
        (S::Active, A::Pause) => Ok(S::Paused),
        (S::Paused, A::Resume) => Ok(S::Active),
        (S::Active | S::Paused, A::Complete) => Ok(S::Completed),
        (S::Active | S::Paused, A::Fail) => Ok(S::Failed),
        (S::Active | S::Paused | S::Completed | S::Failed, A::Destroy) => Ok(S::Destroyed),
        _ => Err(TransitionError {
            entity: "swarm",
            action: action.as_str(),
            current: from.as_str(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use SwarmAction as A;
    use SwarmStatus as S;

    /// The expected outcome of every (status, action) pair, written out by
    /// hand so the table is checked independently of the implementation.
    /// Columns: pause, resume, complete, fail, destroy; `None` means rejected.
    #[rustfmt::skip]
    const TABLE: [(S, [Option<S>; 5]); 5] = [
        (S::Active,    [Some(S::Paused), None,            Some(S::Completed), Some(S::Failed), Some(S::Destroyed)]),
        (S::Paused,    [None,            Some(S::Active), Some(S::Completed), Some(S::Failed), Some(S::Destroyed)]),
        (S::Completed, [None,            None,            None,               None,            Some(S::Destroyed)]),
        (S::Failed,    [None,            None,            None,               None,            Some(S::Destroyed)]),
        (S::Destroyed, [None,            None,            None,               None,            None]),
    ];

    #[test]
    fn transition_table_is_exactly_as_specified() {
        assert_eq!(TABLE.map(|(from, _)| from), S::ALL, "one row per status");
        for (from, row) in TABLE {
            for (action, expected) in A::ALL.into_iter().zip(row) {
                let got = swarm_transition(from, action);
                match expected {
                    Some(to) => assert_eq!(got, Ok(to), "{from} --{action}-->"),
                    None => {
                        let err = got.expect_err(&format!("{from} --{action}--> should fail"));
                        let fields = (err.entity, err.action, err.current);
                        assert_eq!(fields, ("swarm", action.as_str(), from.as_str()));
                    }
                }
            }
        }
    }

    #[test]
    fn rejected_transition_explains_itself() {
        let err = swarm_transition(S::Active, A::Resume).unwrap_err();
        assert_eq!(err.to_string(), "cannot resume a swarm that is active");
    }

    #[test]
    fn terminal_statuses() {
        let terminal: Vec<_> = S::ALL.into_iter().filter(S::is_terminal).collect();
        assert_eq!(terminal, [S::Completed, S::Failed, S::Destroyed]);
    }

    #[test]
    fn allowed_actions_follow_the_table() {
        assert_eq!(
            S::Paused.allowed_actions(),
            [A::Resume, A::Complete, A::Fail, A::Destroy]
        );
        assert!(S::Destroyed.allowed_actions().is_empty());
    }

    #[test]
    fn strategy_spellings() {
        let spelled: Vec<_> = Strategy::ALL.iter().map(Strategy::as_str).collect();
        assert_eq!(spelled, ["parallel", "map-reduce", "pipeline", "tree"]);
        assert_eq!(
            serde_json::to_string(&Strategy::MapReduce).unwrap(),
            r#""map-reduce""#
        );
        let err = "mapreduce".parse::<Strategy>().unwrap_err();
        assert!(err
            .to_string()
            .contains("parallel, map-reduce, pipeline, tree"));
    }
}
