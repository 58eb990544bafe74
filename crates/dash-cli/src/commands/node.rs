//! `dashctl node`: the HA agent of one PostgreSQL host, until SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{serve::shutdown_signal, UsageError, EXIT_OK};

#[derive(Debug, Args)]
pub struct NodeArgs {
    /// Member name: unique in the cluster; also the replication application_name.
    #[arg(long, env = "DASH_NODE_NAME")]
    pub name: String,
    /// Cluster name: the agents of one cluster share the etcd prefix /dash/<cluster>/.
    #[arg(long, env = "DASH_CLUSTER", default_value = "dash")]
    pub cluster: String,
    /// etcd client URLs, comma-separated.
    #[arg(
        long,
        env = "DASH_ETCD_ENDPOINTS",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:2379"
    )]
    pub etcd: Vec<String>,
    /// The PostgreSQL data directory this agent owns (created by initdb or a clone when empty).
    #[arg(long, env = "DASH_PG_DATA")]
    pub pg_data: PathBuf,
    /// PostgreSQL port.
    #[arg(long, env = "DASH_PG_PORT", default_value_t = 5432)]
    pub pg_port: u16,
    /// PostgreSQL listen_addresses.
    #[arg(long, env = "DASH_PG_LISTEN", default_value = "*")]
    pub pg_listen: String,
    /// Host name or address other members and clients reach this node by (its PostgreSQL and node API).
    #[arg(long, env = "DASH_NODE_ADVERTISE")]
    pub advertise: String,
    /// Node API port (/primary, /replica, /health, /status, /metrics).
    #[arg(long, env = "DASH_NODE_PORT", default_value_t = 8008)]
    pub node_port: u16,
    /// Address the node API binds.
    #[arg(long, env = "DASH_NODE_BIND", default_value = "0.0.0.0")]
    pub node_bind: std::net::IpAddr,
    /// Leader lease TTL (at least 2s). A primary that cannot renew stops writing before it expires.
    #[arg(long, env = "DASH_NODE_TTL", default_value = "3s", value_parser = humantime::parse_duration)]
    pub ttl: Duration,
    /// How often the agent looks at its PostgreSQL and at etcd.
    #[arg(long, env = "DASH_NODE_TICK", default_value = "100ms", value_parser = humantime::parse_duration)]
    pub tick: Duration,
    /// Asynchronous replication: no commit waits for a standby, and a failover may lose the newest writes.
    #[arg(long = "async", env = "DASH_ASYNC")]
    pub asynchronous: bool,
    /// Database superuser (created by initdb; the API connects as this user).
    #[arg(long, env = "DATABASE_USER", default_value = "dash_user")]
    pub pg_user: String,
    /// Application database created at initialization.
    #[arg(long, env = "DATABASE_NAME", default_value = "dash")]
    pub database: String,
    /// In Kubernetes: this pod's name; the agent keeps its label dash.io/role=primary|replica current.
    #[arg(long, env = "POD_NAME")]
    pub kube_pod: Option<String>,
    /// In Kubernetes: the pod's namespace.
    #[arg(long, env = "POD_NAMESPACE", default_value = "dash")]
    pub kube_namespace: String,
    /// pgBackRest config file of the repository this node archives its WAL into (archive_mode=always, archive_timeout=60s) and that `POST /backup` on the node API backs up into; without it, no archiving. `POST /backup` needs `Authorization: Bearer $DASH_NODE_TOKEN` (set in this agent's environment, never on its command line); without DASH_NODE_TOKEN the agent takes no backup on request.
    #[arg(long, env = "DASH_PGBACKREST_CONFIG", value_name = "FILE")]
    pub pgbackrest_config: Option<std::path::PathBuf>,
    /// The pgBackRest stanza.
    #[arg(long, env = "DASH_PGBACKREST_STANZA", default_value = dash_backrest::DEFAULT_STANZA, value_name = "NAME")]
    pub pgbackrest_stanza: String,
}

pub async fn run(args: NodeArgs) -> anyhow::Result<u8> {
    crate::telemetry::init(false, crate::telemetry::SERVICE);
    let password = password()?;
    let backrest = match &args.pgbackrest_config {
        Some(config) => Some(
            dash_backrest::Repo::open(config, &args.pgbackrest_stanza)
                .map_err(|e| UsageError(format!("--pgbackrest-config: {e}")))?,
        ),
        None => None,
    };
    let opts = dash_node::NodeOptions {
        name: args.name,
        cluster: args.cluster,
        etcd: args.etcd,
        pg_data: args.pg_data,
        pg_port: args.pg_port,
        pg_listen: args.pg_listen,
        advertise: args.advertise,
        api_bind: SocketAddr::new(args.node_bind, args.node_port),
        ttl: args.ttl,
        tick: args.tick,
        synchronous: !args.asynchronous,
        superuser: args.pg_user,
        password,
        database: args.database,
        etcd_timeout: Duration::from_millis(800),
        kube_pod: args.kube_pod.map(|pod| (args.kube_namespace, pod)),
        backrest,
        node_token: std::env::var("DASH_NODE_TOKEN")
            .ok()
            .filter(|t| !t.is_empty()),
    };
    opts.validate().map_err(UsageError)?;
    dash_node::run(opts, shutdown_signal()).await?;
    Ok(EXIT_OK)
}

/// DATABASE_PASSWORD, or the contents of DATABASE_PASSWORD_FILE.
fn password() -> anyhow::Result<String> {
    if let Ok(p) = std::env::var("DATABASE_PASSWORD") {
        if !p.is_empty() {
            return Ok(p);
        }
    }
    if let Ok(path) = std::env::var("DATABASE_PASSWORD_FILE") {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| UsageError(format!("DATABASE_PASSWORD_FILE {path}: {e}")))?;
        return Ok(text.trim_end_matches(['\n', '\r']).to_string());
    }
    Err(UsageError("set DATABASE_PASSWORD or DATABASE_PASSWORD_FILE".into()).into())
}
