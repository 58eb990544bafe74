//! The blocking steps on the agent's own PostgreSQL: init, clone, start as
//! primary or standby, fence, promote, rewind. They run on one long-lived
//! control thread (a [`dash_pg::ParentThread`]), because every server is started with
//! a parent-death signal: if the agent dies, so does its PostgreSQL, and a
//! primary can never outlive the agent that fences it.
//!
//! Dash owns `postgresql.auto.conf` and `standby.signal`; they are rewritten
//! on every role change and after every rewind, so nothing copied from
//! another node survives. A marker file beside the data directory says the
//! node was demoted and must be rewound before it follows anyone.

use std::path::PathBuf;

use dash_dcs::MemberState;
use dash_pg::{
    give_to_server_user, kill_data_dir_processes, server_command, CloneSource, NodeConfig,
    PgBinaries, PgError, PgNode, StopMode,
};

use crate::local::{field, split_host_port};
use crate::options::NodeOptions;

/// Settings every server gets on its command line (never copied by a rewind
/// or a clone): fast WAL retrieval retries and replication timeouts short
/// enough that a dead peer is noticed within seconds.
fn node_settings(name: &str) -> Vec<(String, String)> {
    vec![
        ("cluster_name".into(), name.into()),
        ("wal_retrieve_retry_interval".into(), "10ms".into()),
        ("wal_receiver_status_interval".into(), "1s".into()),
        ("wal_sender_timeout".into(), "5s".into()),
        ("wal_receiver_timeout".into(), "5s".into()),
    ]
}

/// The blocking steps on one agent's PostgreSQL. Cloned into each job of
/// the control thread.
#[derive(Clone)]
pub struct PgControl {
    pub name: String,
    bins: PgBinaries,
    pub(crate) cfg: NodeConfig,
    database: String,
}

impl PgControl {
    pub fn new(opts: &NodeOptions) -> Result<PgControl, PgError> {
        let bins = PgBinaries::locate()?;
        let mut cfg = NodeConfig::new(&opts.pg_data, opts.pg_port, opts.password.clone());
        cfg.host = opts.advertise.clone();
        cfg.superuser = opts.superuser.clone();
        cfg.settings = node_settings(&opts.name);
        cfg.settings
            .push(("listen_addresses".into(), opts.pg_listen.clone()));
        if let Some(repo) = &opts.backrest {
            cfg.settings.extend(crate::archive::settings(repo));
        }
        cfg.die_with_parent = true;
        Ok(PgControl {
            name: opts.name.clone(),
            bins,
            cfg,
            database: opts.database.clone(),
        })
    }

    pub(crate) fn node(&self) -> Result<PgNode, PgError> {
        PgNode::open(&self.bins, self.cfg.clone())
    }

    fn sibling(&self, suffix: &str) -> PathBuf {
        crate::layout::beside(&self.cfg.data_dir, suffix)
    }

    fn marker(&self) -> PathBuf {
        crate::layout::rewind_marker(&self.cfg.data_dir)
    }

    /// The password file servers use to reach each other (beside the data dir).
    pub fn passfile(&self) -> PathBuf {
        self.sibling(".pgpass")
    }

    pub fn has_data(&self) -> bool {
        self.cfg.data_dir.join("PG_VERSION").is_file()
    }

    /// The data directory was last a primary's (no `standby.signal`).
    pub fn was_primary(&self) -> bool {
        self.has_data() && !self.cfg.data_dir.join("standby.signal").exists()
    }

    pub fn needs_rewind(&self) -> bool {
        self.marker().exists()
    }

    /// Whether a postmaster runs on the data directory.
    pub fn running(&self) -> bool {
        self.has_data() && self.node().map(|n| n.is_running()).unwrap_or(false)
    }

    fn write_passfile(&self) -> Result<(), PgError> {
        use std::os::unix::fs::PermissionsExt;
        let path = self.passfile();
        let line = format!(
            "*:*:*:{}:{}\n",
            self.cfg.superuser.replace(':', "\\:"),
            self.cfg.password.replace('\\', "\\\\").replace(':', "\\:")
        );
        let io = |e| PgError::io(format!("write {}", path.display()), e);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        std::fs::write(&path, line).map_err(io)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        give_to_server_user(&path)
    }

    pub(crate) fn conninfo(&self, leader: &MemberState) -> String {
        let (host, port) = split_host_port(&leader.pg);
        format!(
            "host={host} port={port} user={} passfile={} dbname=postgres application_name={} connect_timeout=2",
            self.cfg.superuser,
            self.passfile().display(),
            self.name
        )
    }

    /// Writes Dash's role configuration: primary (no standby file, the given
    /// synchronous standbys) or standby (following `leader`, if known).
    fn write_role(
        &self,
        primary: bool,
        leader: Option<&MemberState>,
        sync: &[String],
    ) -> Result<(), PgError> {
        let dir = &self.cfg.data_dir;
        let mut lines =
            vec!["# Managed by dashctl node: rewritten on every role change.".to_string()];
        // Read by a standby only once it is promoted: a server started to
        // become primary waits for the recorded standbys from its first commit.
        lines.push(format!(
            "synchronous_standby_names = '{}'",
            sync_names_value(sync).replace('\'', "''")
        ));
        let signal = dir.join("standby.signal");
        let io = |e| PgError::io(format!("write role files in {}", dir.display()), e);
        if primary {
            match std::fs::remove_file(&signal) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(e)),
            }
        } else {
            if let Some(l) = leader {
                lines.push(format!(
                    "primary_conninfo = '{}'",
                    self.conninfo(l).replace('\'', "''")
                ));
            }
            lines.push("recovery_target_timeline = 'latest'".into());
            std::fs::write(&signal, "").map_err(io)?;
            give_to_server_user(&signal)?;
        }
        let auto = dir.join("postgresql.auto.conf");
        std::fs::write(&auto, lines.join("\n") + "\n").map_err(io)?;
        give_to_server_user(&auto)
    }

    /// `initdb`, network access for the other members, start as primary,
    /// create the application database.
    pub fn bootstrap(&self) -> Result<(), PgError> {
        let node = PgNode::init(&self.bins, self.cfg.clone())?;
        let hba = self.cfg.data_dir.join("pg_hba.conf");
        let mut text =
            std::fs::read_to_string(&hba).map_err(|e| PgError::io("read pg_hba.conf", e))?;
        text.push_str(
            "# members and clients on other hosts (scram)\n\
             host    all          all   0.0.0.0/0      scram-sha-256\n\
             host    all          all   ::/0           scram-sha-256\n\
             host    replication  all   0.0.0.0/0      scram-sha-256\n\
             host    replication  all   ::/0           scram-sha-256\n",
        );
        std::fs::write(&hba, text).map_err(|e| PgError::io("write pg_hba.conf", e))?;
        self.write_passfile()?;
        self.write_role(true, None, &[])?;
        node.start()?;
        if self.database != "postgres" {
            node.create_database(&self.database)?;
        }
        Ok(())
    }

    /// Copies the leader (`pg_basebackup`) and starts following it.
    pub fn clone_from(&self, leader: &MemberState) -> Result<(), PgError> {
        self.write_passfile()?;
        let (host, port) = split_host_port(&leader.pg);
        let source = CloneSource {
            host,
            port,
            user: self.cfg.superuser.clone(),
            password: self.cfg.password.clone(),
            application_name: self.name.clone(),
        };
        let partial = self.cfg.data_dir.exists();
        if partial {
            std::fs::remove_dir_all(&self.cfg.data_dir)
                .map_err(|e| PgError::io("remove a partial data directory", e))?;
        }
        PgNode::clone_from(&self.bins, &source, self.cfg.clone(), None)?;
        self.start_standby(Some(leader))
    }

    /// Starts as a standby following `leader` (rewinding first when this
    /// node was demoted; re-cloning when the rewind cannot work).
    pub fn start_standby(&self, leader: Option<&MemberState>) -> Result<(), PgError> {
        self.start_standby_with(leader, false)
    }

    /// A running standby whose leader changed: it may have received WAL
    /// from the old leader that the new one never had, so it is stopped
    /// and rewound (pg_rewind finds nothing to do when it had not), then
    /// started following the new leader.
    pub fn refollow(&self, leader: &MemberState) -> Result<(), PgError> {
        // Whatever happens next, this server starts again only rewound.
        std::fs::write(self.marker(), "following a new leader\n")
            .map_err(|e| PgError::io("write the rewind marker", e))?;
        if self.running() {
            self.node()?.stop(StopMode::Fast)?;
        }
        self.start_standby_with(Some(leader), true)
    }

    fn start_standby_with(
        &self,
        leader: Option<&MemberState>,
        rewind: bool,
    ) -> Result<(), PgError> {
        self.write_passfile()?;
        // A server stopped as a primary (a crash, no fence) may hold WAL the
        // leader never had: it is rewound like a fenced one.
        if rewind || self.needs_rewind() || self.was_primary() {
            let Some(l) = leader else {
                return Err(PgError::io(
                    "rewind",
                    std::io::Error::other("no leader to rewind from"),
                ));
            };
            self.checkpoint_leader(l)?;
            if let Err(e) = self.rewind(l) {
                tracing::warn!(error = %e, "pg_rewind failed; cloning afresh");
                kill_data_dir_processes(&self.cfg.data_dir);
                std::fs::remove_dir_all(&self.cfg.data_dir)
                    .map_err(|e| PgError::io("remove the data directory", e))?;
                let _ = std::fs::remove_file(self.marker());
                return self.clone_from(l);
            }
            let _ = std::fs::remove_file(self.marker());
        }
        self.clear_stale_lock();
        self.write_role(false, leader, &[])?;
        self.node()?.start()
    }

    /// A just-promoted primary records its new timeline only at its next
    /// checkpoint; before that pg_rewind sees one timeline and rewinds
    /// nothing. A leader that cannot be reached is an error to retry, not a
    /// reason to re-clone.
    ///
    /// The leader must have finished its promotion (`pg_ctl promote` returns
    /// at once): rewound against a leader still in recovery, on the old
    /// timeline, pg_rewind finds nothing to do, and the new timeline then
    /// forks off before this node's recovery point.
    fn checkpoint_leader(&self, leader: &MemberState) -> Result<(), PgError> {
        let mut checkpoint = server_command(&self.bins.path("psql"));
        checkpoint.args(["-X", "-q", "-t", "-A", "-w"]);
        checkpoint.args(["-c", "SELECT pg_is_in_recovery()", "-c", "CHECKPOINT"]);
        checkpoint.arg(self.conninfo(leader));
        let out = dash_pg::run_command(checkpoint)?;
        if String::from_utf8_lossy(&out.stdout)
            .trim_start()
            .starts_with('t')
        {
            return Err(PgError::io(
                "rewind",
                std::io::Error::other(format!("{} is still promoting; retrying", leader.name)),
            ));
        }
        Ok(())
    }

    /// After a crash, `postmaster.pid` may name a PID that another process
    /// now has; PostgreSQL (and pg_rewind's single-user run) would then
    /// refuse to start. With no process left in the directory it is stale.
    fn clear_stale_lock(&self) {
        kill_data_dir_processes(&self.cfg.data_dir);
        if dash_pg::data_dir_pids(&self.cfg.data_dir).is_empty() {
            let _ = std::fs::remove_file(self.cfg.data_dir.join("postmaster.pid"));
        }
    }

    fn rewind(&self, leader: &MemberState) -> Result<(), PgError> {
        self.clear_stale_lock();
        // pg_rewind finishes crash recovery in single-user mode, which
        // refuses to run with standby.signal present.
        let _ = std::fs::remove_file(self.cfg.data_dir.join("standby.signal"));
        let mut cmd = server_command(&self.bins.path("pg_rewind"));
        cmd.arg("--target-pgdata").arg(&self.cfg.data_dir);
        cmd.arg(format!("--source-server={}", self.conninfo(leader)));
        dash_pg::run_command(cmd).map(drop)
    }

    /// Starts as primary; we hold the key. A server that was a primary
    /// runs crash recovery and goes on. A server that was a standby (or was
    /// fenced) starts as a standby and is promoted, so it always moves to a
    /// new timeline: two histories never share one, and a rewind always sees
    /// where they parted. Either way it waits for the recorded `sync`
    /// standbys from its first commit (they hold every write acknowledged
    /// before, and must hold every one after).
    pub fn start_primary(&self, sync: &[String]) -> Result<(), PgError> {
        self.clear_stale_lock();
        let _ = std::fs::remove_file(self.marker());
        self.write_passfile()?;
        if self.cfg.data_dir.join("standby.signal").exists() {
            self.write_role(false, None, sync)?;
            let node = self.node()?;
            node.start()?;
            return node.promote();
        }
        self.write_role(true, None, sync)?;
        self.node()?.start()
    }

    /// Stops the server at once (SIGKILL every process of the data
    /// directory: works on a frozen server too), and makes it start only as
    /// a standby that rewinds first. Durable before it returns.
    pub fn fence(&self) -> Result<(), PgError> {
        // Stop acknowledging first; the marker follows (a former primary
        // found stopped without it is rewound all the same).
        crate::guard::fence_data_dir(&self.cfg.data_dir)
            .map_err(|e| PgError::io("write the fence marker", e))?;
        nix::unistd::sync();
        Ok(())
    }

    /// Planned demotion: a clean (fast) shutdown, which sends every WAL
    /// record to the connected standbys before it exits; then fenced.
    pub fn stop_clean(&self) -> Result<(), PgError> {
        self.node()?.stop(StopMode::Fast)?;
        self.fence()
    }

    /// Moves the (stopped) data directory aside after a restore put the
    /// cluster on another member; one older set-aside copy is replaced.
    /// The rewind marker goes with it: what comes next is a fresh clone.
    pub fn set_aside(&self) -> Result<(), PgError> {
        if self.running() {
            return Err(PgError::io(
                "set the data directory aside",
                std::io::Error::other("postgres still runs on it"),
            ));
        }
        let aside = crate::layout::set_aside_dir(&self.cfg.data_dir);
        if aside.exists() {
            std::fs::remove_dir_all(&aside)
                .map_err(|e| PgError::io(format!("remove {}", aside.display()), e))?;
        }
        std::fs::rename(&self.cfg.data_dir, &aside).map_err(|e| {
            PgError::io(format!("move the data directory to {}", aside.display()), e)
        })?;
        match std::fs::remove_file(self.marker()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(PgError::io("remove the rewind marker", e))
            }
            _ => Ok(()),
        }
    }

    /// Stops the server (agent shutdown): fast mode.
    pub fn stop(&self) -> Result<(), PgError> {
        if self.has_data() {
            self.node()?.stop(StopMode::Fast)?;
        }
        Ok(())
    }

    /// Promotes the standby (the caller holds the key).
    /// PostgreSQL removes `standby.signal` itself (and fails if it is gone),
    /// so the role files are left as they are.
    pub fn promote(&self) -> Result<(), PgError> {
        self.node()?.promote()
    }

    pub fn following_addr(&self) -> Option<String> {
        let text = std::fs::read_to_string(self.cfg.data_dir.join("postgresql.auto.conf")).ok()?;
        let line = text
            .lines()
            .rev()
            .find(|l| l.starts_with("primary_conninfo"))?;
        let host = field(line, "host=")?;
        let port = field(line, "port=")?;
        Some(format!("{host}:{port}"))
    }

    /// `host:port` that others use for this node.
    pub fn address(&self) -> String {
        format!("{}:{}", self.cfg.host, self.cfg.port)
    }
}

/// The value of `synchronous_standby_names` for these standbys (empty:
/// asynchronous): the first listed one must acknowledge each commit.
pub fn sync_names_value(standbys: &[String]) -> String {
    if standbys.is_empty() {
        return String::new();
    }
    let quoted: Vec<String> = standbys
        .iter()
        .map(|s| format!("\"{}\"", s.replace('"', "")))
        .collect();
    format!("FIRST 1 ({})", quoted.join(", "))
}
