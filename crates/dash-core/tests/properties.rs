//! Property tests for the state machines, budget arithmetic, cursors and
//! enum spellings, exercised through the public API only.

use dash_core::page::Cursor;
use dash_core::{
    agent_fail, agent_transition, swarm_transition, AgentAction, AgentStatus, Budget, BudgetLevel,
    EventKind, SwarmAction, SwarmStatus,
};
use proptest::prelude::*;
use proptest::sample::select;

fn swarm_action() -> impl Strategy<Value = SwarmAction> {
    select(SwarmAction::ALL.to_vec())
}

fn agent_action() -> impl Strategy<Value = AgentAction> {
    select(AgentAction::ALL.to_vec())
}

/// A valid budget: unlimited about one time in five, thresholds ordered.
fn budget() -> impl Strategy<Value = Budget> {
    (
        prop_oneof![1 => Just(0.0), 4 => 0.01f64..1e6],
        0.0f64..1.5,
        0.01f64..=1.0,
        0.01f64..=1.0,
    )
        .prop_map(|(allocated, used, a, b)| Budget {
            allocated,
            consumed: allocated * used,
            currency: "USD".into(),
            warning_threshold: a.min(b),
            critical_threshold: a.max(b),
        })
}

/// Enum round trips: parse(as_str(x)) == x, and serde agrees with as_str.
macro_rules! roundtrip_props {
    ($($test:ident: $ty:ty),+ $(,)?) => {
        proptest! {
            $(
                #[test]
                fn $test(x in select(<$ty>::ALL.to_vec())) {
                    prop_assert_eq!(x.as_str().parse::<$ty>(), Ok(x));
                    prop_assert_eq!(x.to_string(), x.as_str());
                    let json = serde_json::to_string(&x).unwrap();
                    prop_assert_eq!(&json, &format!("\"{}\"", x.as_str()));
                    prop_assert_eq!(serde_json::from_str::<$ty>(&json).unwrap(), x);
                }
            )+
        }
    };
}

roundtrip_props! {
    strategy_roundtrips: dash_core::Strategy,
    swarm_status_roundtrips: SwarmStatus,
    swarm_action_roundtrips: SwarmAction,
    agent_status_roundtrips: AgentStatus,
    agent_action_roundtrips: AgentAction,
    budget_level_roundtrips: BudgetLevel,
    event_kind_roundtrips: EventKind,
}

proptest! {
    #[test]
    fn swarm_never_leaves_terminal(actions in prop::collection::vec(swarm_action(), 0..40)) {
        let mut status = SwarmStatus::Active;
        for action in actions {
            let was_terminal = status.is_terminal();
            if let Ok(next) = swarm_transition(status, action) {
                prop_assert!(!was_terminal || next.is_terminal(), "{status} --{action}--> {next}");
                status = next;
            }
        }
    }

    #[test]
    fn destroyed_swarm_accepts_nothing(action in swarm_action()) {
        prop_assert!(swarm_transition(SwarmStatus::Destroyed, action).is_err());
    }

    #[test]
    fn agent_never_leaves_terminal(
        steps in prop::collection::vec((agent_action(), any::<bool>()), 0..40),
        max_retries in 0i32..5,
    ) {
        let mut status = AgentStatus::Pending;
        let mut retries = 0;
        for (action, use_retry_policy) in steps {
            if status.is_terminal() {
                prop_assert!(agent_transition(status, action).is_err());
                prop_assert!(agent_fail(status, retries, max_retries).is_err());
                continue;
            }
            if action == AgentAction::Fail && use_retry_policy {
                if let Ok(out) = agent_fail(status, retries, max_retries) {
                    prop_assert!(out.retry_count <= max_retries.max(retries));
                    status = out.status;
                    retries = out.retry_count;
                }
            } else if let Ok(next) = agent_transition(status, action) {
                status = next;
            }
        }
    }

    #[test]
    fn apply_cost_is_monotonic_and_reports_new_levels_once(
        start in budget(),
        costs in prop::collection::vec(prop_oneof![0.0f64..1e3, 0.0f64..1e6], 1..20),
    ) {
        let mut b = start;
        let mut seen = vec![b.level()];
        for cost in costs {
            let before = b.level();
            let out = b.apply_cost(cost).unwrap();
            prop_assert!(out.budget.consumed >= b.consumed);
            let after = out.budget.level();
            prop_assert!(after >= before);
            prop_assert!(out.crossed.windows(2).all(|w| w[0] < w[1]), "{:?}", out.crossed);
            for level in &out.crossed {
                prop_assert!(*level > before && *level <= after);
                prop_assert!(!seen.contains(level), "{level} reported twice");
                seen.push(*level);
            }
            // Every level between the old and the new one is reported.
            let expected = BudgetLevel::ALL.iter().filter(|l| **l > before && **l <= after).count();
            prop_assert_eq!(out.crossed.len(), expected);
            prop_assert_eq!(out.exhausted, after == BudgetLevel::Exhausted);
            b = out.budget;
        }
    }

    #[test]
    fn cursor_roundtrips(key in any::<String>(), id in any::<u128>()) {
        let cursor = Cursor::new(key, uuid::Uuid::from_u128(id));
        let token = cursor.encode();
        prop_assert!(token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        prop_assert_eq!(Cursor::decode(&token), Ok(cursor));
    }

    #[test]
    fn cursor_decode_never_panics(s in any::<String>()) {
        let _ = Cursor::decode(&s);
    }

    #[test]
    fn cursor_decode_never_panics_on_base64ish(s in "[A-Za-z0-9_-]{0,200}") {
        if let Ok(cursor) = Cursor::decode(&s) {
            // Whatever decodes re-encodes to the same token: tokens are canonical.
            prop_assert_eq!(cursor.encode(), s);
        }
    }

    #[test]
    fn tampered_cursor_is_rejected_or_different(
        key in "[a-z0-9:-]{0,40}",
        flip in any::<prop::sample::Index>(),
    ) {
        let cursor = Cursor::new(key, uuid::Uuid::nil());
        let mut token = cursor.encode().into_bytes();
        let i = flip.index(token.len());
        token[i] = if token[i] == b'A' { b'B' } else { b'A' };
        let token = String::from_utf8(token).unwrap();
        if let Ok(other) = Cursor::decode(&token) {
            prop_assert_ne!(other, cursor);
        }
    }
}
