//! A sequence behind its column (scenario 2's aftermath: the runbook's raw
//! `pg_restore` into a live database rewinds sequences): inserts fail with a
//! duplicate key until it passes the column's maximum.

use crate::situation::{Finding, Signals, Situation};

/// Every sequence whose next value its column already holds, with the SQL
/// that moves it past (or a restore, which does it for every sequence).
pub(super) fn behind(s: &Signals) -> Option<Finding> {
    let behind: Vec<_> = s.sequences.iter().filter(|q| q.behind()).collect();
    if behind.is_empty() {
        return None;
    }
    let mut fix: Vec<String> = behind.iter().map(|q| q.fix_command()).collect();
    fix.push("dashctl verify   # the smoke test writes again".into());
    Some(Finding {
        situation: Situation::Corruption,
        evidence: behind.iter().map(|q| q.describe()).collect(),
        fix,
    })
}

#[cfg(test)]
mod tests {
    use super::super::classify;
    use super::super::tests::{node, steady};
    use crate::probe::NodeRole;
    use crate::sequences::SequenceState;
    use crate::situation::Situation;

    #[test]
    fn a_rewound_sequence_is_scenario_2_with_the_setval_that_fixes_it() {
        let mut s = steady(vec![node(0, Some(NodeRole::Primary))]);
        let seq = |next, max| SequenceState {
            sequence: "public.events_id_seq".into(),
            column: "public.events.id".into(),
            next_value: next,
            column_edge: Some(max),
            increment: 1,
            fix_sql: "SELECT setval('public.events_id_seq', max(id)) FROM public.events".into(),
        };
        s.sequences = vec![seq(121, 120)];
        assert!(classify(&s).is_empty(), "ahead of its column: healthy");
        s.sequences = vec![seq(5, 120)];
        let f = classify(&s);
        assert_eq!(f[0].situation, Situation::Corruption);
        assert!(f[0].evidence[0].contains("public.events_id_seq hands out 5 next"));
        assert_eq!(
            f[0].fix[0],
            "dashctl psql -- -c \"SELECT setval('public.events_id_seq', max(id)) FROM public.events\""
        );
    }
}
