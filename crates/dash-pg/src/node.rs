//! A PostgreSQL node on this machine: its configuration, creation (`initdb`,
//! `pg_basebackup`), addressing and `psql` access. Process control
//! (start/stop/promote) lives in `process.rs`, cluster creation in `init.rs`.

use std::fmt;
use std::path::{Path, PathBuf};

use super::init::{initdb, make_private_dir, run};
use super::user::{give_to_server_user, server_command};
use super::{PgBinaries, PgError};

/// Longest Unix-socket directory we use (the socket path limit is 107 bytes).
const MAX_SOCKET_DIR_LEN: usize = 90;

/// How one node is set up.
#[derive(Clone)]
pub struct NodeConfig {
    /// The data directory (PGDATA).
    pub data_dir: PathBuf,
    /// TCP port.
    pub port: u16,
    /// Listen address; default `127.0.0.1`.
    pub host: String,
    /// Bootstrap superuser; default `dash_user`.
    pub superuser: String,
    /// The superuser's password (scram over TCP).
    pub password: String,
    /// Extra `-c name=value` settings on the `postgres` command line.
    pub settings: Vec<(String, String)>,
    /// The postmaster gets SIGKILL when the thread that started it ends
    /// (`setpriv --pdeathsig KILL`): a server owned by an agent never
    /// outlives that agent. Start such a node from a thread that lives as
    /// long as its owner.
    pub die_with_parent: bool,
}

impl NodeConfig {
    /// A config with the defaults: host `127.0.0.1`, superuser `dash_user`, no extra settings.
    pub fn new(data_dir: impl Into<PathBuf>, port: u16, password: impl Into<String>) -> NodeConfig {
        NodeConfig {
            data_dir: data_dir.into(),
            port,
            host: "127.0.0.1".to_string(),
            superuser: "dash_user".to_string(),
            password: password.into(),
            settings: Vec::new(),
            die_with_parent: false,
        }
    }

    /// Adds one `-c name=value` setting.
    pub fn with_setting(mut self, name: &str, value: &str) -> NodeConfig {
        self.settings.push((name.to_string(), value.to_string()));
        self
    }
}

impl fmt::Debug for NodeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeConfig")
            .field("data_dir", &self.data_dir)
            .field("port", &self.port)
            .field("host", &self.host)
            .field("superuser", &self.superuser)
            .field("password", &"***")
            .field("settings", &self.settings)
            .finish()
    }
}

/// Where [`PgNode::clone_from`] copies a cluster from.
#[derive(Clone)]
pub struct CloneSource {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    /// The clone's `application_name` in `primary_conninfo`.
    pub application_name: String,
}

impl fmt::Debug for CloneSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloneSource")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &"***")
            .field("application_name", &self.application_name)
            .finish()
    }
}

/// One PostgreSQL server on this machine (it may or may not be running).
#[derive(Debug, Clone)]
pub struct PgNode {
    pub(crate) bins: PgBinaries,
    pub(crate) cfg: NodeConfig,
    pub(crate) socket_dir: PathBuf,
}

impl PgNode {
    /// Creates a new cluster in `cfg.data_dir` with `initdb` (checksums,
    /// scram over TCP, trust on the local socket, UTF8) and Dash's base settings.
    pub fn init(bins: &PgBinaries, cfg: NodeConfig) -> Result<PgNode, PgError> {
        let node = PgNode::new(bins, cfg)?;
        if node.data_dir().join("PG_VERSION").exists() {
            return Err(PgError::AlreadyInitialized(node.cfg.data_dir));
        }
        initdb(
            bins,
            node.data_dir(),
            &node.cfg.superuser,
            &node.cfg.password,
            false,
        )?;
        Ok(node)
    }

    /// An existing cluster in `cfg.data_dir` (no initdb).
    pub fn open(bins: &PgBinaries, cfg: NodeConfig) -> Result<PgNode, PgError> {
        let node = PgNode::new(bins, cfg)?;
        if !node.data_dir().join("PG_VERSION").is_file() {
            return Err(PgError::NotInitialized(node.cfg.data_dir));
        }
        Ok(node)
    }

    /// A streaming replica of the running `primary`: `pg_basebackup -R -X stream
    /// -c fast` into `cfg.data_dir`, creating replication slot `slot` if given.
    /// A clone has the primary's roles, so `cfg.superuser`/`cfg.password` are
    /// replaced by the primary's. `primary_conninfo` carries
    /// `application_name` = the data directory's name.
    pub fn clone_replica(
        bins: &PgBinaries,
        primary: &PgNode,
        cfg: NodeConfig,
        slot: Option<&str>,
    ) -> Result<PgNode, PgError> {
        let source = CloneSource {
            host: primary.host().to_string(),
            port: primary.port(),
            user: primary.cfg.superuser.clone(),
            password: primary.cfg.password.clone(),
            application_name: application_name(&cfg.data_dir),
        };
        PgNode::clone_from(bins, &source, cfg, slot)
    }

    /// A streaming replica of the server at `source` (on this machine or
    /// another): `pg_basebackup -R -X stream -c fast` into `cfg.data_dir`,
    /// creating replication slot `slot` if given. The clone has the source's
    /// roles, so `cfg.superuser`/`cfg.password` become the source's.
    pub fn clone_from(
        bins: &PgBinaries,
        source: &CloneSource,
        mut cfg: NodeConfig,
        slot: Option<&str>,
    ) -> Result<PgNode, PgError> {
        cfg.superuser = source.user.clone();
        cfg.password = source.password.clone();
        let node = PgNode::new(bins, cfg)?;
        let dir = node.data_dir();
        make_private_dir(dir)?;
        let mut cmd = server_command(&bins.path("pg_basebackup"));
        cmd.arg("-D").arg(dir);
        cmd.args(["-h", &source.host, "-p", &source.port.to_string()]);
        cmd.args(["-U", &source.user, "-X", "stream", "-c", "fast", "-R", "-w"]);
        cmd.arg("-d")
            .arg(format!("application_name={}", source.application_name));
        if let Some(slot) = slot {
            cmd.args(["-C", "-S", slot]);
        }
        cmd.env("PGPASSWORD", &source.password)
            .env("PGCONNECT_TIMEOUT", "10");
        run(cmd)?;
        Ok(node)
    }

    /// Absolute paths, socket directory created and owned by the server user.
    fn new(bins: &PgBinaries, mut cfg: NodeConfig) -> Result<PgNode, PgError> {
        if cfg.data_dir.is_relative() {
            let cwd = std::env::current_dir().map_err(|e| PgError::io("current directory", e))?;
            cfg.data_dir = cwd.join(&cfg.data_dir);
        }
        let socket_dir = socket_dir_for(&cfg.data_dir);
        std::fs::create_dir_all(&socket_dir)
            .map_err(|e| PgError::io(format!("create {}", socket_dir.display()), e))?;
        give_to_server_user(&socket_dir)?;
        Ok(PgNode {
            bins: bins.clone(),
            cfg,
            socket_dir,
        })
    }

    /// TCP port.
    pub fn port(&self) -> u16 {
        self.cfg.port
    }
    /// Listen address.
    pub fn host(&self) -> &str {
        &self.cfg.host
    }
    /// The data directory (absolute).
    pub fn data_dir(&self) -> &Path {
        &self.cfg.data_dir
    }
    /// The server log: `<data_dir>.log`, next to (not inside) the data directory.
    pub fn log_path(&self) -> PathBuf {
        let mut name = self.cfg.data_dir.as_os_str().to_owned();
        name.push(".log");
        PathBuf::from(name)
    }
    /// The Unix-socket directory (for `psql -h <dir>` with trust auth).
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }
    /// Superuser name.
    pub fn superuser(&self) -> &str {
        &self.cfg.superuser
    }
    /// Superuser password.
    pub fn password(&self) -> &str {
        &self.cfg.password
    }
    /// This node's configuration.
    pub fn config(&self) -> &NodeConfig {
        &self.cfg
    }
    /// Moves the node to another port; takes effect at its next start.
    pub fn set_port(&mut self, port: u16) {
        self.cfg.port = port;
    }
    /// The binaries this node runs.
    pub fn binaries(&self) -> &PgBinaries {
        &self.bins
    }

    /// libpq URI for the superuser to database `db` over TCP.
    pub fn url(&self, db: &str) -> String {
        let host = match self.cfg.host.contains(':') {
            true => format!("[{}]", self.cfg.host),
            false => self.cfg.host.clone(),
        };
        format!(
            "postgresql://{}:{}@{host}:{}/{}",
            encode(&self.cfg.superuser),
            encode(&self.cfg.password),
            self.cfg.port,
            encode(db)
        )
    }

    /// Runs `sql` with `psql` over TCP as the superuser (stop on first error,
    /// unaligned tuples only) and returns its stdout.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, PgError> {
        let login = Login {
            host: self.host(),
            port: self.port(),
            user: self.superuser(),
            password: self.password(),
            db,
        };
        psql(&self.bins, &login, sql)
    }

    /// `CREATE DATABASE "name"`.
    pub fn create_database(&self, name: &str) -> Result<(), PgError> {
        let ident = format!("\"{}\"", name.replace('"', "\"\""));
        self.psql("postgres", &format!("CREATE DATABASE {ident}"))
            .map(drop)
    }
}

/// A replication `application_name` from the data directory's name.
fn application_name(dir: &Path) -> String {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The Unix socket directory of the server whose data directory is
/// `data_dir` (absolute): `sock` beside it, or a short path under /tmp when
/// that would pass the socket path limit. What an operator's `PGHOST` is.
pub fn socket_dir_for(data_dir: &Path) -> PathBuf {
    let parent = data_dir.parent().unwrap_or(Path::new("/"));
    let socket_dir = parent.join("sock");
    if socket_dir.as_os_str().len() <= MAX_SOCKET_DIR_LEN {
        return socket_dir;
    }
    let uid = nix::unistd::Uid::effective();
    let hash = super::init::fnv1a(parent.as_os_str().as_encoded_bytes());
    PathBuf::from(format!("/tmp/dash-pg-sock-{uid}-{hash:016x}"))
}

/// Where and as whom [`psql`] connects.
pub struct Login<'a> {
    pub host: &'a str,
    pub port: u16,
    pub user: &'a str,
    pub password: &'a str,
    pub db: &'a str,
}

/// Runs `sql` with `bins`' `psql` over TCP (stop on first error, unaligned
/// tuples only) and returns its stdout: for a server this process did not
/// start (a platform's primary).
pub fn psql(bins: &PgBinaries, login: &Login, sql: &str) -> Result<String, PgError> {
    let mut cmd = server_command(&bins.path("psql"));
    cmd.args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-w"]);
    cmd.args([
        "-h",
        login.host,
        "-p",
        &login.port.to_string(),
        "-U",
        login.user,
    ]);
    cmd.args(["-d", login.db, "-c", sql]);
    cmd.env("PGPASSWORD", login.password)
        .env("PGCONNECT_TIMEOUT", "10");
    let out = run(cmd)?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encodes_credentials() {
        assert_eq!(encode("p@ss:w/rd"), "p%40ss%3Aw%2Frd");
        assert_eq!(application_name(Path::new("/x/Replica-1")), "replica_1");
    }
}
