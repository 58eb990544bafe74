//! A new local cluster's record: node names, ports and directories, fresh
//! credentials. The agents create the cluster itself when they first start
//! (one runs initdb, the others clone it).

use std::path::Path;

use dash_pg::server_command;
use dash_store::Secret;
use rand::Rng;

use crate::topology::{NodeInfo, Topology, VERSION};
use crate::PlatformError;

/// What a new cluster looks like.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Streaming replicas beside the first node.
    pub replicas: usize,
    pub synchronous: bool,
    /// PostgreSQL port of each node (`1 + replicas` of them).
    pub pg_ports: Vec<u16>,
    /// Node API port of each node.
    pub node_ports: Vec<u16>,
    pub etcd_client_port: u16,
    pub etcd_peer_port: u16,
    pub api_url: String,
    pub metrics_url: String,
    /// The API token (a random one when `None`).
    pub api_token: Option<String>,
}

/// Which of `ports` cannot be bound on 127.0.0.1 now (in use by someone).
pub fn taken(ports: &[u16]) -> Vec<u16> {
    (ports.iter().copied())
        .filter(|&p| std::net::TcpListener::bind(("127.0.0.1", p)).is_err())
        .collect()
}

/// `count` distinct free ports on 127.0.0.1, none of them in `avoid`.
pub fn free_ports(count: usize, avoid: &[u16]) -> Vec<u16> {
    let mut ports: Vec<u16> = Vec::new();
    while ports.len() < count {
        let p = dash_pg::free_port();
        if !ports.contains(&p) && !avoid.contains(&p) {
            ports.push(p);
        }
    }
    ports
}

fn random_secret(len: usize) -> String {
    const CHARS: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char)
        .collect()
}

impl Topology {
    /// Records a new cluster under `home` (created if missing). Nothing runs
    /// yet: [`crate::Platform::start`] starts it.
    pub fn create(home: &Path, opts: &ClusterOptions) -> Result<Topology, PlatformError> {
        let nodes = opts.replicas + 1;
        if opts.pg_ports.len() != nodes || opts.node_ports.len() != nodes {
            return Err(PlatformError::Invalid(format!(
                "{nodes} node(s) need {nodes} PostgreSQL and node API ports"
            )));
        }
        let mut ports: Vec<u16> = opts.pg_ports.clone();
        ports.extend(&opts.node_ports);
        ports.extend([opts.etcd_client_port, opts.etcd_peer_port]);
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        if unique.len() != ports.len() || unique.first() == Some(&0) {
            return Err(PlatformError::Invalid(format!(
                "every port must be distinct and non-zero: {ports:?}"
            )));
        }
        std::fs::create_dir_all(home)
            .map_err(|e| PlatformError::io_owned(format!("create {}", home.display()), e))?;
        let home = home
            .canonicalize()
            .map_err(|e| PlatformError::io_owned(format!("resolve {}", home.display()), e))?;
        check_reachable(&home)?;
        let topo = Topology {
            version: VERSION,
            cluster: "dash".into(),
            nodes: (0..nodes)
                .map(|i| NodeInfo {
                    name: format!("node{i}"),
                    host: "127.0.0.1".into(),
                    port: opts.pg_ports[i],
                    node_port: opts.node_ports[i],
                    data_dir: home.join(format!("node{i}")),
                })
                .collect(),
            etcd_client_port: opts.etcd_client_port,
            etcd_peer_port: opts.etcd_peer_port,
            synchronous: opts.synchronous,
            dbname: "dash".into(),
            user: "dash_user".into(),
            password: Secret::new(random_secret(24)),
            api_url: opts.api_url.clone(),
            metrics_url: opts.metrics_url.clone(),
            api_token: Secret::from(opts.api_token.clone().unwrap_or_else(|| random_secret(32))),
        };
        topo.save(&home)?;
        Ok(topo)
    }
}

/// As root the servers run as the `postgres` user, which must be able to
/// reach `home` through every parent directory (`/root` is 0700, say).
fn check_reachable(home: &Path) -> Result<(), PlatformError> {
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
    Err(PlatformError::Invalid(format!(
        "the `{}` OS user, which runs PostgreSQL when Dash runs as root, cannot reach {}: a parent directory \
         is not searchable by it. Set DASH_HOME to a directory it can reach (e.g. /var/lib/dash) or make the \
         parents searchable (chmod o+x)",
        dash_pg::SERVER_USER,
        home.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> ClusterOptions {
        ClusterOptions {
            replicas: 1,
            synchronous: true,
            pg_ports: vec![54320, 54321],
            node_ports: vec![8008, 8009],
            etcd_client_port: 2379,
            etcd_peer_port: 2380,
            api_url: "http://127.0.0.1:3001".into(),
            metrics_url: "http://127.0.0.1:9090/metrics".into(),
            api_token: None,
        }
    }

    #[test]
    fn a_new_record_names_every_node_with_its_ports_and_fresh_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let t = Topology::create(dir.path(), &opts()).unwrap();
        assert_eq!(Topology::load(dir.path()).unwrap(), t);
        let names: Vec<_> = t
            .nodes
            .iter()
            .map(|n| (n.name.as_str(), n.port, n.node_port))
            .collect();
        assert_eq!(names, [("node0", 54320, 8008), ("node1", 54321, 8009)]);
        assert_eq!(t.password.expose().len(), 24);
        let again = Topology::create(dir.path(), &opts()).unwrap();
        assert_ne!(again.password.expose(), t.password.expose());
    }

    #[test]
    fn a_bound_port_is_taken_and_free_ports_avoid_what_they_are_told() {
        let held = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = held.local_addr().unwrap().port();
        assert_eq!(taken(&[port]), [port]);
        let free = free_ports(3, &[port]);
        assert_eq!(free.len(), 3);
        assert!(!free.contains(&port));
        assert!(taken(&free).is_empty(), "{free:?}");
    }

    #[test]
    fn clashing_or_missing_ports_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = opts();
        o.etcd_peer_port = 8009;
        let e = Topology::create(dir.path(), &o).unwrap_err();
        assert!(e.to_string().contains("distinct"), "{e}");
        let mut o = opts();
        o.node_ports.pop();
        assert!(Topology::create(dir.path(), &o).is_err());
        assert!(!Topology::path(dir.path()).exists(), "nothing recorded");
    }
}
