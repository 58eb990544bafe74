//! A private cluster in a temp dir on free loopback ports: chaos drills and
//! tests. Every node's processes are killed and the dir removed on drop,
//! whatever happened.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use dash_ha::{ClusterOptions, LocalCluster};
use dash_pg::kill_data_dir_processes;

use crate::PlatformError;

/// A throwaway [`LocalCluster`]: its home is a temp dir, its nodes listen on
/// free ports, and nothing of it survives the drop.
pub struct ScratchCluster {
    home: Option<tempfile::TempDir>,
    dirs: Vec<PathBuf>,
    keep: bool,
}

impl ScratchCluster {
    /// A primary and `replicas` streaming replicas, created and started.
    /// The options' `base_port` and `ports` are replaced by free ports.
    pub fn create(
        mut opts: ClusterOptions,
        progress: &dyn Fn(&str),
    ) -> Result<(ScratchCluster, LocalCluster), PlatformError> {
        let home = tempfile::Builder::new()
            .prefix("dash-cluster-")
            .tempdir()
            .map_err(|e| PlatformError::io("create a temp dir", e))?;
        // The server user must be able to reach the nodes' directories.
        std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o755))
            .map_err(|e| PlatformError::io("open the temp dir to the server user", e))?;
        let mut ports: Vec<u16> = Vec::new();
        while ports.len() <= opts.replicas {
            let p = dash_pg::free_port();
            if !ports.contains(&p) {
                ports.push(p);
            }
        }
        opts.base_port = ports[0];
        opts.ports = Some(ports);
        let mut scratch = ScratchCluster {
            home: Some(home),
            dirs: Vec::new(),
            keep: false,
        };
        let cluster = LocalCluster::create(scratch.home(), &opts, progress)?;
        scratch.dirs = cluster
            .topo
            .nodes
            .iter()
            .map(|n| n.data_dir.clone())
            .collect();
        Ok((scratch, cluster))
    }

    /// Where the cluster lives (`cluster.json` and a directory per node).
    pub fn home(&self) -> &Path {
        self.home
            .as_ref()
            .expect("the home lives until drop")
            .path()
    }

    /// Keeps the directory (nodes stopped, server logs kept) after the drop.
    pub fn keep(&mut self) {
        self.keep = true;
    }
}

impl Drop for ScratchCluster {
    fn drop(&mut self) {
        for d in &self.dirs {
            kill_data_dir_processes(d);
        }
        if let Some(h) = self.home.take() {
            if self.keep {
                eprintln!("kept the private cluster in {}", h.keep().display());
            }
        }
    }
}
