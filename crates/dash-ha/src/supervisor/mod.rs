//! The failover supervisor: probes every node every 100 ms; when the primary
//! is dead or hung it fences it, promotes the most advanced replica (or
//! refuses, rather than lose acknowledged writes), re-points the others,
//! keeps synchronous replication matched to the standbys actually streaming,
//! and rejoins fenced nodes as replicas. One supervisor acts at a time.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};

use super::control::{self, Step};
use super::decide::{
    choose_replica, desired_sync, fmt_lsn, primary_health, Choice, NodeState, Policy, PrimaryHealth,
};
use super::local::{ClusterError, LocalCluster};
use super::probe::Prober;

mod error;
mod requests;
use super::topology::Role;

pub use error::FailoverError;

pub const PROBE_EVERY: Duration = Duration::from_millis(100);
pub const PROBE_DEADLINE: Duration = Duration::from_millis(400);

/// The exclusive right to act on a cluster; released on drop.
pub struct SupervisorLock {
    _lock: Flock<File>,
}

impl SupervisorLock {
    pub fn acquire(home: &Path) -> Result<SupervisorLock, ClusterError> {
        let path = home.join("supervisor.lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| dash_pg::PgError::io(format!("open {}", path.display()), e))?;
        let lock = Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|_| {
            ClusterError::Invalid(format!(
                "another supervisor holds {} (only one may act on a cluster)",
                path.display()
            ))
        })?;
        Ok(SupervisorLock { _lock: lock })
    }
}

pub struct Supervisor {
    cluster: LocalCluster,
    policy: Policy,
    states: HashMap<String, NodeState>,
    probers: HashMap<String, Prober>,
    /// Highest LSN the primary acknowledged while no standby was synchronous.
    async_high_water: Option<u64>,
    rejoining: Option<(
        String,
        tokio::task::JoinHandle<Result<&'static str, ClusterError>>,
    )>,
    next_rejoin: Instant,
    last_refusal: Option<Instant>,
    _lock: SupervisorLock,
}

impl Supervisor {
    pub fn new(cluster: LocalCluster) -> Result<Supervisor, ClusterError> {
        let lock = SupervisorLock::acquire(&cluster.home)?;
        let mut s = Supervisor {
            cluster,
            policy: Policy::default(),
            states: HashMap::new(),
            probers: HashMap::new(),
            async_high_water: None,
            rejoining: None,
            next_rejoin: Instant::now(),
            last_refusal: None,
            _lock: lock,
        };
        s.refresh_probers();
        Ok(s)
    }

    fn refresh_probers(&mut self) {
        let t = &self.cluster.topo;
        for n in &t.nodes {
            self.probers
                .entry(n.name.clone())
                .or_insert_with(|| Prober::new(t, n, PROBE_DEADLINE));
            self.states
                .entry(n.name.clone())
                .or_insert_with(|| NodeState::new(&n.name));
        }
    }

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

    async fn probe_all(&mut self) {
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

    /// Keeps `synchronous_standby_names` equal to the recorded replicas that stream now.
    async fn match_sync(&mut self, primary: &str, state: &NodeState) {
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

    /// The loop's failover: executes one, and when it is refused (no replica
    /// can be promoted safely) logs why at most every 2 s; the next probe
    /// round tries again.
    async fn attempt_failover(&mut self, old: Option<String>, why: &str) {
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
    async fn execute_failover(
        &mut self,
        old: Option<String>,
        target: Option<&str>,
        max_lag: Option<u64>,
        why: &str,
    ) -> Result<(String, Vec<Step>), FailoverError> {
        let started = Instant::now();
        let replicas: Vec<NodeState> = self
            .cluster
            .topo
            .replicas()
            .map(|n| self.states[&n.name].clone())
            .collect();
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
    async fn promote_and_record(
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

    /// Makes `name` re-read the configuration Dash just rewrote (best effort:
    /// a node that misses it reads it at its next start).
    async fn reload(&self, name: &str) {
        if let Some(c) = self.probers.get(name).and_then(|p| p.client()) {
            let _ = tokio::time::timeout(PROBE_DEADLINE, c.execute("SELECT pg_reload_conf()", &[]))
                .await;
        }
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
    fn adopt_promoted(&mut self) -> bool {
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

    /// Starts rejoining one fenced node in the background (pg_rewind or re-clone).
    fn start_rejoin(&mut self) {
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

    async fn finish_rejoin(&mut self) {
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

impl Supervisor {
    /// Saves the cluster record after a role change. The supervisor goes on
    /// from its in-memory record either way; `dashctl db` and a restart read
    /// the file, so a failure is logged with its cause.
    fn save_record(&self, what: &str) {
        if let Err(e) = self.cluster.topo.save(&self.cluster.home) {
            tracing::error!(error = %e, what, "cannot save the cluster record");
        }
    }
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}
