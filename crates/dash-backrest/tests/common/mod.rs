//! Shared by the integration tests: a repository in a temp dir with a running
//! scratch server archiving into it, restored servers that are stopped on
//! drop, and the skip rule for machines without pgBackRest or the server user.

#![allow(dead_code)] // each test binary uses a different part

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dash_backrest::{pgbackrest_path, PgServer, Repo, RepoSettings, DEFAULT_STANZA};
use dash_pg::{free_port, give_to_server_user, NodeConfig, PgBinaries, PgError, PgNode};
use dash_pg::{ScratchNode, StopMode};
use tempfile::TempDir;

/// Why these tests cannot run here, if they cannot.
pub fn skip_reason() -> Option<String> {
    let runs = std::process::Command::new(pgbackrest_path())
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !runs {
        return Some(format!(
            "pgBackRest is not runnable at {}",
            pgbackrest_path().display()
        ));
    }
    let root = nix::unistd::Uid::effective().is_root();
    let server_user = nix::unistd::User::from_name(dash_pg::SERVER_USER).is_ok_and(|u| u.is_some());
    (root && !server_user)
        .then(|| format!("running as root without OS user `{}`", dash_pg::SERVER_USER))
}

/// Returns early from a test (with the reason printed) when it cannot run here.
#[macro_export]
macro_rules! skip_unless_runnable {
    () => {
        if let Some(reason) = common::skip_reason() {
            eprintln!("skipped: {reason}");
            return;
        }
    };
}

/// A temp dir the server user owns, in /dev/shm when there is one (fast).
pub fn server_temp_dir() -> TempDir {
    let root = Path::new("/dev/shm");
    let builder = tempfile::Builder::new().prefix("dash-backrest-").to_owned();
    let dir = match root.is_dir() {
        true => builder.tempdir_in(root),
        false => builder.tempdir(),
    }
    .expect("temp dir");
    give_to_server_user(dir.path()).expect("chown temp dir");
    dir
}

/// A repository with a running server archiving into it and the stanza made.
pub struct Fixture {
    /// Dropped first: stopped before its repository goes away.
    pub node: ScratchNode,
    pub repo: Repo,
    pub dir: TempDir,
}

impl Fixture {
    /// With `archive_mode` = `mode` and full backups kept by count.
    pub fn new(mode: &str, retention_full: u32) -> Fixture {
        let dir = server_temp_dir();
        let mut settings = RepoSettings::under(dir.path());
        settings.retention_full = retention_full;
        let config = dir.path().join("pgbackrest.conf");
        let repo = Repo::create(&config, DEFAULT_STANZA, &settings).expect("create repo");
        let node = ScratchNode::start_with(&[
            ("archive_mode", mode),
            ("archive_command", &repo.archive_command()),
            ("archive_timeout", "0"),
        ])
        .expect("scratch node");
        repo.stanza_create(&PgServer::of(&node))
            .expect("stanza-create");
        Fixture { node, repo, dir }
    }

    pub fn pg(&self) -> PgServer {
        PgServer::of(&self.node)
    }

    /// Where archived WAL of timeline history files lands.
    pub fn archive_dir(&self) -> PathBuf {
        self.dir.path().join("repo/archive").join(DEFAULT_STANZA)
    }
}

/// A server started on a restored data dir; stopped (by PID) on drop.
pub struct Restored {
    pub node: PgNode,
}

impl Restored {
    /// Starts the cluster in `data_dir` with `origin`'s login and archiving
    /// into `repo`.
    pub fn start(data_dir: &Path, origin: &PgNode, repo: &Repo) -> Restored {
        let bins = PgBinaries::locate().expect("binaries");
        let cfg = NodeConfig::new(data_dir, 0, origin.password())
            .with_setting("archive_mode", "on")
            .with_setting("archive_command", &repo.archive_command())
            .with_setting("fsync", "off");
        let mut node = PgNode::open(&bins, cfg).expect("open restored cluster");
        for attempt in 1..=3 {
            node.set_port(free_port());
            match node.start() {
                Err(PgError::PortInUse { .. }) if attempt < 3 => continue,
                result => {
                    result.expect("start restored cluster");
                    break;
                }
            }
        }
        Restored { node }
    }

    /// Waits until recovery has reached its target and the server promoted.
    pub fn wait_promoted(&self) {
        wait_for("promotion", Duration::from_secs(20), || {
            self.query("SELECT pg_is_in_recovery()") == "f"
        });
    }

    /// One value from `sql` on database postgres.
    pub fn query(&self, sql: &str) -> String {
        self.node
            .psql("postgres", sql)
            .expect(sql)
            .trim()
            .to_string()
    }
}

impl Drop for Restored {
    fn drop(&mut self) {
        if self.node.stop(StopMode::Immediate).is_err() {
            self.node.kill_processes();
        }
    }
}

/// Waits up to `timeout` for `done`, polling.
pub fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether a file whose name starts with `prefix` is anywhere under `dir`.
pub fn has_file(dir: &Path, prefix: &str) -> bool {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| {
            let path = e.path();
            match path.is_dir() {
                true => has_file(&path, prefix),
                false => e.file_name().to_string_lossy().starts_with(prefix),
            }
        })
}
