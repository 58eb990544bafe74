//! The leader's synchronous standby set (Patroni's `synchronous_mode`): the
//! `sync` key in etcd and PostgreSQL's `synchronous_standby_names` change
//! only in an order that keeps "every recorded standby holds every
//! acknowledged write" true at every instant:
//! - shrink: record the smaller set in etcd first, then change the server;
//! - grow: change the server first, and record the standby only once it
//!   acknowledges commits (`sync_state = 'sync'`) and has flushed everything
//!   written before the change;
//! - async (no standby to wait for): recorded in etcd as an empty set before
//!   the server stops waiting, so nobody can then be promoted by the rules.
//!
//! One step per tick; pure, so it is unit-tested.

use dash_dcs::SyncState;

use crate::local::StandbyRow;

/// A standby whose commit acknowledgements stopped for this long is lost.
pub const LOST_AFTER_MS: u64 = 600;
/// A standby that has not replied for this long is lost (it replies at least
/// every `wal_receiver_status_interval` = 1 s).
pub const SILENT_AFTER_MS: u64 = 2500;

/// The next change to the sync set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncStep {
    /// Record this set in etcd (a shrink, or a growth that is now safe).
    Record(Vec<String>),
    /// Set `synchronous_standby_names` to these (empty: none).
    Server(Vec<String>),
    None,
}

/// What the leader sees.
pub struct SyncFacts<'a> {
    pub me: &'a str,
    pub synchronous: bool,
    /// The recorded set (only if it is ours).
    pub recorded: Option<&'a SyncState>,
    /// The names in `synchronous_standby_names` now.
    pub server: &'a [String],
    pub standbys: &'a [StandbyRow],
    pub syncrep_wait_ms: u64,
    /// The primary's LSN when the server's set last grew.
    pub grew_at_lsn: Option<u64>,
    /// Members whose agents are alive (their member key exists).
    pub members: &'a [String],
}

fn healthy(row: &StandbyRow, waiting_ms: u64) -> bool {
    row.streaming && row.reply_age_ms < SILENT_AFTER_MS && !(row.sync && waiting_ms > LOST_AFTER_MS)
}

/// Decides one step.
pub fn next_step(f: &SyncFacts) -> SyncStep {
    let recorded: Vec<String> = f
        .recorded
        .filter(|s| s.leader == f.me)
        .map(|s| s.standbys.clone())
        .unwrap_or_default();
    let healthy_names: Vec<&str> = f
        .standbys
        .iter()
        .filter(|r| healthy(r, f.syncrep_wait_ms) && f.members.contains(&r.name))
        .map(|r| r.name.as_str())
        .collect();

    if !f.synchronous {
        // Asynchronous mode: any healthy streaming standby may be promoted
        // (and may lose the newest writes: the exposure chaos reports).
        let mut want: Vec<String> = healthy_names.iter().map(|s| s.to_string()).collect();
        want.sort();
        if !f.server.is_empty() {
            return SyncStep::Server(Vec::new());
        }
        return if want != recorded || f.recorded.is_none_or(|s| s.leader != f.me) {
            SyncStep::Record(want)
        } else {
            SyncStep::None
        };
    }

    // Shrink first: a recorded standby that is no longer healthy leaves the
    // record before the server stops waiting for it.
    let keep: Vec<String> = recorded
        .iter()
        .filter(|n| healthy_names.contains(&n.as_str()))
        .cloned()
        .collect();
    if keep != recorded {
        return SyncStep::Record(keep);
    }
    // The server waits only for recorded standbys, or for one being added.
    if let Some(current) = f.server.first() {
        if !healthy_names.contains(&current.as_str()) {
            return SyncStep::Server(Vec::new());
        }
        if recorded.is_empty() {
            // Growing: record it once it acknowledges and has caught up.
            let row = f.standbys.iter().find(|r| &r.name == current);
            let caught_up =
                row.is_some_and(|r| r.sync && f.grew_at_lsn.is_some_and(|lsn| r.flush_lsn >= lsn));
            return if caught_up {
                SyncStep::Record(vec![current.clone()])
            } else {
                SyncStep::None
            };
        }
        return SyncStep::None;
    }
    if !recorded.is_empty() {
        // Recorded but the server does not wait for it (after a restart):
        // make the server wait again.
        return SyncStep::Server(recorded);
    }
    if f.recorded.is_none_or(|s| s.leader != f.me) {
        // Our own record (empty: asynchronous until a standby catches up).
        return SyncStep::Record(Vec::new());
    }
    match healthy_names.first() {
        Some(name) => SyncStep::Server(vec![name.to_string()]),
        None => SyncStep::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, streaming: bool, sync: bool, flush: u64) -> StandbyRow {
        StandbyRow {
            name: name.into(),
            streaming,
            sync,
            flush_lsn: flush,
            reply_age_ms: 100,
        }
    }

    fn facts<'a>(
        recorded: Option<&'a SyncState>,
        server: &'a [String],
        standbys: &'a [StandbyRow],
        members: &'a [String],
    ) -> SyncFacts<'a> {
        SyncFacts {
            me: "a",
            synchronous: true,
            recorded,
            server,
            standbys,
            syncrep_wait_ms: 0,
            grew_at_lsn: Some(100),
            members,
        }
    }

    fn state(standbys: &[&str]) -> SyncState {
        SyncState {
            leader: "a".into(),
            standbys: standbys.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn a_lost_standby_leaves_the_record_before_the_server_stops_waiting() {
        let rec = state(&["b"]);
        let server = vec!["b".to_string()];
        let members = vec!["a".to_string(), "b".to_string()];
        let rows = vec![row("b", false, true, 50)];
        assert_eq!(
            next_step(&facts(Some(&rec), &server, &rows, &members)),
            SyncStep::Record(vec![])
        );
        // Once recorded as asynchronous, the server stops waiting.
        let rec = state(&[]);
        assert_eq!(
            next_step(&facts(Some(&rec), &server, &rows, &members)),
            SyncStep::Server(vec![])
        );
    }

    #[test]
    fn a_standby_is_recorded_only_after_it_acknowledges_and_caught_up() {
        let rec = state(&[]);
        let members = vec!["a".to_string(), "b".to_string()];
        let rows = vec![row("b", true, false, 10)];
        assert_eq!(
            next_step(&facts(Some(&rec), &[], &rows, &members)),
            SyncStep::Server(vec!["b".into()])
        );
        let server = vec!["b".to_string()];
        // Not yet sync: nothing recorded.
        assert_eq!(
            next_step(&facts(Some(&rec), &server, &rows, &members)),
            SyncStep::None
        );
        // Sync but behind the LSN of the change: still nothing.
        let rows = vec![row("b", true, true, 99)];
        assert_eq!(
            next_step(&facts(Some(&rec), &server, &rows, &members)),
            SyncStep::None
        );
        let rows = vec![row("b", true, true, 100)];
        assert_eq!(
            next_step(&facts(Some(&rec), &server, &rows, &members)),
            SyncStep::Record(vec!["b".into()])
        );
    }

    #[test]
    fn commits_stuck_on_the_standby_count_as_lost() {
        let rec = state(&["b"]);
        let server = vec!["b".to_string()];
        let members = vec!["a".to_string(), "b".to_string()];
        let rows = vec![row("b", true, true, 100)];
        let mut f = facts(Some(&rec), &server, &rows, &members);
        f.syncrep_wait_ms = LOST_AFTER_MS + 1;
        assert_eq!(next_step(&f), SyncStep::Record(vec![]));
        f.syncrep_wait_ms = 10;
        assert_eq!(next_step(&f), SyncStep::None);
    }

    #[test]
    fn a_standby_whose_agent_is_gone_is_not_chosen() {
        let rec = state(&[]);
        let members = vec!["a".to_string()];
        let rows = vec![row("b", true, false, 10)];
        assert_eq!(
            next_step(&facts(Some(&rec), &[], &rows, &members)),
            SyncStep::None
        );
    }

    #[test]
    fn a_new_leader_records_its_own_set_first() {
        let theirs = SyncState {
            leader: "z".into(),
            standbys: vec!["a".into()],
        };
        let members = vec!["a".to_string()];
        assert_eq!(
            next_step(&facts(Some(&theirs), &[], &[], &members)),
            SyncStep::Record(vec![])
        );
    }

    #[test]
    fn asynchronous_mode_records_every_healthy_standby_and_never_waits() {
        let rec = state(&[]);
        let members = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        let rows = vec![row("c", true, false, 1), row("b", true, false, 1)];
        let mut f = facts(Some(&rec), &[], &rows, &members);
        f.synchronous = false;
        assert_eq!(
            next_step(&f),
            SyncStep::Record(vec!["b".into(), "c".into()])
        );
        let server = vec!["b".to_string()];
        f.server = &server;
        assert_eq!(next_step(&f), SyncStep::Server(vec![]));
    }
}
