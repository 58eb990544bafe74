//! Synchronous replication kept to the standbys that stream now
//! (`synchronous_standby_names`), and the write exposure while none does.

use crate::decide::{desired_sync, NodeState};

use super::Supervisor;

impl Supervisor {
    /// Keeps `synchronous_standby_names` equal to the recorded replicas that stream now.
    pub(super) async fn match_sync(&mut self, primary: &str, state: &NodeState) {
        let Some(obs) = &state.last else { return };
        let replicas = self.cluster.sync_names();
        let want = desired_sync(self.cluster.topo.synchronous, &replicas, &obs.streaming);
        let want_text = if want.is_empty() {
            String::new()
        } else {
            format!("ANY 1 ({})", want.join(", "))
        };
        if self.cluster.topo.synchronous {
            if want.is_empty() {
                self.async_high_water = Some(self.async_high_water.unwrap_or(0).max(obs.lsn));
            } else if let Some(hw) = self.async_high_water {
                let caught_up = self.states.values().any(|s| {
                    want.contains(&s.name)
                        && s.last
                            .as_ref()
                            .is_some_and(|o| o.in_recovery && o.lsn >= hw)
                });
                if caught_up {
                    self.async_high_water = None;
                }
            }
        }
        if obs.sync_names == want_text {
            return;
        }
        if let Err(e) = self.cluster.write_role_conf_with(primary, &want) {
            tracing::error!(error = %e, "cannot rewrite the primary's replication settings");
            return;
        }
        self.reload(primary).await;
        if want.is_empty() {
            tracing::warn!("no standby is streaming: writes continue without a synchronous standby (exposure tracked)");
        } else {
            tracing::info!(standbys = %want.join(","), "synchronous replication covers the streaming standbys");
        }
    }
}
