//! Operator requests the supervisor carries out: `dashctl db failover` and the
//! planned, zero-loss `dashctl db switchover`.

use std::time::{Duration, Instant};

use super::{ms, FailoverError, Supervisor};
use crate::control::{Outcome, Request, RequestKind, Step};
use crate::decide::{choose_replica, fmt_lsn, Choice};
use crate::local::LocalCluster;
use crate::topology::Role;

impl Supervisor {
    /// One probe round, then the request: for `dashctl db failover` and
    /// `dashctl db switchover` when no other supervisor is running.
    pub async fn handle_once(mut self, req: Request) -> Outcome {
        self.probe_all().await;
        self.handle(req).await
    }

    pub(super) async fn handle(&mut self, req: Request) -> Outcome {
        let old = self.cluster.topo.primary().map(|p| p.name.clone());
        let result = match req.kind {
            RequestKind::Failover => self
                .execute_failover(
                    old.clone(),
                    req.target.as_deref(),
                    Some(req.max_lag_bytes),
                    "operator request",
                )
                .await
                .map(|(name, steps)| (name, steps, None)),
            RequestKind::Switchover => self.switchover(&req).await,
        };
        match result {
            Ok((name, steps, gap)) => Outcome {
                id: req.id,
                ok: true,
                message: format!("{name} is the primary"),
                old_primary: old,
                new_primary: Some(name),
                write_gap_ms: gap,
                steps,
            },
            Err(e) => Outcome {
                id: req.id,
                ok: false,
                message: e.to_string(),
                old_primary: old.clone(),
                new_primary: old,
                write_gap_ms: None,
                steps: Vec::new(),
            },
        }
    }

    /// Planned, zero-loss switchover: the primary stops cleanly (its last WAL,
    /// the shutdown checkpoint, reaches the standby), the standby is checked
    /// to have it, is promoted, and the old primary restarts as its replica.
    async fn switchover(
        &mut self,
        req: &Request,
    ) -> Result<(String, Vec<Step>, Option<f64>), FailoverError> {
        let primary = self
            .cluster
            .topo
            .primary()
            .cloned()
            .ok_or(FailoverError::NoPrimary)?;
        let p_state = &self.states[&primary.name];
        let p_lsn = p_state
            .last
            .as_ref()
            .filter(|_| p_state.is_up())
            .map(|o| o.lsn)
            .ok_or(FailoverError::PrimaryDown)?;
        let replicas = self.replica_states();
        let best = match choose_replica(&replicas, false, None) {
            Choice::Promote { name, .. } => name,
            Choice::Refuse(r) => return Err(FailoverError::Refused(r)),
        };
        let name = req.target.clone().unwrap_or(best);
        let state = self
            .states
            .get(&name)
            .filter(|s| s.is_up())
            .ok_or_else(|| FailoverError::UnhealthyTarget(name.clone()))?;
        let lag = p_lsn.saturating_sub(state.last.as_ref().map_or(0, |o| o.lsn));
        if lag > req.max_lag_bytes {
            return Err(FailoverError::NotCaughtUp {
                node: name,
                lag,
                limit: req.max_lag_bytes,
            });
        }
        let started = Instant::now();
        let mut steps = Vec::new();
        let old_pg = self.cluster.pg(&primary.name)?;
        let pg = old_pg.clone();
        tokio::task::spawn_blocking(move || pg.stop(dash_pg::StopMode::Fast))
            .await?
            .map_err(|source| FailoverError::Stop {
                node: primary.name.clone(),
                source: Box::new(source),
            })?;
        if let Some(p) = self.probers.get_mut(&primary.name) {
            p.reset();
        }
        // From here the old primary can only start as a standby.
        self.cluster
            .topo
            .node_mut(&primary.name)
            .expect("recorded")
            .role = Role::Replica;
        let _ = self.cluster.write_role_conf(&primary.name);
        self.save_record("the stopped primary as a replica");
        steps.push(Step {
            what: format!(
                "stopped {} cleanly; it can only restart as a standby",
                primary.name
            ),
            ms: ms(started),
        });
        let checkpoint = final_checkpoint(&self.cluster, &primary.name)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.probers.get_mut(&name).expect("prober").probe().await;
            if let crate::decide::Probe::Up(o) = got {
                if o.lsn > checkpoint {
                    break;
                }
            }
            if Instant::now() > deadline {
                // Undo: the old primary takes writes again.
                self.cluster
                    .topo
                    .node_mut(&primary.name)
                    .expect("recorded")
                    .role = Role::Primary;
                let _ = self.cluster.write_role_conf(&primary.name);
                self.save_record("the old primary back as primary");
                let pg = old_pg.clone();
                let _ = tokio::task::spawn_blocking(move || pg.start()).await;
                return Err(FailoverError::CheckpointNotReceived {
                    node: name,
                    lsn: fmt_lsn(checkpoint),
                });
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        steps.push(Step {
            what: format!(
                "{name} has all WAL up to the shutdown checkpoint {}",
                fmt_lsn(checkpoint)
            ),
            ms: ms(started),
        });
        steps.extend(self.promote_and_record(&name, started).await?);
        let gap = ms(started);
        let _ = self.cluster.write_role_conf(&primary.name);
        let pg = old_pg.clone();
        tokio::task::spawn_blocking(move || pg.start())
            .await?
            .map_err(|source| FailoverError::RestartOldPrimary {
                new: name.clone(),
                old: primary.name.clone(),
                source: Box::new(source),
            })?;
        steps.push(Step {
            what: format!("{} restarted as a replica of {name}", primary.name),
            ms: ms(started),
        });
        tracing::warn!(old = %primary.name, new = %name, gap_ms = gap, "switchover complete");
        Ok((name, steps, Some(gap)))
    }
}

/// "Latest checkpoint location" of a cleanly stopped node, from pg_controldata.
fn final_checkpoint(cluster: &LocalCluster, name: &str) -> Result<u64, FailoverError> {
    let n = cluster.info(name)?;
    let mut cmd = dash_pg::server_command(&cluster.bins.path("pg_controldata"));
    cmd.arg("-D").arg(&n.data_dir);
    let out = dash_pg::run_command(cmd)?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("Latest checkpoint location:"))
        .and_then(|v| crate::decide::parse_lsn(v.trim()))
        .ok_or(FailoverError::NoCheckpoint)
}
