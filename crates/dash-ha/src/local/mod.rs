//! The local HA cluster under `$DASH_HOME`: opening its record, reaching
//! its nodes, and starting and stopping them in order. Creating it is in
//! `create`, the per-role configuration and fencing in `roles`, bringing a
//! node back as a replica in `rejoin`.

use std::path::{Path, PathBuf};

use rand::Rng;

use super::topology::{NodeInfo, Role, Topology};
use dash_pg::{
    give_to_server_user, kill_data_dir_processes, NodeConfig, PgBinaries, PgError, PgNode, StopMode,
};

/// Options of a new local cluster.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    pub replicas: usize,
    pub synchronous: bool,
    /// First node's port; node N listens on `base_port + N`.
    pub base_port: u16,
    /// Exact ports per node instead (tests and chaos pick free ones).
    pub ports: Option<Vec<u16>>,
    pub api_url: String,
    pub metrics_url: String,
    pub api_token: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(transparent)]
    Pg(#[from] PgError),
    #[error(transparent)]
    Topology(#[from] super::topology::TopologyError),
    #[error("{0}")]
    Invalid(String),
}

fn random_secret(len: usize) -> String {
    const CHARS: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char)
        .collect()
}

/// Settings every node gets on its command line (never copied by a rewind).
pub fn node_settings(name: &str) -> Vec<(String, String)> {
    vec![
        ("cluster_name".into(), name.into()),
        ("wal_retrieve_retry_interval".into(), "10ms".into()),
        ("wal_receiver_status_interval".into(), "1s".into()),
        ("wal_sender_timeout".into(), "5s".into()),
        ("wal_receiver_timeout".into(), "5s".into()),
    ]
}

/// The local cluster: its home, server binaries and recorded topology.
pub struct LocalCluster {
    pub home: PathBuf,
    pub bins: PgBinaries,
    pub topo: Topology,
}

mod create;
mod rejoin;
mod roles;

impl LocalCluster {
    /// Opens an existing cluster from its record.
    pub fn open(home: &Path) -> Result<LocalCluster, ClusterError> {
        let bins = PgBinaries::locate()?;
        let home = home
            .canonicalize()
            .map_err(|e| PgError::io(format!("resolve {}", home.display()), e))?;
        let topo = Topology::load(&home)?;
        let cluster = LocalCluster { home, bins, topo };
        cluster.write_passfile()?;
        Ok(cluster)
    }

    pub fn config(&self, n: &NodeInfo) -> NodeConfig {
        let mut c = NodeConfig::new(&n.data_dir, n.port, self.topo.password.expose());
        c.host = n.host.clone();
        c.superuser = self.topo.user.clone();
        c.settings = node_settings(&n.name);
        c
    }

    pub fn pg(&self, name: &str) -> Result<PgNode, ClusterError> {
        let n = self.info(name)?;
        Ok(PgNode::open(&self.bins, self.config(&n))?)
    }

    pub fn info(&self, name: &str) -> Result<NodeInfo, ClusterError> {
        self.topo
            .node(name)
            .cloned()
            .ok_or_else(|| ClusterError::Invalid(format!("no node named {name}")))
    }

    /// The password file the servers use to reach each other; the password
    /// never appears in a command line or a conninfo string.
    pub fn passfile(&self) -> PathBuf {
        self.home.join("pgpass")
    }

    fn write_passfile(&self) -> Result<(), ClusterError> {
        use std::os::unix::fs::PermissionsExt;
        let path = self.passfile();
        write_file(
            &path,
            &format!(
                "*:*:*:{}:{}\n",
                self.topo.user,
                self.topo.password.expose().replace(':', "\\:")
            ),
        )?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| PgError::io(format!("chmod {}", path.display()), e))?;
        Ok(())
    }

    fn conninfo(&self, n: &NodeInfo, application_name: &str) -> String {
        format!(
            "host={} port={} user={} passfile={} dbname=postgres application_name={} connect_timeout=1",
            n.host,
            n.port,
            self.topo.user,
            self.passfile().display(),
            application_name
        )
    }

    /// Starts every node: the primary first, then replicas. Fenced nodes stay
    /// down; the supervisor rejoins them. A replica that cannot start (its
    /// history diverged, its files are damaged) is recorded as needing a
    /// rejoin instead of stopping the platform: the supervisor rewinds or
    /// re-clones it.
    pub fn start_all(&mut self, progress: &dyn Fn(&str)) -> Result<(), ClusterError> {
        let mut order: Vec<NodeInfo> = self.topo.primary().cloned().into_iter().collect();
        order.extend(self.topo.replicas().cloned());
        for n in order {
            let pg = self.pg(&n.name)?;
            if pg.is_running() {
                progress(&format!("{} already running (port {})", n.name, n.port));
                continue;
            }
            self.write_role_conf(&n.name)?;
            progress(&format!(
                "starting {} ({:?}, port {})",
                n.name, n.role, n.port
            ));
            match pg.start() {
                Ok(()) => {}
                Err(e) if n.role == Role::Replica => {
                    progress(&format!(
                        "{} did not start ({e}); it will be rejoined from the primary",
                        n.name
                    ));
                    kill_data_dir_processes(&n.data_dir);
                    self.topo.node_mut(&n.name).expect("recorded").role = Role::Fenced;
                    self.write_role_conf(&n.name)?;
                    self.topo.save(&self.home)?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Stops every node, replicas first so the primary's last writes reach them.
    pub fn stop_all(&self, progress: &dyn Fn(&str)) {
        let mut order: Vec<&NodeInfo> = self
            .topo
            .nodes
            .iter()
            .filter(|n| n.role != Role::Primary)
            .collect();
        order.extend(self.topo.primary());
        for n in order {
            if let Ok(pg) = self.pg(&n.name) {
                if pg.is_running() {
                    progress(&format!("stopping {}", n.name));
                    if let Err(e) = pg.stop(StopMode::Fast) {
                        progress(&format!("{}: fast stop failed ({e}); killing", n.name));
                        kill_data_dir_processes(&n.data_dir);
                    }
                }
            }
        }
    }
}

fn write_file(path: &Path, text: &str) -> Result<(), ClusterError> {
    std::fs::write(path, text).map_err(|e| PgError::io(format!("write {}", path.display()), e))?;
    give_to_server_user(path)?;
    Ok(())
}

fn remove_file(path: &Path) -> Result<(), ClusterError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(PgError::io(format!("remove {}", path.display()), e).into()),
    }
}
