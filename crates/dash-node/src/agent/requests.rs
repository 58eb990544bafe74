//! Carrying out operator requests and the key's hand-over: a switchover
//! (clean stop), a failover (fence at once), both releasing the key to the
//! one recorded standby; and a target taking a free key for a failover.

use std::time::Instant;

use dash_dcs::ClusterView;

use super::words::{done, own_sync_standbys};
use super::Agent;
use crate::local::Observed;

impl Agent {
    /// Fences the server and, once it is fenced, deletes the leader key.
    pub(super) async fn fence_and_release(&mut self, now: Instant) -> Result<(), String> {
        let fenced = done(self.pg.step(|c| c.fence()).await);
        self.released_at = Some(now);
        fenced?;
        self.dcs
            .release(self.me())
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }

    /// Under a halt: a clean stop, then the key given up if held. No
    /// `released_at`: the member may lead again at once if the restore is
    /// abandoned (its data is intact) or names it.
    pub(super) async fn halt_stop(&mut self, view: Option<&ClusterView>) -> Result<(), String> {
        done(self.pg.step(|c| c.stop()).await)?;
        let holds = view
            .and_then(|v| v.leader.as_ref())
            .is_some_and(|l| l.name == self.opts.name);
        if holds {
            self.dcs
                .release(self.me())
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Only `to` may take the key next: the sync set shrinks to it first (a
    /// shrink is always safe to record). `None` when it could not be.
    async fn only_to(&mut self, view: Option<&ClusterView>, to: &str, what: &str) -> Option<()> {
        if own_sync_standbys(view, self.me()) == [to] {
            return Some(());
        }
        match self.narrow_sync(view, to).await {
            Ok(()) => Some(()),
            Err(e) => {
                tracing::warn!(error = %e, "{what}: could not narrow the sync set to {to}");
                None
            }
        }
    }

    /// Hands the key to `to`, a recorded standby, and clears the request:
    /// a switchover (`clean`) stops cleanly, so every WAL record reaches
    /// `to`; a failover fences at once (the server may be sick; `to` holds
    /// every acknowledged write), and a fence that failed keeps the key and
    /// the request for the next tick. `None`: nothing was done.
    pub(super) async fn hand_over(
        &mut self,
        view: Option<&ClusterView>,
        to: &str,
        request_revision: i64,
        clean: bool,
    ) -> Option<Result<(), String>> {
        let what = if clean { "switchover" } else { "failover" };
        self.only_to(view, to, what).await?;
        let now = Instant::now();
        let released = if clean {
            let stopped = done(self.pg.step(|c| c.stop_clean()).await);
            self.released_at = Some(now);
            let released = self.dcs.release(self.me()).await;
            stopped.and(released.map(drop).map_err(|e| e.to_string()))
        } else {
            self.fence_and_release(now).await
        };
        if clean || released.is_ok() {
            let _ = self.dcs.clear_request(request_revision).await;
        }
        Some(released)
    }

    /// The target of a failover filed while the key was free: take the key
    /// (the sync record becomes ours, with no standby until one catches up)
    /// and promote, then clear the request.
    pub(super) async fn take_over(
        &mut self,
        view: Option<&ClusterView>,
        obs: &Observed,
        request_revision: i64,
    ) -> Result<(), String> {
        self.acquire(view, obs).await?;
        let _ = self.dcs.clear_request(request_revision).await;
        Ok(())
    }
}
