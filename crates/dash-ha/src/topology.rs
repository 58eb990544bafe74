//! The local cluster's recorded topology, `$DASH_HOME/cluster.json`: which
//! nodes exist, which one is the primary now, which are fenced, and where
//! the API listens. Written atomically (temp file, fsync, rename), mode 0600
//! since it holds the database password and the API token.

use std::io::Write;
use std::path::{Path, PathBuf};

use dash_store::{DbSettings, HostPort, Secret};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Primary,
    Replica,
    /// Stopped and barred from accepting writes until it rejoins as a replica.
    Fenced,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Stable name: `node0`, `node1`, ...
    pub name: String,
    pub host: String,
    pub port: u16,
    pub data_dir: PathBuf,
    pub role: Role,
}

impl NodeInfo {
    pub fn host_port(&self) -> HostPort {
        HostPort {
            host: self.host.clone(),
            port: self.port,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Topology {
    pub version: u32,
    pub nodes: Vec<NodeInfo>,
    /// Synchronous replication (the default) or async.
    pub synchronous: bool,
    pub dbname: String,
    pub user: String,
    #[serde(with = "dash_store::config::secret_in_file")]
    pub password: Secret,
    pub api_url: String,
    pub metrics_url: String,
    #[serde(with = "dash_store::config::secret_in_file")]
    pub api_token: Secret,
    /// Bumped at every promotion: orders decisions and fences stale writers.
    pub epoch: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error("no cluster recorded at {0} (run `dashctl up` first)")]
    Missing(PathBuf),
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid cluster record: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no node named {0}")]
    UnknownNode(String),
}

impl Topology {
    pub fn path(home: &Path) -> PathBuf {
        home.join("cluster.json")
    }

    pub fn load(home: &Path) -> Result<Topology, TopologyError> {
        let path = Self::path(home);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(TopologyError::Missing(path))
            }
            Err(source) => return Err(TopologyError::Read { path, source }),
        };
        serde_json::from_str(&text).map_err(|source| TopologyError::Parse { path, source })
    }

    /// Atomic replace: a crash leaves either the old or the new record.
    pub fn save(&self, home: &Path) -> Result<(), TopologyError> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = Self::path(home);
        let tmp = home.join(".cluster.json.tmp");
        let werr = |source| TopologyError::Write {
            path: path.clone(),
            source,
        };
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(werr)?;
        let text = serde_json::to_vec_pretty(self).expect("topology serializes");
        f.write_all(&text).map_err(werr)?;
        f.sync_all().map_err(werr)?;
        std::fs::rename(&tmp, &path).map_err(werr)?;
        if let Ok(dir) = std::fs::File::open(home) {
            let _ = dir.sync_all();
        }
        Ok(())
    }

    /// Records `name` as the primary of a new epoch and saves the record.
    /// Any other node still recorded as primary is fenced, so the record
    /// never names two. The in-memory record changes even when the save
    /// fails; the error says the file still holds the old one.
    pub fn record_primary(&mut self, name: &str, home: &Path) -> Result<(), TopologyError> {
        if self.node(name).is_none() {
            return Err(TopologyError::UnknownNode(name.to_string()));
        }
        for n in &mut self.nodes {
            if n.name == name {
                n.role = Role::Primary;
            } else if n.role == Role::Primary {
                n.role = Role::Fenced;
            }
        }
        self.epoch += 1;
        self.save(home)
    }

    pub fn primary(&self) -> Option<&NodeInfo> {
        self.nodes.iter().find(|n| n.role == Role::Primary)
    }

    pub fn replicas(&self) -> impl Iterator<Item = &NodeInfo> {
        self.nodes.iter().filter(|n| n.role == Role::Replica)
    }

    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.nodes.iter().find(|n| n.name == name)
    }

    pub fn node_mut(&mut self, name: &str) -> Option<&mut NodeInfo> {
        self.nodes.iter_mut().find(|n| n.name == name)
    }

    /// Database settings that list every node, primary first, then replicas,
    /// then fenced nodes: what `dashctl serve` and `dashctl db` use beside `dashctl up`.
    /// A long-running API keeps this list, so it must include the nodes that
    /// may be primary later; a fenced node is down or a standby (it starts
    /// only with `standby.signal`), so the pool never writes to it.
    pub fn db_settings(&self) -> DbSettings {
        let mut hosts: Vec<HostPort> = self.primary().map(|p| p.host_port()).into_iter().collect();
        hosts.extend(self.replicas().map(|n| n.host_port()));
        hosts.extend(
            self.nodes
                .iter()
                .filter(|n| n.role == Role::Fenced)
                .map(|n| n.host_port()),
        );
        DbSettings {
            hosts,
            dbname: self.dbname.clone(),
            user: self.user.clone(),
            password: self.password.clone(),
            ..DbSettings::default()
        }
    }

    /// A driver config for `node` as the cluster's superuser, to database `db`.
    pub fn pg_config(&self, node: &NodeInfo, db: &str) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        c.host(&node.host)
            .port(node.port)
            .user(&self.user)
            .password(self.password.expose())
            .dbname(db);
        c
    }

    /// Connects to node `name`, database `db`, within `limit` (connect and
    /// handshake); the connection is driven on its own task.
    pub async fn connect(
        &self,
        name: &str,
        db: &str,
        limit: std::time::Duration,
    ) -> Result<tokio_postgres::Client, String> {
        let node = self
            .node(name)
            .ok_or_else(|| format!("no node named {name}"))?;
        let mut cfg = self.pg_config(node, db);
        cfg.connect_timeout(limit);
        let (client, conn) = tokio::time::timeout(limit, cfg.connect(tokio_postgres::NoTls))
            .await
            .map_err(|_| format!("connecting to {name} timed out after {limit:?}"))?
            .map_err(|e| format!("connecting to {name}: {e}"))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Topology {
        Topology {
            version: 1,
            nodes: vec![
                NodeInfo {
                    name: "node0".into(),
                    host: "127.0.0.1".into(),
                    port: 5500,
                    data_dir: "/x/node0".into(),
                    role: Role::Fenced,
                },
                NodeInfo {
                    name: "node1".into(),
                    host: "127.0.0.1".into(),
                    port: 5501,
                    data_dir: "/x/node1".into(),
                    role: Role::Primary,
                },
                NodeInfo {
                    name: "node2".into(),
                    host: "127.0.0.1".into(),
                    port: 5502,
                    data_dir: "/x/node2".into(),
                    role: Role::Replica,
                },
            ],
            synchronous: true,
            dbname: "dash".into(),
            user: "dash_user".into(),
            password: "pw".into(),
            api_url: "http://127.0.0.1:3001".into(),
            metrics_url: "http://127.0.0.1:9090/metrics".into(),
            api_token: "t".into(),
            epoch: 3,
        }
    }

    #[test]
    fn save_load_roundtrip_and_hosts_list_the_primary_first_and_fenced_nodes_last() {
        let dir = tempfile::tempdir().unwrap();
        let t = sample();
        t.save(dir.path()).unwrap();
        assert_eq!(Topology::load(dir.path()).unwrap(), t);
        let hosts: Vec<u16> = t.db_settings().hosts.iter().map(|h| h.port).collect();
        assert_eq!(hosts, [5501, 5502, 5500]);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(Topology::path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn debug_never_prints_the_password_or_the_api_token() {
        let mut t = sample();
        t.password = "pw-d0-not-print".into();
        t.api_token = "tok-d0-not-print".into();
        let text = format!("{t:?}");
        assert!(!text.contains("pw-d0-not-print"), "{text}");
        assert!(!text.contains("tok-d0-not-print"), "{text}");
        assert!(text.contains("node1"), "the rest still prints: {text}");
    }

    #[test]
    fn the_record_on_disk_holds_the_password_and_token_as_plain_strings() {
        let dir = tempfile::tempdir().unwrap();
        sample().save(dir.path()).unwrap();
        let text = std::fs::read_to_string(Topology::path(dir.path())).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["password"], "pw");
        assert_eq!(json["api_token"], "t");
    }

    #[test]
    fn record_primary_bumps_the_epoch_fences_the_old_primary_and_saves() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = sample();
        t.record_primary("node2", dir.path()).unwrap();
        assert_eq!(t.primary().map(|p| p.name.as_str()), Some("node2"));
        assert_eq!(t.node("node1").unwrap().role, Role::Fenced);
        assert_eq!(t.epoch, 4);
        assert_eq!(Topology::load(dir.path()).unwrap(), t);
        let e = t.record_primary("node9", dir.path()).unwrap_err();
        assert!(matches!(e, TopologyError::UnknownNode(_)), "{e}");
        assert_eq!(t.epoch, 4, "an unknown node changes nothing");
    }

    #[test]
    fn missing_record_says_run_dashctl_up() {
        let dir = tempfile::tempdir().unwrap();
        let e = Topology::load(dir.path()).unwrap_err();
        assert!(e.to_string().contains("dashctl up"), "{e}");
    }
}
