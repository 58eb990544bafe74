//! Where `bench compare` runs: one private PostgreSQL node (test settings
//! or durable ones, data under /dev/shm when it has room), or the
//! replicated platform as `dashctl up` runs it (a synchronous replica,
//! data on disk, a node agent per node) with both sides on its primary.

use std::time::Duration;

use dash_pg::{Login, PgBinaries, ScratchNode};
use dash_platform::{Platform, PlatformOptions, ScratchCluster};
use dash_store::HostPort;

use super::{CompareError, CompareOptions};

/// What keeps the database running until the comparison ends.
enum Hold {
    /// Stopped and removed on drop.
    Node {
        _node: ScratchNode,
    },
    Platform(Box<Platform>, ScratchCluster),
}

/// The database both sides use: the API's hosts and pgbench's server.
pub(super) struct Target {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub dbname: String,
    pub bins: PgBinaries,
    /// What the API lists (every node of a platform).
    pub hosts: Vec<HostPort>,
    /// How the data is kept, for the report.
    pub where_data: String,
    hold: Option<Hold>,
}

impl Target {
    /// A private node, as `bench compare` always ran.
    pub async fn node(a: &CompareOptions) -> Result<Target, CompareError> {
        let mut settings = vec![(
            "max_connections".to_string(),
            (2 * a.concurrency + 30).max(100).to_string(),
        )];
        if a.durable {
            for name in ["fsync", "synchronous_commit", "full_page_writes"] {
                settings.push((name.to_string(), "on".to_string()));
            }
        }
        let node = tokio::task::spawn_blocking(move || {
            let refs: Vec<(&str, &str)> = (settings.iter())
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            ScratchNode::start_with(&refs)
        })
        .await
        .map_err(CompareError::task)??;
        let dbname = node.fresh_database()?;
        Ok(Target {
            host: node.host().to_string(),
            port: node.port(),
            user: node.superuser().to_string(),
            password: node.password().to_string(),
            bins: node.binaries().clone(),
            hosts: vec![HostPort {
                host: node.host().to_string(),
                port: node.port(),
            }],
            where_data: format!("data directory {}", node.data_dir().display()),
            dbname,
            hold: Some(Hold::Node { _node: node }),
        })
    }

    /// The replicated platform: a leader and a synchronous replica run by
    /// their node agents, on disk; both sides on the leader.
    pub async fn platform(
        a: &CompareOptions,
        progress: &dyn Fn(&str),
    ) -> Result<Target, CompareError> {
        let platform_err = |e: dash_platform::PlatformError| CompareError::Platform(e.to_string());
        let cluster = ScratchCluster::create(1, true, None).map_err(platform_err)?;
        let api = dash_api::ApiSettings {
            bind: [127, 0, 0, 1].into(),
            api_port: 0,
            metrics_port: 0,
            ..dash_api::ApiSettings::default()
        };
        let opts = PlatformOptions {
            dashctl: a.serve_program.clone(),
            ha_limit: Duration::from_secs(180),
            backups: true,
        };
        let platform = Platform::start(cluster.home(), api, &opts, progress)
            .await
            .map_err(platform_err)?;
        let topo = cluster.topology().clone();
        let leader = dash_platform::ha::leader(&topo)
            .await
            .and_then(|name| topo.node(&name).cloned())
            .ok_or_else(|| CompareError::Platform("no leader after the start".into()))?;
        Ok(Target {
            host: leader.host.clone(),
            port: leader.port,
            user: topo.user.clone(),
            password: topo.password.expose().to_string(),
            dbname: topo.dbname.clone(),
            bins: PgBinaries::locate()?,
            hosts: topo.nodes.iter().map(|n| n.host_port()).collect(),
            where_data: format!(
                "the replicated platform (dashctl up's engine): leader {} and a synchronous replica, data on disk under {}",
                leader.name,
                cluster.home().display()
            ),
            hold: Some(Hold::Platform(Box::new(platform), cluster)),
        })
    }

    /// The API's `DATABASE_*` for this database.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let hosts: Vec<String> = self.hosts.iter().map(|h| h.to_string()).collect();
        vec![
            ("DATABASE_HOST", hosts.join(",")),
            ("DATABASE_NAME", self.dbname.clone()),
            ("DATABASE_USER", self.user.clone()),
            ("DATABASE_PASSWORD", self.password.clone()),
        ]
    }

    /// Runs `sql` with psql, off the async threads.
    pub async fn psql(&self, sql: &str) -> Result<String, CompareError> {
        let (bins, host, user, password, db, sql) = (
            self.bins.clone(),
            self.host.clone(),
            self.user.clone(),
            self.password.clone(),
            self.dbname.clone(),
            sql.to_string(),
        );
        let port = self.port;
        Ok(tokio::task::spawn_blocking(move || {
            let login = Login {
                host: &host,
                port,
                user: &user,
                password: &password,
                db: &db,
            };
            dash_pg::psql(&bins, &login, &sql)
        })
        .await
        .map_err(CompareError::task)??)
    }

    /// Stops the platform in order (a node: dropped).
    pub async fn stop(mut self) {
        if let Some(Hold::Platform(p, cluster)) = self.hold.take() {
            let _ = p.stop(&|_| {}).await;
            drop(cluster);
        }
    }
}
