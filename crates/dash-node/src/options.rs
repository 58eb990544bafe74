//! How one agent is configured (`dashctl node` flags and environment).

use std::time::Duration;

/// One agent's settings.
#[derive(Clone)]
pub struct NodeOptions {
    /// Member name: unique in the cluster, also the replication `application_name`.
    pub name: String,
    /// Cluster name: the etcd prefix `/dash/<cluster>/`.
    pub cluster: String,
    /// etcd client URLs.
    pub etcd: Vec<String>,
    pub pg_data: std::path::PathBuf,
    pub pg_port: u16,
    /// `listen_addresses` of the server.
    pub pg_listen: String,
    /// The host other members and clients reach this node by.
    pub advertise: String,
    /// Address the node API binds (port 8008 by default).
    pub api_bind: std::net::SocketAddr,
    /// Leader lease TTL.
    pub ttl: Duration,
    /// How often the agent looks and decides.
    pub tick: Duration,
    /// Synchronous replication (no acknowledged write lost by a failover).
    pub synchronous: bool,
    pub superuser: String,
    pub password: String,
    pub database: String,
    /// Every etcd call's deadline.
    pub etcd_timeout: Duration,
    /// In Kubernetes: (namespace, pod) whose `dash.io/role` label the agent keeps current.
    pub kube_pod: Option<(String, String)>,
    /// The pgBackRest repository this member archives its WAL into
    /// (`archive_mode=always`), and backs up into on `POST /backup`.
    pub backrest: Option<dash_backrest::Repo>,
    /// `DASH_NODE_TOKEN`: the bearer token the node API's one mutating call
    /// (`POST /backup`) needs. Without it the agent takes no backup on request.
    pub node_token: Option<String>,
}

impl std::fmt::Debug for NodeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeOptions")
            .field("name", &self.name)
            .field("cluster", &self.cluster)
            .field("etcd", &self.etcd)
            .field("pg_data", &self.pg_data)
            .field("pg_port", &self.pg_port)
            .field("advertise", &self.advertise)
            .field("api_bind", &self.api_bind)
            .field("ttl", &self.ttl)
            .field("synchronous", &self.synchronous)
            .field("backrest", &self.backrest)
            .field("password", &"***")
            .field("node_token", &self.node_token.as_ref().map(|_| "***"))
            .finish()
    }
}

impl NodeOptions {
    /// Checks what cannot be right whatever the environment.
    pub fn validate(&self) -> Result<(), String> {
        let valid_name = !self.name.is_empty()
            && self.name.len() <= 63
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid_name {
            return Err(format!(
                "--name {:?}: use 1-63 letters, digits, '-' or '_'",
                self.name
            ));
        }
        if self.etcd.is_empty() {
            return Err("--etcd: give at least one etcd endpoint".into());
        }
        if self.ttl < Duration::from_secs(2) {
            return Err(format!(
                "--ttl {:?}: at least 2s (etcd's own minimum lease follows its election timeout)",
                self.ttl
            ));
        }
        if self.tick.is_zero() || self.tick * 4 > self.ttl {
            return Err("the tick must be at most a quarter of the TTL".into());
        }
        if self.password.is_empty() {
            return Err("DATABASE_PASSWORD (or DATABASE_PASSWORD_FILE) must be set".into());
        }
        Ok(())
    }
}
