//! Creating the local cluster: `initdb` of the primary, clones of the
//! replicas, and the first record of its topology.

use std::path::Path;

use dash_pg::{kill_data_dir_processes, server_command, PgBinaries, PgError, PgNode};
use dash_store::Secret;

use super::{random_secret, ClusterError, ClusterOptions, LocalCluster};
use crate::topology::{NodeInfo, Role, Topology};

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
            api_token: Secret::from(opts.api_token.clone().unwrap_or_else(|| random_secret(32))),
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
