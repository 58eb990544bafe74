//! [`Platform`]: the whole local platform on one machine, the same engine as
//! across machines: a local etcd member, one `dashctl node` agent per
//! recorded node (each owns its PostgreSQL: init or clone, start, restart,
//! promote, fence, rejoin), and the API given every node. Stopped in order
//! by [`Platform::stop`]: API, replicas' agents, the leader's agent, etcd.

use std::path::{Path, PathBuf};
use std::time::Duration;

use dash_api::{ApiSettings, RunningApp};
use dash_dcs::{EtcdConfig, EtcdError, EtcdMember};
use dash_pg::ParentThread;

use crate::agents::{self, Agents};
use crate::ha::{self, HaPair};
use crate::topology::{Topology, TopologyError};

/// Why the platform could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error(transparent)]
    Topology(#[from] TopologyError),
    #[error("the local etcd: {0}")]
    Etcd(#[from] EtcdError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("the cluster did not become highly available within {limit:?}: {why}\n{logs}")]
    NotHighlyAvailable {
        limit: Duration,
        why: String,
        logs: String,
    },
}

impl PlatformError {
    pub(crate) fn io(context: &'static str, source: std::io::Error) -> PlatformError {
        Self::io_owned(context.to_string(), source)
    }

    pub(crate) fn io_owned(context: String, source: std::io::Error) -> PlatformError {
        PlatformError::Io { context, source }
    }
}

/// How the platform runs its agents.
#[derive(Debug, Clone)]
pub struct PlatformOptions {
    /// The `dashctl` binary the agents run (`std::env::current_exe()` in
    /// `dashctl up`; the built binary in tests).
    pub dashctl: PathBuf,
    /// How long [`Platform::start`] waits for a leader with a streaming
    /// standby (a first start runs initdb and clones).
    pub ha_limit: Duration,
    /// Keep a pgBackRest repository beside the record (`$DASH_HOME/pgbackrest`):
    /// every node archives its WAL there, and a first full backup is taken.
    pub backups: bool,
}

/// The platform, running.
pub struct Platform {
    topo: Topology,
    etcd: Option<EtcdMember>,
    agents: Option<Agents>,
    app: Option<RunningApp>,
    // Declared (so dropped) last: the etcd member and the agents die with
    // this thread, after their own drops had their say.
    _parent: ParentThread,
}

impl Platform {
    /// Starts the cluster recorded in `home` and the API against every node
    /// of it (the API writes to whichever is the primary now). The API
    /// accepts the recorded token when `api` names none. `progress` gets a
    /// line per step.
    pub async fn start(
        home: &Path,
        mut api: ApiSettings,
        opts: &PlatformOptions,
        progress: &dyn Fn(&str),
    ) -> Result<Platform, PlatformError> {
        let topo = Topology::load(home)?;
        let busy = crate::create::taken(&topo.ports());
        if !busy.is_empty() {
            return Err(PlatformError::Invalid(format!(
                "port(s) {busy:?} that {} records for this cluster are in use: is another platform \
                 or server running there? Stop it (or record other ports in that file)",
                Topology::path(home).display()
            )));
        }
        let parent = ParentThread::start("dash-platform");
        progress(&format!(
            "starting etcd on 127.0.0.1:{}",
            topo.etcd_client_port
        ));
        let cfg = etcd_config(home, &topo);
        let etcd = parent
            .run(move || EtcdMember::spawn_dying_with_parent(cfg))
            .await?;
        let etcd = tokio::task::spawn_blocking(move || {
            etcd.wait_ready(dash_dcs::READY_TIMEOUT).map(|()| etcd)
        })
        .await
        .map_err(|e| PlatformError::Invalid(format!("etcd start task: {e}")))??;
        progress(&format!(
            "starting {} node agent(s) (dashctl node; logs in {})",
            topo.nodes.len(),
            home.display()
        ));
        let backrest = match opts.backups {
            true => Some(crate::backups::ensure_repo(home)?),
            false => None,
        };
        let mut agents =
            Agents::start(parent.clone(), &opts.dashctl, &topo, backrest.clone()).await?;
        let ha = match wait_ha(&topo, &mut agents, opts.ha_limit, progress).await {
            Ok(ha) => ha,
            Err(e) => {
                shut_down(Some(agents), Vec::new(), Some(etcd)).await;
                return Err(e);
            }
        };
        match &ha.standby {
            Some(s) => progress(&format!("{} leads; {s} is its standby", ha.leader)),
            None => progress(&format!("{} leads (one node: no standby)", ha.leader)),
        }
        if let Some(repo) = &backrest {
            progress(
                "preparing the pgBackRest repository (stanza; a first full backup if it has none)",
            );
            match crate::backups::prepare(repo, &topo, &ha.leader, ha.standby.as_deref()).await {
                Ok(said) => progress(&said),
                Err(e) => progress(&format!(
                    "WARNING: backups are not ready ({e}); `dashctl db backup --type full` retries"
                )),
            }
        }
        let pool_size = api.database.pool_size;
        api.database = topo.db_settings();
        api.database.pool_size = pool_size;
        (api.etcd, api.cluster) = (topo.etcd_endpoints(), topo.cluster.clone());
        if api.tokens.is_empty() {
            api.tokens.push(topo.api_token.clone());
        }
        let app = match dash_api::App::build(api).await {
            Ok(app) => app.spawn(),
            Err(e) => {
                shut_down(Some(agents), Vec::new(), Some(etcd)).await;
                return Err(PlatformError::io("bind the API ports", e));
            }
        };
        progress("waiting for the API to be ready (its schema migrated on the primary)");
        if !api_ready(app.base_url(), opts.ha_limit).await {
            let _ = app.stop().await;
            shut_down(Some(agents), Vec::new(), Some(etcd)).await;
            return Err(PlatformError::Invalid(format!(
                "the API did not answer /ready within {:?}",
                opts.ha_limit
            )));
        }
        Ok(Platform {
            topo,
            _parent: parent,
            etcd: Some(etcd),
            agents: Some(agents),
            app: Some(app),
        })
    }

    /// `http://host:port` of the REST API.
    pub fn base_url(&self) -> &str {
        self.app.as_ref().map_or("", |a| a.base_url())
    }

    /// The record the platform runs.
    pub fn topology(&self) -> &Topology {
        &self.topo
    }

    /// Follows the record: starts the agent of every node recorded since the
    /// platform started (`dashctl db add-replica`), whose agent clones the
    /// leader, and has the API's pool try that node too, so that the API
    /// follows a failover onto it. `progress` gets a line per node started
    /// and per agent that exited (with its log's path). `dashctl up` calls
    /// this twice a second.
    pub async fn follow_record(
        &mut self,
        home: &Path,
        progress: &dyn Fn(&str),
    ) -> Result<(), PlatformError> {
        let recorded = Topology::load(home)?;
        let Some(agents) = self.agents.as_mut() else {
            return Ok(());
        };
        for (name, status) in agents.exited() {
            let log = (self.topo.node(&name)).map_or_else(String::new, |n| {
                format!("; its log: {}", agents::log_path(n).display())
            });
            progress(&format!("the agent of {name} exited ({status}){log}"));
        }
        let new: Vec<_> = (recorded.nodes.iter())
            .filter(|n| !agents.runs(&n.name))
            .cloned()
            .collect();
        for n in &new {
            progress(&format!(
                "{} was added to {}: starting its agent (it clones the leader; log {})",
                n.name,
                Topology::path(home).display(),
                agents::log_path(n).display()
            ));
            agents.add(&recorded, n).await?;
            if let Some(app) = &self.app {
                app.db().add_hosts([n.host_port()]);
            }
        }
        if !new.is_empty() {
            self.topo.nodes = recorded.nodes;
        }
        Ok(())
    }

    /// Stops the API (in-flight requests drain), then the agents, replicas
    /// first so the leader's last writes reach them and no replica takes
    /// over from a leader that is only shutting down, then etcd.
    pub async fn stop(mut self, progress: &dyn Fn(&str)) -> Result<(), PlatformError> {
        let api = match self.app.take() {
            Some(app) => app.stop().await,
            None => Ok(()),
        };
        let leader = ha::leader(&self.topo).await;
        let mut order: Vec<String> = (self.topo.nodes.iter())
            .map(|n| n.name.clone())
            .filter(|n| Some(n) != leader.as_ref())
            .collect();
        order.extend(leader);
        let say = shut_down(self.agents.take(), order, self.etcd.take()).await;
        for line in say {
            progress(&line);
        }
        api.map_err(|e| PlatformError::io("stop the API", e))
    }
}

/// Stops the agents (those in `order` first, one by one) and then etcd, off
/// the runtime's threads; returns the progress lines.
async fn shut_down(
    agents: Option<Agents>,
    order: Vec<String>,
    etcd: Option<EtcdMember>,
) -> Vec<String> {
    tokio::task::spawn_blocking(move || {
        let lines = std::sync::Mutex::new(Vec::new());
        if let Some(mut agents) = agents {
            agents.stop(&order, &|l| {
                lines.lock().expect("lines").push(l.to_string())
            });
        }
        drop(etcd); // SIGTERM, then SIGKILL
        lines.into_inner().expect("lines")
    })
    .await
    .unwrap_or_default()
}

/// The local member: fast elections (a lone member never loses one, and
/// comes back in well under a second), data in `$DASH_HOME/etcd`.
fn etcd_config(home: &Path, topo: &Topology) -> EtcdConfig {
    EtcdConfig {
        heartbeat: Duration::from_millis(10),
        election: Duration::from_millis(100),
        ..EtcdConfig::single(
            "dash",
            home.join("etcd"),
            topo.etcd_client_port,
            topo.etcd_peer_port,
        )
    }
}

async fn wait_ha(
    topo: &Topology,
    agents: &mut Agents,
    limit: Duration,
    progress: &dyn Fn(&str),
) -> Result<HaPair, PlatformError> {
    let mut exited = || {
        (agents.exited().first())
            .map(|(name, status)| format!("the agent of {name} exited ({status})"))
    };
    ha::wait_ha(topo, limit, progress, &mut exited)
        .await
        .map_err(|why| PlatformError::NotHighlyAvailable {
            limit,
            why,
            logs: agent_logs(topo),
        })
}

/// Polls `{base}/ready` until it answers 200 (true) or `limit` passes.
pub async fn api_ready(base: &str, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .no_proxy()
        .build()
        .expect("a plain HTTP client builds");
    loop {
        let ready = http.get(format!("{base}/ready")).send().await;
        if ready.is_ok_and(|r| r.status() == 200) {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The last lines of every agent's log, for an error message.
pub fn agent_logs(topo: &Topology) -> String {
    (topo.nodes.iter())
        .map(|n| {
            let path = agents::log_path(n);
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(12).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            format!("--- {} ({}):\n{}", n.name, path.display(), tail.join("\n"))
        })
        .collect::<Vec<_>>()
        .join("\n")
}
