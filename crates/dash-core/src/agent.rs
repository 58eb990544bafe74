//! Agents: the lifecycle state machine ([`AgentStatus`], [`AgentAction`],
//! [`agent_transition`]) and the retry policy applied when a worker reports
//! failure ([`agent_fail`]).

use crate::error::TransitionError;

/// How many times a failed agent is retried unless its swarm says otherwise.
pub const DEFAULT_MAX_RETRIES: i32 = 3;

string_enum! {
    /// Where an agent is in its lifecycle.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum AgentStatus("agent status") {
        /// Waiting for a worker to start it (new, or queued for a retry).
        Pending => "pending",
        /// A worker is running it.
        Running => "running",
        /// Suspended; can resume.
        Paused => "paused",
        /// Finished successfully.
        Completed => "completed",
        /// Failed and out of retries.
        Failed => "failed",
        /// Stopped by an operator.
        Killed => "killed",
    }
}

string_enum! {
    /// Something a worker or an operator does to an agent.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum AgentAction("agent action") {
        /// Pending -> Running.
        Start => "start",
        /// Running -> Paused.
        Pause => "pause",
        /// Paused -> Running.
        Resume => "resume",
        /// Running -> Completed.
        Complete => "complete",
        /// Running -> Pending (retry) or Failed; see [`agent_fail`].
        Fail => "fail",
        /// Pending | Running | Paused -> Killed.
        Kill => "kill",
    }
}

impl AgentStatus {
    /// Whether the agent is finished: `Completed`, `Failed` or `Killed`.
    /// No action is accepted from a terminal status.
    pub fn is_terminal(&self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Killed)
    }

    /// The actions [`agent_transition`] accepts from this status, in
    /// declaration order.
    pub fn allowed_actions(&self) -> Vec<AgentAction> {
        AgentAction::ALL
            .into_iter()
            .filter(|a| agent_transition(*self, *a).is_ok())
            .collect()
    }
}

/// Applies `action` to an agent in status `from` and returns the new status.
///
/// The rules:
/// - `Pending` --start--> `Running`
/// - `Running` --pause--> `Paused`, `Paused` --resume--> `Running`
/// - `Running` --complete--> `Completed`
/// - `Running` --fail--> `Failed` (the outcome with no retries left; use
///   [`agent_fail`] to apply the retry policy)
/// - `Pending | Running | Paused` --kill--> `Killed`
///
/// Everything else is an error.
pub fn agent_transition(
    from: AgentStatus,
    action: AgentAction,
) -> Result<AgentStatus, TransitionError> {
    use AgentAction as A;
    use AgentStatus as S;

    match (from, action) {
        (S::Pending, A::Start) => Ok(S::Running),
        (S::Running, A::Pause) => Ok(S::Paused),
        (S::Paused, A::Resume) => Ok(S::Running),
        (S::Running, A::Complete) => Ok(S::Completed),
        (S::Running, A::Fail) => Ok(S::Failed),
        (S::Pending | S::Running | S::Paused, A::Kill) => Ok(S::Killed),
        _ => Err(TransitionError {
            entity: "agent",
            action: action.as_str(),
            current: from.as_str(),
        }),
    }
}

/// What happens to an agent whose worker reported failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailOutcome {
    /// `Pending` when it will be retried, `Failed` otherwise.
    pub status: AgentStatus,
    /// The retry count to store: one more than before when retrying,
    /// unchanged otherwise.
    pub retry_count: i32,
    /// Whether the agent goes back to `Pending` for another attempt.
    pub will_retry: bool,
}

/// A worker reports that a running agent failed.
///
/// If `retry_count < max_retries` the agent goes back to `Pending` with
/// `retry_count + 1`; otherwise it ends `Failed`. A `max_retries` of 0 (or
/// less) means never retry. Only a `Running` agent can fail.
pub fn agent_fail(
    from: AgentStatus,
    retry_count: i32,
    max_retries: i32,
) -> Result<FailOutcome, TransitionError> {
    agent_transition(from, AgentAction::Fail)?;
    // retry_count < max_retries <= i32::MAX, so the increment cannot overflow.
    Ok(if retry_count < max_retries {
        FailOutcome {
            status: AgentStatus::Pending,
            retry_count: retry_count + 1,
            will_retry: true,
        }
    } else {
        FailOutcome {
            status: AgentStatus::Failed,
            retry_count,
            will_retry: false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use AgentAction as A;
    use AgentStatus as S;

    /// The expected outcome of every (status, action) pair, written out by
    /// hand so the table is checked independently of the implementation.
    /// Columns: start, pause, resume, complete, fail, kill; `None` means rejected.
    #[rustfmt::skip]
    const TABLE: [(S, [Option<S>; 6]); 6] = [
        (S::Pending,   [Some(S::Running), None,            None,             None,               None,            Some(S::Killed)]),
        (S::Running,   [None,             Some(S::Paused), None,             Some(S::Completed), Some(S::Failed), Some(S::Killed)]),
        (S::Paused,    [None,             None,            Some(S::Running), None,               None,            Some(S::Killed)]),
        (S::Completed, [None,             None,            None,             None,               None,            None]),
        (S::Failed,    [None,             None,            None,             None,               None,            None]),
        (S::Killed,    [None,             None,            None,             None,               None,            None]),
    ];

    #[test]
    fn transition_table_is_exactly_as_specified() {
        assert_eq!(TABLE.map(|(from, _)| from), S::ALL, "one row per status");
        for (from, row) in TABLE {
            for (action, expected) in A::ALL.into_iter().zip(row) {
                let got = agent_transition(from, action);
                match expected {
                    Some(to) => assert_eq!(got, Ok(to), "{from} --{action}-->"),
                    None => {
                        let err = got.expect_err(&format!("{from} --{action}--> should fail"));
                        let fields = (err.entity, err.action, err.current);
                        assert_eq!(fields, ("agent", action.as_str(), from.as_str()));
                    }
                }
            }
        }
    }

    #[test]
    fn rejected_transition_explains_itself() {
        let err = agent_transition(S::Completed, A::Start).unwrap_err();
        assert_eq!(err.to_string(), "cannot start an agent that is completed");
    }

    #[test]
    fn terminal_statuses() {
        let terminal: Vec<_> = S::ALL.into_iter().filter(S::is_terminal).collect();
        assert_eq!(terminal, [S::Completed, S::Failed, S::Killed]);
        assert!(terminal.iter().all(|s| s.allowed_actions().is_empty()));
    }

    #[test]
    fn failure_retries_until_max_then_fails() {
        let retry = agent_fail(S::Running, 0, DEFAULT_MAX_RETRIES).unwrap();
        assert_eq!(
            retry,
            FailOutcome {
                status: S::Pending,
                retry_count: 1,
                will_retry: true
            }
        );

        let last = agent_fail(S::Running, 2, 3).unwrap();
        assert_eq!((last.status, last.retry_count), (S::Pending, 3));

        let out = agent_fail(S::Running, 3, 3).unwrap();
        assert_eq!(
            out,
            FailOutcome {
                status: S::Failed,
                retry_count: 3,
                will_retry: false
            }
        );
    }

    #[test]
    fn zero_max_retries_fails_at_once() {
        assert_eq!(agent_fail(S::Running, 0, 0).unwrap().status, S::Failed);
    }

    #[test]
    fn failure_only_from_running() {
        for from in S::ALL.into_iter().filter(|s| *s != S::Running) {
            let err = agent_fail(from, 0, 3).unwrap_err();
            assert_eq!(err.action, "fail");
        }
    }

    #[test]
    fn retry_count_near_limit_does_not_overflow() {
        let out = agent_fail(S::Running, i32::MAX - 1, i32::MAX).unwrap();
        assert_eq!(out.retry_count, i32::MAX);
        assert!(
            !agent_fail(S::Running, i32::MAX, i32::MAX)
                .unwrap()
                .will_retry
        );
    }
}
