//! [`Platform`]: the failover supervisor and the API running on a local
//! cluster, stopped in order (supervisor, then API) by [`Platform::stop`].

use dash_api::{ApiSettings, RunningApp};
use dash_ha::supervisor::Supervisor;
use dash_ha::{ClusterError, LocalCluster};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Why the platform could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error("{context}: {source}")]
    Io {
        context: &'static str,
        source: std::io::Error,
    },
}

impl PlatformError {
    pub(crate) fn io(context: &'static str, source: std::io::Error) -> PlatformError {
        PlatformError::Io { context, source }
    }
}

/// The supervisor and the API of one local cluster, running.
pub struct Platform {
    app: RunningApp,
    supervisor: JoinHandle<()>,
    stop_supervisor: watch::Sender<bool>,
}

impl Platform {
    /// Starts the supervisor on `cluster` and the API against every node of
    /// it (the API writes to whichever is the primary now). The API accepts
    /// the cluster's recorded token when `api` names none.
    pub async fn start(
        cluster: LocalCluster,
        mut api: ApiSettings,
    ) -> Result<Platform, PlatformError> {
        let pool_size = api.database.pool_size;
        api.database = cluster.topo.db_settings();
        api.database.pool_size = pool_size;
        if api.tokens.is_empty() {
            api.tokens.push(cluster.topo.api_token.clone());
        }
        let supervisor = Supervisor::new(cluster)?;
        let app = dash_api::App::build(api)
            .await
            .map_err(|e| PlatformError::io("bind the API ports", e))?
            .spawn();
        let (stop_supervisor, mut stopped) = watch::channel(false);
        let supervisor = tokio::spawn(supervisor.run(async move {
            let _ = stopped.wait_for(|s| *s).await;
        }));
        Ok(Platform {
            app,
            supervisor,
            stop_supervisor,
        })
    }

    /// `http://host:port` of the REST API.
    pub fn base_url(&self) -> &str {
        self.app.base_url()
    }

    /// Stops the supervisor (no failover starts after this), then the API
    /// (in-flight requests drain). The nodes keep running: their owner stops
    /// them, by what the record says now.
    pub async fn stop(self) -> Result<(), PlatformError> {
        let _ = self.stop_supervisor.send(true);
        let _ = self.supervisor.await;
        self.app
            .stop()
            .await
            .map_err(|e| PlatformError::io("stop the API", e))
    }
}
