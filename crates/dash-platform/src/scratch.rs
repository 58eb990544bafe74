//! A private cluster in a temp dir on free loopback ports: chaos drills and
//! tests. Every node's processes are killed and the dir removed on drop,
//! whatever happened (the agents and etcd also die with the platform).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use dash_pg::kill_data_dir_processes;

use crate::create::ClusterOptions;
use crate::topology::Topology;
use crate::PlatformError;

/// A throwaway cluster record: its home is a temp dir, every port is free,
/// and nothing of it survives the drop.
pub struct ScratchCluster {
    home: Option<tempfile::TempDir>,
    topo: Topology,
    keep: bool,
}

impl ScratchCluster {
    /// Records a cluster of a leader and `replicas` replicas on free ports
    /// (start it with [`crate::Platform::start`] on [`ScratchCluster::home`]).
    pub fn create(
        replicas: usize,
        synchronous: bool,
        api_token: Option<String>,
    ) -> Result<ScratchCluster, PlatformError> {
        let home = tempfile::Builder::new()
            .prefix("dash-cluster-")
            .tempdir()
            .map_err(|e| PlatformError::io("create a temp dir", e))?;
        // The server user must be able to reach the nodes' directories.
        std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o755))
            .map_err(|e| PlatformError::io("open the temp dir to the server user", e))?;
        let ports = crate::create::free_ports(2 * (replicas + 1) + 2, &[]);
        let (pg_ports, rest) = ports.split_at(replicas + 1);
        let (node_ports, etcd) = rest.split_at(replicas + 1);
        let opts = ClusterOptions {
            replicas,
            synchronous,
            pg_ports: pg_ports.to_vec(),
            node_ports: node_ports.to_vec(),
            etcd_client_port: etcd[0],
            etcd_peer_port: etcd[1],
            api_url: String::new(),
            metrics_url: String::new(),
            api_token,
        };
        let topo = Topology::create(home.path(), &opts)?;
        Ok(ScratchCluster {
            home: Some(home),
            topo,
            keep: false,
        })
    }

    /// Where the cluster lives (`cluster.json`, etcd, a directory per node).
    pub fn home(&self) -> &Path {
        self.home
            .as_ref()
            .expect("the home lives until drop")
            .path()
    }

    pub fn topology(&self) -> &Topology {
        &self.topo
    }

    /// Keeps the directory (nodes stopped, logs kept) after the drop.
    pub fn keep(&mut self) {
        self.keep = true;
    }
}

impl Drop for ScratchCluster {
    fn drop(&mut self) {
        for n in &self.topo.nodes {
            kill_data_dir_processes(&n.data_dir);
        }
        if let Some(h) = self.home.take() {
            if self.keep {
                eprintln!("kept the private cluster in {}", h.keep().display());
            }
        }
    }
}
