//! What the agent tells others each tick: its member state in etcd, its
//! `/status`, its metrics and pod label; and, as leader, where etcd's own
//! leader runs.

use std::time::{Duration, Instant};

use dash_dcs::{ClusterView, MemberState};

use super::{role_of, Agent, PUBLISH_EVERY};
use crate::local::Observed;

impl Agent {
    pub(super) async fn publish(&mut self, obs: &Observed, view: Option<&ClusterView>) {
        let now = Instant::now();
        let Some(lease) = self.lease.current() else {
            return;
        };
        let state = MemberState {
            name: self.opts.name.clone(),
            pg: self.pg.address(),
            api: self.api_url(),
            role: self.published_role(obs, view).to_string(),
            timeline: obs.timeline,
            lsn: obs.lsn,
            streaming: obs.streaming,
        };
        let missing = view.is_some_and(|v| v.member(&self.opts.name).is_none());
        let fresh = self.published.as_ref().is_some_and(|(at, last)| {
            now.duration_since(*at) < PUBLISH_EVERY
                && last.role == state.role
                && last.streaming == state.streaming
                && last.timeline == state.timeline
        });
        if fresh && !missing {
            return;
        }
        match self.dcs.put_member(&state, lease.id).await {
            Ok(()) => self.published = Some((now, state)),
            Err(e) => tracing::debug!(error = %e, "publishing member state failed"),
        }
    }

    /// The role in etcd: under a halt, a stopped member says whether it
    /// has stopped with its data (`halted`) or set it aside (`set-aside`),
    /// which is what a restore waits for.
    fn published_role(&self, obs: &Observed, view: Option<&ClusterView>) -> &'static str {
        let halted = view.is_some_and(|v| v.halt.is_some()) && !obs.running;
        match halted {
            true if self.pg.has_data() => "halted",
            true => "set-aside",
            false => role_of(obs, self.pg.needs_rewind()),
        }
    }

    pub(super) fn report(&mut self, obs: &Observed, view: Option<&ClusterView>, why: String) {
        let now = Instant::now();
        let lease = self.lease.current();
        let leader = view.and_then(|v| v.leader.clone());
        let holds_key = lease.is_some_and(|l| {
            l.valid_at(now)
                && leader
                    .as_ref()
                    .is_some_and(|k| k.name == self.opts.name && k.lease == l.id)
        });
        let leader_lsn = view
            .and_then(|v| leader.as_ref().and_then(|l| v.member(&l.name)))
            .and_then(|m| m.lsn);
        let lag = match (obs.in_recovery, leader_lsn, obs.lsn) {
            (Some(true), Some(l), Some(mine)) => Some(l.saturating_sub(mine)),
            _ => None,
        };
        let role = role_of(obs, self.pg.needs_rewind());
        if let Some(label) = &self.label {
            label.send_replace(crate::kube::wanted(role, holds_key, obs.streaming));
        }
        self.metrics.set_role(role);
        self.metrics.leader.set(i64::from(holds_key));
        self.metrics
            .lease_remaining
            .set(lease.map_or(0.0, |l| l.remaining(now).as_secs_f64()));
        self.metrics.lag_bytes.set(lag.unwrap_or(0) as i64);
        self.metrics.etcd_up.set(i64::from(view.is_some()));
        let mut st = match self.status.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        st.name = self.opts.name.clone();
        st.role = role.to_string();
        st.postgres_up = obs.answered;
        st.timeline = obs.timeline;
        st.lsn = obs.lsn.map(dash_pg::fmt_lsn);
        st.streaming = obs.streaming;
        st.lag_bytes = lag;
        st.etcd_up = view.is_some();
        st.holds_key = holds_key;
        st.lease_remaining_ms = lease.map(|l| l.remaining(now).as_millis() as u64);
        if let Some(v) = view {
            let standbys = v
                .sync
                .as_ref()
                .map(|s| s.value.standbys.clone())
                .unwrap_or_default();
            self.sync_hosts = standbys
                .iter()
                .filter_map(|n| v.member(n))
                .map(|m| crate::local::split_host_port(&m.pg).0)
                .collect();
            st.leader = leader.map(|l| l.name);
            st.sync_standbys = v
                .sync
                .as_ref()
                .map(|s| s.value.standbys.clone())
                .unwrap_or_default();
        }
        if !why.is_empty() {
            st.last_action = why;
        }
    }

    /// A leader keeps etcd's own leader off its host (when they share it),
    /// so that one host crash never costs both: see
    /// [`dash_dcs::Dcs::move_etcd_leader_off`]. In the background, every 2 s.
    pub(super) fn keep_etcd_leader_away(&mut self, now: Instant) {
        let leads = self.status.read().map(|s| s.holds_key).unwrap_or(false);
        let due = self
            .etcd_leader_checked
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(2));
        if !leads || !due {
            return;
        }
        self.etcd_leader_checked = Some(now);
        let mut avoid = vec![self.opts.advertise.clone()];
        avoid.extend(self.sync_hosts.iter().cloned());
        let dcs = self.dcs.clone();
        tokio::spawn(async move {
            match dcs.move_etcd_leader_off(&avoid).await {
                Ok(Some(id)) => {
                    tracing::info!(to = %format!("{id:x}"), "moved etcd's leader off this host")
                }
                Ok(None) => {}
                Err(e) => tracing::debug!(error = %e, "could not check etcd's leader"),
            }
        });
    }
}
