//! The local platform's record, `$DASH_HOME/cluster.json`: which nodes exist
//! (their PostgreSQL and node-API ports and data directories), where the
//! local etcd listens, the credentials, and where the API listens. Which
//! node is primary is not recorded here: etcd's leader key says that, and
//! the node agents act on it. Written atomically (temp file, fsync,
//! rename), mode 0600 since it holds the database password and the API token.

use std::io::Write;
use std::path::{Path, PathBuf};

use dash_store::{DbSettings, HostPort, Secret};
use serde::{Deserialize, Serialize};
use sha2::Digest;

/// The record's format. Version 1 was written for the single-machine
/// supervisor, which recorded roles in this file.
pub const VERSION: u32 = 2;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Stable name: `node0`, `node1`, ... (also the etcd member name of its agent).
    pub name: String,
    pub host: String,
    /// PostgreSQL port.
    pub port: u16,
    /// The agent's node API port (`/primary`, `/replica`, `/status`).
    pub node_port: u16,
    pub data_dir: PathBuf,
}

impl NodeInfo {
    pub fn host_port(&self) -> HostPort {
        HostPort {
            host: self.host.clone(),
            port: self.port,
        }
    }

    /// `http://host:node_port`.
    pub fn node_url(&self) -> String {
        format!("http://{}:{}", self.host, self.node_port)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Topology {
    pub version: u32,
    /// The agents' cluster name: their etcd prefix `/dash/<cluster>/`.
    pub cluster: String,
    pub nodes: Vec<NodeInfo>,
    /// The local etcd member's client and peer ports (on 127.0.0.1).
    pub etcd_client_port: u16,
    pub etcd_peer_port: u16,
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
    #[error(
        "{path} was written by an older dashctl (record version {found}; this one reads {VERSION}): \
         its nodes were run by the single-machine supervisor, which node agents and etcd replace. \
         Stop it, move its directory away (e.g. `mv {home} {home}.v1`) and run `dashctl up` again \
         for a new cluster; take a `dashctl db backup` first to keep its data"
    )]
    OldVersion {
        path: PathBuf,
        home: String,
        found: u32,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
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
        #[derive(Deserialize)]
        struct Version {
            version: u32,
        }
        let parse = |source| TopologyError::Parse {
            path: path.clone(),
            source,
        };
        let found = serde_json::from_str::<Version>(&text)
            .map_err(parse)?
            .version;
        if found != VERSION {
            return Err(TopologyError::OldVersion {
                home: home.display().to_string(),
                path,
                found,
            });
        }
        serde_json::from_str(&text).map_err(parse)
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

    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// Every port the record names (PostgreSQL, node APIs, etcd).
    pub fn ports(&self) -> Vec<u16> {
        let mut ports: Vec<u16> = self
            .nodes
            .iter()
            .flat_map(|n| [n.port, n.node_port])
            .collect();
        ports.extend([self.etcd_client_port, self.etcd_peer_port]);
        ports
    }

    /// The agents' `DASH_NODE_TOKEN` (what `POST /backup` on their node API
    /// needs): derived from the database password, so nothing more is
    /// stored and a platform recorded by an older dashctl has one too. The
    /// token does not reveal the password.
    pub fn node_token(&self) -> String {
        let mut h = sha2::Sha256::new();
        h.update(b"dash node token v1\0");
        h.update(self.password.expose().as_bytes());
        hex::encode(h.finalize())
    }

    /// The local etcd's client URL (what `--etcd` takes).
    pub fn etcd_endpoints(&self) -> Vec<String> {
        vec![format!("http://127.0.0.1:{}", self.etcd_client_port)]
    }

    /// Database settings that list every node: the pool finds whichever is
    /// the writable primary now, and follows it across failovers.
    pub fn db_settings(&self) -> DbSettings {
        DbSettings {
            hosts: self.nodes.iter().map(NodeInfo::host_port).collect(),
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
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample() -> Topology {
        let node = |i: u16| NodeInfo {
            name: format!("node{i}"),
            host: "127.0.0.1".into(),
            port: 5500 + i,
            node_port: 8008 + i,
            data_dir: format!("/x/node{i}").into(),
        };
        Topology {
            version: VERSION,
            cluster: "dash".into(),
            nodes: vec![node(0), node(1), node(2)],
            etcd_client_port: 2379,
            etcd_peer_port: 2380,
            synchronous: true,
            dbname: "dash".into(),
            user: "dash_user".into(),
            password: "pw".into(),
            api_url: "http://127.0.0.1:3001".into(),
            metrics_url: "http://127.0.0.1:9090/metrics".into(),
            api_token: "t".into(),
        }
    }

    #[test]
    fn save_load_roundtrip_private_file_and_every_node_a_host() {
        let dir = tempfile::tempdir().unwrap();
        let t = sample();
        t.save(dir.path()).unwrap();
        assert_eq!(Topology::load(dir.path()).unwrap(), t);
        let hosts: Vec<u16> = t.db_settings().hosts.iter().map(|h| h.port).collect();
        assert_eq!(hosts, [5500, 5501, 5502]);
        assert_eq!(t.etcd_endpoints(), ["http://127.0.0.1:2379"]);
        assert_eq!(t.nodes[1].node_url(), "http://127.0.0.1:8009");
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
    fn a_version_1_record_is_refused_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let v1 = r#"{"version":1,"nodes":[],"synchronous":true,"epoch":3}"#;
        std::fs::write(Topology::path(dir.path()), v1).unwrap();
        let e = Topology::load(dir.path()).unwrap_err();
        assert!(
            matches!(e, TopologyError::OldVersion { found: 1, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("dashctl up"), "{e}");
    }

    #[test]
    fn missing_record_says_run_dashctl_up() {
        let dir = tempfile::tempdir().unwrap();
        let e = Topology::load(dir.path()).unwrap_err();
        assert!(e.to_string().contains("dashctl up"), "{e}");
    }
}
