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

use super::decide::{NodeState, Policy};
use super::local::{ClusterError, LocalCluster};
use super::probe::Prober;

mod error;
mod failover;
mod rejoin;
mod requests;
mod sync;
mod watch;

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

    /// The last probed state of every recorded replica.
    fn replica_states(&self) -> Vec<NodeState> {
        (self.cluster.topo.replicas())
            .map(|n| self.states[&n.name].clone())
            .collect()
    }

    /// Makes `name` re-read the configuration Dash just rewrote (best effort:
    /// a node that misses it reads it at its next start).
    async fn reload(&self, name: &str) {
        if let Some(c) = self.probers.get(name).and_then(|p| p.client()) {
            let _ = tokio::time::timeout(PROBE_DEADLINE, c.execute("SELECT pg_reload_conf()", &[]))
                .await;
        }
    }

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
