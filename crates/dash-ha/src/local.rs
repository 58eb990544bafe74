//! The local HA cluster under `$DASH_HOME`: creating it (`initdb`, clones),
//! starting and stopping it in order, the per-role configuration that Dash
//! owns (`postgresql.auto.conf` and `standby.signal`, rewritten after every
//! rewind so nothing copied from another node survives), fencing, and
//! rejoining a former primary with `pg_rewind` (or a fresh clone).

use std::path::{Path, PathBuf};

use rand::Rng;

use super::topology::{NodeInfo, Role, Topology};
use dash_pg::{
    give_to_server_user, kill_data_dir_processes, server_command, NodeConfig, PgBinaries, PgError,
    PgNode, StopMode,
};
use dash_store::Secret;

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

impl LocalCluster {
    /// Creates the primary and its replicas under `home` and records the topology.
    pub fn create(
        home: &Path,
        opts: &ClusterOptions,
        progress: &dyn Fn(&str),
    ) -> Result<LocalCluster, ClusterError> {
        let bins = PgBinaries::locate()?;
        std::fs::create_dir_all(home)
            .map_err(|e| PgError::io(format!("create {}", home.display()), e))?;
        let home = home
            .canonicalize()
            .map_err(|e| PgError::io(format!("resolve {}", home.display()), e))?;
        check_reachable(&home)?;
        let mut topo = Topology {
            version: 1,
            nodes: Vec::new(),
            synchronous: opts.synchronous,
            dbname: "dash".into(),
            user: "dash_user".into(),
            password: Secret::new(random_secret(24)),
            api_url: opts.api_url.clone(),
            metrics_url: opts.metrics_url.clone(),
            api_token: opts.api_token.clone().unwrap_or_else(|| random_secret(32)),
            epoch: 1,
        };
        for i in 0..=opts.replicas {
            topo.nodes.push(NodeInfo {
                name: format!("node{i}"),
                host: "127.0.0.1".into(),
                port: opts
                    .ports
                    .as_ref()
                    .and_then(|p| p.get(i).copied())
                    .unwrap_or(opts.base_port + i as u16),
                data_dir: home.join(format!("node{i}")),
                role: if i == 0 { Role::Primary } else { Role::Replica },
            });
        }
        let cluster = LocalCluster { home, bins, topo };
        match cluster.build(progress) {
            Ok(()) => Ok(cluster),
            Err(e) => {
                // Nothing half-built keeps running.
                for n in &cluster.topo.nodes {
                    kill_data_dir_processes(&n.data_dir);
                }
                Err(e)
            }
        }
    }

    fn build(&self, progress: &dyn Fn(&str)) -> Result<(), ClusterError> {
        let cluster = self;
        cluster.write_passfile()?;
        let primary = cluster.topo.nodes[0].clone();
        progress(&format!(
            "initdb {} (primary, port {})",
            primary.name, primary.port
        ));
        let node = PgNode::init(&cluster.bins, cluster.config(&primary))?;
        // No synchronous standby until one exists, or the first write would wait forever.
        cluster.write_role_conf_with(&primary.name, &[])?;
        node.start()?;
        node.psql("postgres", "CREATE DATABASE dash")?;
        for r in &cluster.topo.nodes[1..] {
            progress(&format!("cloning {} (replica, port {})", r.name, r.port));
            let replica = PgNode::clone_replica(&cluster.bins, &node, cluster.config(r), None)?;
            cluster.write_role_conf(&r.name)?;
            replica.start()?;
        }
        // Synchronous replication only once a standby exists to acknowledge.
        cluster.write_role_conf(&primary.name)?;
        node.psql("postgres", "SELECT pg_reload_conf()")?;
        cluster.topo.save(&cluster.home)?;
        Ok(())
    }

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

    /// Replicas that may acknowledge a synchronous commit for the current primary.
    pub fn sync_names(&self) -> Vec<String> {
        self.topo.replicas().map(|n| n.name.clone()).collect()
    }

    /// Rewrites the node's Dash-owned configuration for its recorded role.
    /// Primary: `synchronous_standby_names` over the given standbys (or all
    /// replicas). Replica and fenced: follow the primary, and `standby.signal`
    /// so the node can only ever start read-only.
    pub fn write_role_conf(&self, name: &str) -> Result<(), ClusterError> {
        let names = if self.topo.synchronous {
            self.sync_names()
        } else {
            Vec::new()
        };
        self.write_role_conf_with(name, &names)
    }

    pub fn write_role_conf_with(&self, name: &str, sync: &[String]) -> Result<(), ClusterError> {
        let n = self.info(name)?;
        let mut lines =
            vec!["# Managed by Dash: rewritten on every role change and rejoin.".to_string()];
        let signal = n.data_dir.join("standby.signal");
        match n.role {
            Role::Primary => {
                let ssn = if sync.is_empty() {
                    String::new()
                } else {
                    format!("ANY 1 ({})", sync.join(", "))
                };
                lines.push(format!("synchronous_standby_names = '{ssn}'"));
                remove_file(&signal)?;
            }
            Role::Replica | Role::Fenced => {
                lines.push("synchronous_standby_names = ''".into());
                if let Some(p) = self.topo.primary() {
                    lines.push(format!(
                        "primary_conninfo = '{}'",
                        self.conninfo(p, &n.name).replace('\'', "''")
                    ));
                }
                lines.push("recovery_target_timeline = 'latest'".into());
                write_file(&signal, "")?;
            }
        }
        write_file(
            &n.data_dir.join("postgresql.auto.conf"),
            &(lines.join("\n") + "\n"),
        )?;
        Ok(())
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

    /// Fences `name`: kills every process running in its data directory (works
    /// on a frozen server too), makes it start only as a standby, and records
    /// the fence durably before anything is promoted.
    pub fn fence(&mut self, name: &str) -> Result<(), ClusterError> {
        let n = self.info(name)?;
        kill_data_dir_processes(&n.data_dir);
        self.topo.node_mut(name).expect("checked").role = Role::Fenced;
        self.write_role_conf(name)?;
        self.topo.save(&self.home)?;
        Ok(())
    }

    /// Brings a fenced (or stale) node back as a streaming replica of the
    /// current primary: `pg_rewind`, or a fresh clone when rewind cannot.
    pub fn rejoin(
        &mut self,
        name: &str,
        progress: &dyn Fn(&str),
    ) -> Result<&'static str, ClusterError> {
        let n = self.info(name)?;
        let primary = self
            .topo
            .primary()
            .cloned()
            .ok_or_else(|| ClusterError::Invalid("no primary to follow".into()))?;
        kill_data_dir_processes(&n.data_dir);
        // pg_rewind finishes crash recovery in single-user mode, which refuses
        // to run with standby.signal. Nothing starts a fenced node meanwhile:
        // it is recorded as fenced, and the signal is back before it starts.
        remove_file(&n.data_dir.join("standby.signal"))?;
        let mut cmd = server_command(&self.bins.path("pg_rewind"));
        cmd.arg("--target-pgdata").arg(&n.data_dir);
        cmd.arg(format!(
            "--source-server={}",
            self.conninfo(&primary, &n.name)
        ));
        cmd.env("PGPASSFILE", self.passfile());
        let source = self.pg(&primary.name)?;
        // A just-promoted primary records its new timeline only at its next
        // checkpoint; before that pg_rewind sees one timeline and rewinds nothing.
        source.psql("postgres", "CHECKPOINT")?;
        let rewound = dash_pg::run_command(cmd)
            .map_err(|e| e.to_string())
            .and_then(|_| {
                self.topo.node_mut(name).expect("checked").role = Role::Replica;
                self.write_role_conf(name).map_err(|e| e.to_string())?;
                let pg = self.pg(name).map_err(|e| e.to_string())?;
                pg.start().map_err(|e| e.to_string())?;
                if self.wait_streaming(name, std::time::Duration::from_secs(10)) {
                    Ok(())
                } else {
                    let _ = pg.stop(StopMode::Immediate);
                    Err("it did not stream from the primary after the rewind".into())
                }
            });
        let how = match rewound {
            Ok(()) => return Ok("rewound"),
            Err(e) => {
                progress(&format!(
                    "pg_rewind of {name} did not work ({e}); cloning it afresh"
                ));
                kill_data_dir_processes(&n.data_dir);
                std::fs::remove_dir_all(&n.data_dir)
                    .map_err(|e| PgError::io(format!("remove {}", n.data_dir.display()), e))?;
                PgNode::clone_replica(&self.bins, &source, self.config(&n), None)?;
                "recloned"
            }
        };
        self.topo.node_mut(name).expect("checked").role = Role::Replica;
        self.write_role_conf(name)?;
        self.pg(name)?.start()?;
        Ok(how)
    }
}

impl LocalCluster {
    /// Whether `name` shows up as streaming on the primary within `limit`.
    pub fn wait_streaming(&self, name: &str, limit: std::time::Duration) -> bool {
        let Some(primary) = self.topo.primary().and_then(|p| self.pg(&p.name).ok()) else {
            return false;
        };
        let sql = format!(
            "SELECT count(*) FROM pg_stat_replication WHERE application_name = '{}' AND state = 'streaming'",
            name.replace('\'', "")
        );
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if primary
                .psql("postgres", &sql)
                .map(|o| o.trim() == "1")
                .unwrap_or(false)
            {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        false
    }
}

/// As root the servers run as the `postgres` user, which must be able to
/// reach `home` through every parent directory (`/root` is 0700, say).
fn check_reachable(home: &Path) -> Result<(), ClusterError> {
    if !nix::unistd::Uid::effective().is_root() {
        return Ok(());
    }
    let ok = server_command(Path::new("/usr/bin/test"))
        .arg("-x")
        .arg(home)
        .status()
        .map(|s| s.success())
        .unwrap_or(true);
    if ok {
        return Ok(());
    }
    Err(ClusterError::Invalid(format!(
        "the `{}` OS user, which runs PostgreSQL when Dash runs as root, cannot reach {}: a parent directory \
         is not searchable by it. Set DASH_HOME to a directory it can reach (e.g. /var/lib/dash) or make the \
         parents searchable (chmod o+x)",
        dash_pg::SERVER_USER,
        home.display()
    )))
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
