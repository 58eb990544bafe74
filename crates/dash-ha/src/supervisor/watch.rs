//! The supervisor's loop: every 100 ms it probes every node, answers an
//! operator request if one is pending, and acts on the primary's health.

use crate::control;
use crate::decide::{primary_health, PrimaryHealth};
use crate::topology::Role;

use super::{Prober, Supervisor, PROBE_EVERY};

impl Supervisor {
    /// Runs until `shutdown` resolves.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(PROBE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tracing::info!(primary = ?self.cluster.topo.primary().map(|p| &p.name), "supervisor watching the cluster");
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tick.tick() => self.step().await,
            }
        }
        if let Some((_, h)) = self.rejoining.take() {
            let _ = h.await;
        }
    }

    pub(super) async fn probe_all(&mut self) {
        let names: Vec<String> = self
            .cluster
            .topo
            .nodes
            .iter()
            .filter(|n| n.role != Role::Fenced)
            .map(|n| n.name.clone())
            .collect();
        let mut probers: Vec<(String, Prober)> = names
            .iter()
            .filter_map(|n| self.probers.remove(n).map(|p| (n.clone(), p)))
            .collect();
        let results = futures::future::join_all(probers.iter_mut().map(|(_, p)| p.probe())).await;
        for ((name, prober), probe) in probers.into_iter().zip(results) {
            self.states
                .get_mut(&name)
                .expect("state per node")
                .record(probe);
            self.probers.insert(name, prober);
        }
    }

    async fn step(&mut self) {
        self.probe_all().await;
        self.finish_rejoin().await;
        if let Some(req) = control::take(&self.cluster.home) {
            let outcome = self.handle(req).await;
            if let Err(e) = control::answer(&self.cluster.home, &outcome) {
                tracing::error!(error = %e, "cannot record the answer to an operator request");
            }
            return;
        }
        let Some(primary) = self.cluster.topo.primary().cloned() else {
            if self.adopt_promoted() {
                return;
            }
            return self.attempt_failover(None, "no primary recorded").await;
        };
        let state = self.states[&primary.name].clone();
        match primary_health(&state, &self.policy) {
            PrimaryHealth::Dead => {
                self.attempt_failover(Some(primary.name), "dead: connections refused")
                    .await
            }
            PrimaryHealth::Hung => {
                self.attempt_failover(Some(primary.name), "hung: probes missed their deadline")
                    .await
            }
            PrimaryHealth::NotPrimary => {
                tracing::warn!(node = %primary.name, "the recorded primary is in recovery; treating it as lost");
                self.attempt_failover(Some(primary.name), "demoted outside the supervisor")
                    .await
            }
            PrimaryHealth::Suspect => {}
            PrimaryHealth::Healthy => {
                self.match_sync(&primary.name, &state).await;
                self.start_rejoin();
            }
        }
    }
}
