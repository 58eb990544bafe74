//! Growing a recorded cluster: one more node in `cluster.json` while the
//! platform runs (`dashctl db add-replica`). The running platform follows
//! its record ([`crate::Platform::follow_record`]): it starts an agent for
//! each node it does not run yet, and that agent, finding an empty data
//! directory, clones the leader and streams from it.

use std::fs::File;
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};

use crate::create::{free_ports, taken};
use crate::topology::{NodeInfo, Topology};
use crate::PlatformError;

/// What the caller asked of the new node (each `None`: chosen here).
#[derive(Debug, Clone, Default)]
pub struct NewNode {
    pub name: Option<String>,
    pub pg_port: Option<u16>,
    pub node_port: Option<u16>,
}

/// The longest node name (it is also a replication `application_name`).
const MAX_NAME: usize = 63;

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && (name.chars()).all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Whether `dir` is absent or an empty directory (an agent deletes what it
/// finds in a data directory it clones into: never an operator's files).
fn unused_dir(dir: &Path) -> bool {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => entries.next().is_none(),
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    }
}

impl Topology {
    /// The node [`Topology::add_node`] would record now: `want`'s name and
    /// ports, checked, or the first free `nodeN` and free ports.
    pub fn plan_node(&self, home: &Path, want: &NewNode) -> Result<NodeInfo, PlatformError> {
        let bad = |m: String| Err(PlatformError::Invalid(m));
        let name = match &want.name {
            Some(n) if !valid_name(n) => {
                return bad(format!(
                    "--name {n:?}: use 1-{MAX_NAME} letters, digits, '-' or '_'"
                ))
            }
            Some(n) if self.node(n).is_some() => {
                return bad(format!("--name {n}: the cluster already has a node {n}"))
            }
            Some(n) => n.clone(),
            None => (self.nodes.len()..)
                .map(|i| format!("node{i}"))
                .find(|n| self.node(n).is_none() && unused_dir(&home.join(n)))
                .expect("an unused name exists"),
        };
        let data_dir = home.join(&name);
        if !unused_dir(&data_dir) {
            return bad(format!(
                "{} exists and is not empty: choose another --name (nothing is deleted to make room)",
                data_dir.display()
            ));
        }
        let mut avoid = self.ports();
        let mut port = |flag: &str, given: Option<u16>| {
            match given {
            Some(p) if p == 0 || avoid.contains(&p) || !taken(&[p]).is_empty() => Err(
                PlatformError::Invalid(format!(
                    "{flag} {p}: in use (by this cluster's record or another program); choose another, or leave it out for a free one"
                )),
            ),
            Some(p) => {
                avoid.push(p);
                Ok(p)
            }
            None => {
                let p = free_ports(1, &avoid)[0];
                avoid.push(p);
                Ok(p)
            }
        }
        };
        let pg = port("--pg-port", want.pg_port)?;
        let node_port = port("--node-port", want.node_port)?;
        let host = (self.nodes.first()).map_or_else(|| "127.0.0.1".to_string(), |n| n.host.clone());
        Ok(NodeInfo {
            name,
            host,
            port: pg,
            node_port,
            data_dir,
        })
    }

    /// Records one more node in `home`'s `cluster.json`, under an exclusive
    /// lock so that two callers never record the same name or ports; returns
    /// it. Nothing starts here: the running platform follows its record.
    pub fn add_node(home: &Path, want: &NewNode) -> Result<NodeInfo, PlatformError> {
        let lock_path = home.join(".cluster.lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| PlatformError::io_owned(format!("open {}", lock_path.display()), e))?;
        let _lock = Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| {
            PlatformError::io_owned(format!("lock {}", lock_path.display()), e.into())
        })?;
        let mut topo = Topology::load(home)?;
        let node = topo.plan_node(home, want)?;
        topo.nodes.push(node.clone());
        topo.save(home)?;
        Ok(node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded() -> (tempfile::TempDir, Topology) {
        let dir = tempfile::tempdir().unwrap();
        let ports = free_ports(6, &[]);
        let opts = crate::ClusterOptions {
            replicas: 1,
            synchronous: true,
            pg_ports: ports[0..2].to_vec(),
            node_ports: ports[2..4].to_vec(),
            etcd_client_port: ports[4],
            etcd_peer_port: ports[5],
            api_url: "http://127.0.0.1:3001".into(),
            metrics_url: "http://127.0.0.1:9090/metrics".into(),
            api_token: None,
        };
        let topo = Topology::create(dir.path(), &opts).unwrap();
        (dir, topo)
    }

    #[test]
    fn a_node_is_recorded_with_the_next_name_and_free_ports_of_its_own() {
        let (_dir, before) = recorded();
        let home = before.nodes[0].data_dir.parent().unwrap().to_path_buf();
        let n = Topology::add_node(&home, &NewNode::default()).unwrap();
        assert_eq!(n.name, "node2");
        assert_eq!(n.data_dir, home.join("node2"));
        assert!(!before.ports().contains(&n.port) && !before.ports().contains(&n.node_port));
        assert_ne!(n.port, n.node_port);
        let after = Topology::load(&home).unwrap();
        assert_eq!(after.nodes.len(), 3);
        assert_eq!(after.node("node2"), Some(&n));
        assert_eq!(
            after.password, before.password,
            "the rest of the record is kept"
        );
        let m = Topology::add_node(&home, &NewNode::default()).unwrap();
        assert_eq!(m.name, "node3");
    }

    #[test]
    fn bad_names_taken_ports_and_used_directories_are_refused_and_nothing_is_recorded() {
        let (_dir, topo) = recorded();
        let home = topo.nodes[0].data_dir.parent().unwrap().to_path_buf();
        let held = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let busy = held.local_addr().unwrap().port();
        std::fs::create_dir_all(home.join("extra/x")).unwrap();
        let cases = [
            (Some("bad name"), None, None, "letters"),
            (Some("node1"), None, None, "already has"),
            (Some("extra"), None, None, "not empty"),
            (None, Some(busy), None, "--pg-port"),
            (None, None, Some(topo.nodes[0].port), "--node-port"),
        ];
        for (name, pg_port, node_port, want) in cases {
            let asked = NewNode {
                name: name.map(str::to_string),
                pg_port,
                node_port,
            };
            let e = Topology::add_node(&home, &asked).unwrap_err().to_string();
            assert!(e.contains(want), "{asked:?}: {e}");
        }
        assert_eq!(Topology::load(&home).unwrap(), topo);
        // An empty directory of that name is fine.
        std::fs::create_dir(home.join("spare")).unwrap();
        let asked = NewNode {
            name: Some("spare".into()),
            ..NewNode::default()
        };
        assert_eq!(Topology::add_node(&home, &asked).unwrap().name, "spare");
    }
}
