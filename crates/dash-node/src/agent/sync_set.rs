//! The leader's side of the synchronous standby set: one step of
//! `crate::sync::next_step` per tick, and narrowing the set to a
//! switchover's target.

use std::time::{Duration, Instant};

use dash_dcs::{ClusterView, SyncState};

use super::{quoted_names, Agent};
use crate::local::Observed;
use crate::sync::{next_step, SyncFacts, SyncStep};

impl Agent {
    pub(super) async fn narrow_sync(
        &mut self,
        view: Option<&ClusterView>,
        to: &str,
    ) -> Result<(), String> {
        let view = view.ok_or("etcd unreadable")?;
        let lease = self.lease.current().ok_or("no lease")?;
        let state = SyncState {
            leader: self.opts.name.clone(),
            standbys: vec![to.to_string()],
        };
        let ok = self
            .dcs
            .set_sync(self.me(), lease.id, view.sync_revision(), &state)
            .await
            .map_err(|e| e.to_string())?;
        ok.then_some(())
            .ok_or_else(|| "the sync key changed meanwhile".into())
    }

    /// As leader with a writable server: one step of the sync set.
    pub(super) async fn keep_sync(&mut self, view: &ClusterView, obs: &Observed) {
        let now = Instant::now();
        let Some(lease) = self.lease.current().filter(|l| l.valid_at(now)) else {
            return;
        };
        let leads = view
            .leader
            .as_ref()
            .is_some_and(|l| l.name == self.opts.name && l.lease == lease.id);
        if !leads || obs.in_recovery != Some(false) {
            return;
        }
        let server = quoted_names(&obs.sync_names);
        let first_sync = server
            .first()
            .and_then(|n| obs.standbys.iter().find(|r| &r.name == n))
            .is_some_and(|r| r.sync);
        if first_sync {
            let seen = *self.sync_seen_at.get_or_insert(now);
            if self.grew_at_lsn.is_none() && now.duration_since(seen) >= Duration::from_millis(200)
            {
                self.grew_at_lsn = obs.lsn;
            }
        } else {
            self.sync_seen_at = None;
            self.grew_at_lsn = None;
        }
        let members: Vec<String> = view.members.iter().map(|m| m.name.clone()).collect();
        let step = next_step(&SyncFacts {
            me: &self.opts.name,
            synchronous: self.opts.synchronous,
            recorded: view.sync.as_ref().map(|s| &s.value),
            server: &server,
            standbys: &obs.standbys,
            syncrep_wait_ms: obs.syncrep_wait_ms,
            grew_at_lsn: self.grew_at_lsn,
            members: &members,
        });
        let (label, result) = match &step {
            SyncStep::None => return,
            SyncStep::Record(standbys) => {
                let state = SyncState {
                    leader: self.opts.name.clone(),
                    standbys: standbys.clone(),
                };
                let r = self
                    .dcs
                    .set_sync(self.me(), lease.id, view.sync_revision(), &state)
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|ok| {
                        ok.then_some(())
                            .ok_or("the sync key changed meanwhile".into())
                    });
                ("sync", r)
            }
            SyncStep::Server(names) => {
                self.sync_seen_at = None;
                self.grew_at_lsn = None;
                ("sync", self.pg.set_sync_names(names).await)
            }
        };
        self.metrics.decision(label, result.is_ok());
        match result {
            Ok(()) => tracing::info!(step = ?step, "synchronous standby set"),
            Err(e) => tracing::warn!(step = ?step, error = %e, "synchronous standby set"),
        }
    }
}
