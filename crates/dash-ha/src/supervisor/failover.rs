//! Failover: choose the replica that loses nothing, fence the old primary,
//! promote, confirm with a real write, record, and re-point the replicas.

use std::time::{Duration, Instant};

use crate::control::Step;
use crate::decide::{choose_replica, fmt_lsn, Choice};

use super::{ms, FailoverError, Supervisor};

impl Supervisor {
    /// The loop's failover: executes one, and when it is refused (no replica
    /// can be promoted safely) logs why at most every 2 s; the next probe
    /// round tries again.
    pub(super) async fn attempt_failover(&mut self, old: Option<String>, why: &str) {
        match self.execute_failover(old.clone(), None, None, why).await {
            Ok(_) => self.last_refusal = None,
            Err(e) => {
                let label = e.metric_label();
                if self
                    .last_refusal
                    .is_none_or(|t| t.elapsed() > Duration::from_secs(2))
                {
                    tracing::error!(primary = ?old, %why, reason = %e, label, "failover refused; will keep trying");
                    self.last_refusal = Some(Instant::now());
                }
            }
        }
    }

    /// Fences `old`, promotes the chosen replica (or `target`, if it is as
    /// advanced as the best), and records and re-points everything.
    pub(super) async fn execute_failover(
        &mut self,
        old: Option<String>,
        target: Option<&str>,
        max_lag: Option<u64>,
        why: &str,
    ) -> Result<(String, Vec<Step>), FailoverError> {
        let started = Instant::now();
        let replicas = self.replica_states();
        let (name, lsn) = match choose_replica(
            &replicas,
            self.cluster.topo.synchronous,
            self.async_high_water,
        ) {
            Choice::Promote { name, lsn } => (name, lsn),
            Choice::Refuse(reason) => return Err(FailoverError::Refused(reason)),
        };
        // An operator's limit: how far behind the primary's last answer the
        // candidate may be (the primary may be alive, or its last LSN known).
        let primary_lsn = old
            .as_ref()
            .and_then(|o| self.states.get(o))
            .and_then(|s| s.last.as_ref())
            .map(|o| o.lsn);
        if let (Some(limit), Some(p)) = (max_lag, primary_lsn) {
            let lag = p.saturating_sub(lsn);
            if lag > limit {
                return Err(FailoverError::LagLimit {
                    node: name,
                    lag,
                    limit,
                });
            }
        }
        let name = match target {
            Some(t) if t != name => {
                let t_lsn = self
                    .states
                    .get(t)
                    .and_then(|s| s.last.as_ref())
                    .map(|o| o.lsn);
                if t_lsn != Some(lsn) {
                    return Err(FailoverError::TargetBehind {
                        target: t.to_string(),
                        best: name,
                    });
                }
                t.to_string()
            }
            _ => name,
        };
        tracing::warn!(primary = ?old, %why, candidate = %name, lsn = %fmt_lsn(lsn), "failing over");
        let mut steps = Vec::new();
        if let Some(old) = &old {
            tokio::task::block_in_place(|| self.cluster.fence(old)).map_err(|source| {
                FailoverError::Fence {
                    node: old.clone(),
                    source,
                }
            })?;
            if let Some(p) = self.probers.get_mut(old) {
                p.reset();
            }
            steps.push(Step {
                what: format!("fenced {old}: processes killed, standby.signal written, recorded"),
                ms: ms(started),
            });
        }
        steps.extend(self.promote_and_record(&name, started).await?);
        self.next_rejoin = Instant::now();
        tracing::warn!(new_primary = %name, epoch = self.cluster.topo.epoch, total_ms = ms(started), "failover complete");
        Ok((name, steps))
    }

    /// Promotes `name`, confirms a write, records it as primary and points every replica at it.
    pub(super) async fn promote_and_record(
        &mut self,
        name: &str,
        started: Instant,
    ) -> Result<Vec<Step>, FailoverError> {
        let mut steps = Vec::new();
        self.promote(name).await?;
        steps.push(Step {
            what: format!("promoted {name}; it accepted a write"),
            ms: ms(started),
        });
        if let Err(e) = self.cluster.topo.record_primary(name, &self.cluster.home) {
            tracing::error!(node = %name, error = %e, "cannot record the new primary");
        }
        let _ = self.cluster.write_role_conf_with(name, &[]);
        let others: Vec<String> = self
            .cluster
            .topo
            .replicas()
            .map(|n| n.name.clone())
            .collect();
        for r in others {
            if self.cluster.write_role_conf(&r).is_ok() {
                self.reload(&r).await;
            }
        }
        self.async_high_water = None;
        steps.push(Step {
            what: format!(
                "recorded {name} as primary (epoch {}); replicas re-pointed",
                self.cluster.topo.epoch
            ),
            ms: ms(started),
        });
        Ok(steps)
    }

    /// Promotes `name` and returns once it has accepted a real write.
    async fn promote(&mut self, name: &str) -> Result<(), FailoverError> {
        let failed = |source| FailoverError::Promote {
            node: name.to_string(),
            source,
        };
        let unconfirmed = |reason| FailoverError::Confirm {
            node: name.to_string(),
            reason,
        };
        // pg_ctl promote: a signal file and SIGUSR1, no round trip to a busy server.
        let pg = self.cluster.pg(name).map_err(failed)?;
        tokio::task::spawn_blocking(move || pg.promote())
            .await?
            .map_err(|e| failed(e.into()))?;
        let client = self
            .cluster
            .topo
            .connect(name, "postgres", Duration::from_secs(2))
            .await
            .map_err(unconfirmed)?;
        let epoch = self.cluster.topo.epoch as i64 + 1;
        let deadline = Instant::now() + Duration::from_secs(10);
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS dash_epochs (epoch bigint PRIMARY KEY, node text NOT NULL, at timestamptz NOT NULL DEFAULT now());
             INSERT INTO dash_epochs (epoch, node) VALUES ({epoch}, '{name}') ON CONFLICT (epoch) DO NOTHING"
        );
        loop {
            let write = client.batch_execute(&sql);
            match tokio::time::timeout(Duration::from_millis(500), write).await {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(_)) | Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(2)).await
                }
                Ok(Err(e)) => {
                    return Err(unconfirmed(format!(
                        "no write accepted after promotion: {e}"
                    )))
                }
                Err(_) => return Err(unconfirmed("no write accepted after promotion".into())),
            }
        }
    }

    /// With no primary recorded (a promotion whose confirmation failed), a
    /// replica that answers as writable is the one we promoted: record it.
    pub(super) fn adopt_promoted(&mut self) -> bool {
        let writable: Vec<String> = self
            .cluster
            .topo
            .replicas()
            .filter(|n| {
                self.states[&n.name].is_up()
                    && self.states[&n.name]
                        .last
                        .as_ref()
                        .is_some_and(|o| !o.in_recovery)
            })
            .map(|n| n.name.clone())
            .collect();
        let [name] = writable.as_slice() else {
            return false;
        };
        if let Err(e) = self.cluster.topo.record_primary(name, &self.cluster.home) {
            tracing::error!(node = %name, error = %e, "cannot record the promoted node as primary");
        }
        tracing::warn!(node = %name, "recorded the promoted node as primary");
        true
    }
}
