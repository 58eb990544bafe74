//! Rejoin: one fenced node at a time, in the background, comes back as a
//! streaming replica (pg_rewind, or a fresh clone when rewind cannot).

use std::time::{Duration, Instant};

use crate::decide::NodeState;
use crate::local::LocalCluster;
use crate::topology::Role;

use super::Supervisor;

impl Supervisor {
    /// Starts rejoining one fenced node in the background (pg_rewind or re-clone).
    pub(super) fn start_rejoin(&mut self) {
        if self.rejoining.is_some() || Instant::now() < self.next_rejoin {
            return;
        }
        let Some(fenced) = self
            .cluster
            .topo
            .nodes
            .iter()
            .find(|n| n.role == Role::Fenced)
            .map(|n| n.name.clone())
        else {
            return;
        };
        let mut copy = LocalCluster {
            home: self.cluster.home.clone(),
            bins: self.cluster.bins.clone(),
            topo: self.cluster.topo.clone(),
        };
        let name = fenced.clone();
        tracing::info!(node = %name, "rejoining as a replica");
        let handle =
            tokio::task::spawn_blocking(move || copy.rejoin(&name, &|m| tracing::info!("{m}")));
        self.rejoining = Some((fenced, handle));
    }

    pub(super) async fn finish_rejoin(&mut self) {
        let done = self
            .rejoining
            .as_ref()
            .is_some_and(|(_, h)| h.is_finished());
        if !done {
            return;
        }
        let (name, handle) = self.rejoining.take().expect("checked");
        match handle.await {
            Ok(Ok(how)) => {
                if let Some(n) = self.cluster.topo.node_mut(&name) {
                    n.role = Role::Replica;
                }
                self.save_record("the rejoined node as a replica");
                if let Some(p) = self.probers.get_mut(&name) {
                    p.reset();
                }
                if let Some(s) = self.states.get_mut(&name) {
                    *s = NodeState::new(&name);
                }
                tracing::info!(node = %name, how, "rejoined as a streaming replica");
            }
            Ok(Err(e)) => {
                tracing::error!(node = %name, error = %e, "rejoin failed; retrying in 5s");
                self.next_rejoin = Instant::now() + Duration::from_secs(5);
            }
            Err(e) => {
                tracing::error!(node = %name, error = %e, "rejoin task failed");
                self.next_rejoin = Instant::now() + Duration::from_secs(5);
            }
        }
    }
}
