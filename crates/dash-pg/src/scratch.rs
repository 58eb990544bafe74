//! Throwaway PostgreSQL nodes (`dashctl bench compare` and every crate's
//! tests, through the test kit): each in its own temp dir on a free port, copied from a per-machine template made once by
//! `initdb`, and stopped and deleted on drop, even when the test panics.

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use rand::Rng;
use tempfile::TempDir;

use crate::init::{fnv1a, initdb, run, BASE_CONF, INITDB_FLAGS, PG_HBA};
use crate::{free_port, give_to_server_user, NodeConfig, PgBinaries, PgError, PgNode, StopMode};

/// Superuser of every test node.
const TEST_SUPERUSER: &str = "dash_user";
/// Password of every test node (loopback only, throwaway data).
const TEST_PASSWORD: &str = "dash-test-password";
/// Durability off: test data never needs to survive an OS crash.
const SPEED_SETTINGS: &[(&str, &str)] = &[
    ("fsync", "off"),
    ("synchronous_commit", "off"),
    ("full_page_writes", "off"),
];
/// Free space `/dev/shm` needs before test nodes go there (WAL can grow).
const MIN_SHM_FREE: u64 = 2 << 30;
/// Start attempts, each on a fresh port, when another process takes the port.
const START_ATTEMPTS: usize = 3;

/// A throwaway PostgreSQL node; stopped (immediate) and deleted on drop.
#[derive(Debug)]
pub struct ScratchNode {
    /// The running node.
    pub node: PgNode,
    dir: TempDir,
}

impl ScratchNode {
    /// A running node with durability turned off for speed.
    pub fn start() -> Result<ScratchNode, PgError> {
        Self::start_with(&[])
    }

    /// [`ScratchNode::start`] with extra settings (they win over the defaults).
    pub fn start_with(settings: &[(&str, &str)]) -> Result<ScratchNode, PgError> {
        let bins = binaries()?;
        let template = template(bins)?;
        let dir = temp_dir()?;
        let data_dir = dir.path().join("data");
        let mut cp = std::process::Command::new("cp");
        cp.arg("-a").arg(template).arg(&data_dir);
        run(cp)?;
        give_to_server_user(&data_dir)?;
        let mut cfg = NodeConfig::new(data_dir, 0, TEST_PASSWORD);
        cfg.superuser = TEST_SUPERUSER.to_string();
        for (name, value) in SPEED_SETTINGS.iter().chain(settings) {
            cfg = cfg.with_setting(name, value);
        }
        let node = PgNode::open(bins, cfg)?;
        ScratchNode { node, dir }.started()
    }

    /// A fresh, uniquely named database on this node; returns its name.
    pub fn fresh_database(&self) -> Result<String, PgError> {
        let name = format!("test_{:016x}", rand::thread_rng().gen::<u64>());
        self.node.create_database(&name)?;
        Ok(name)
    }

    /// A running streaming replica of this node (`pg_basebackup`, no slot),
    /// with this node's settings except `synchronous_standby_names` (a
    /// promoted replica must not wait for itself).
    pub fn replica(&self) -> Result<ScratchNode, PgError> {
        let dir = temp_dir()?;
        let mut cfg = NodeConfig::new(dir.path().join("replica"), free_port(), "");
        cfg.settings = (self.node.config().settings.iter())
            .filter(|(name, _)| name != "synchronous_standby_names")
            .cloned()
            .collect();
        let node = PgNode::clone_replica(self.node.binaries(), &self.node, cfg, None)?;
        ScratchNode { node, dir }.started()
    }

    /// The temp directory holding the data dir, its log and socket dir.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Starts the node, moving it to a fresh port if its port was taken.
    fn started(mut self) -> Result<ScratchNode, PgError> {
        for attempt in 1..=START_ATTEMPTS {
            self.node.set_port(free_port());
            match self.node.start() {
                Err(PgError::PortInUse { .. }) if attempt < START_ATTEMPTS => continue,
                result => return result.map(|()| self),
            }
        }
        unreachable!("the last attempt returns")
    }
}

impl Deref for ScratchNode {
    type Target = PgNode;
    fn deref(&self) -> &PgNode {
        &self.node
    }
}

impl Drop for ScratchNode {
    fn drop(&mut self) {
        if self.node.stop(StopMode::Immediate).is_err() {
            self.node.kill_processes();
        }
        // `self.dir` is removed when it drops, right after this.
    }
}

/// A new private temp dir, owned by the server user, under [`scratch_root`].
fn temp_dir() -> Result<TempDir, PgError> {
    let root = scratch_root();
    let dir = tempfile::Builder::new()
        .prefix("dash-pg-")
        .tempdir_in(root)
        .map_err(|e| PgError::io(format!("create temp dir in {}", root.display()), e))?;
    give_to_server_user(dir.path())?;
    Ok(dir)
}

/// Where test nodes live: `$DASH_PG_TEST_TMPDIR` if set, else `/dev/shm` when
/// it is writable with at least [`MIN_SHM_FREE`] free (creating a data dir's
/// ~1,000 files there takes ~40 ms instead of ~300 ms on ext4), else the temp dir.
fn scratch_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        if let Some(dir) = std::env::var_os("DASH_PG_TEST_TMPDIR") {
            return PathBuf::from(dir);
        }
        let shm = Path::new("/dev/shm");
        #[allow(clippy::unnecessary_cast)] // the statvfs field types vary by platform
        let roomy = nix::sys::statvfs::statvfs(shm).is_ok_and(|fs| {
            fs.blocks_available() as u64 * fs.fragment_size() as u64 >= MIN_SHM_FREE
        });
        let writable = nix::unistd::access(shm, nix::unistd::AccessFlags::W_OK).is_ok();
        match roomy && writable {
            true => shm.to_path_buf(),
            false => std::env::temp_dir(),
        }
    })
}

/// The server binaries, located once per process.
fn binaries() -> Result<&'static PgBinaries, PgError> {
    static BINARIES: OnceLock<PgBinaries> = OnceLock::new();
    if let Some(bins) = BINARIES.get() {
        return Ok(bins);
    }
    let bins = PgBinaries::locate()?;
    Ok(BINARIES.get_or_init(|| bins))
}

/// The template data dir: made once per machine (per version, user and init
/// options) under the temp dir, found by later processes. Creation is atomic
/// (initdb into a private name, then rename), so racing processes are safe.
fn template(bins: &PgBinaries) -> Result<&'static Path, PgError> {
    static TEMPLATE: OnceLock<PathBuf> = OnceLock::new();
    static CREATING: Mutex<()> = Mutex::new(());
    if let Some(path) = TEMPLATE.get() {
        return Ok(path);
    }
    let _one_at_a_time = CREATING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(path) = TEMPLATE.get() {
        return Ok(path);
    }
    let key = [
        bins.bindir.as_os_str().as_encoded_bytes(),
        INITDB_FLAGS.join(" ").as_bytes(),
        BASE_CONF.as_bytes(),
        PG_HBA.as_bytes(),
        TEST_SUPERUSER.as_bytes(),
        TEST_PASSWORD.as_bytes(),
    ]
    .join(&0u8);
    let uid = nix::unistd::Uid::effective();
    let name = format!(
        "dash-pg-template-v{}-u{uid}-{:016x}",
        bins.version,
        fnv1a(&key)
    );
    let path = std::env::temp_dir().join(name);
    if !is_cluster(&path) {
        // Only a complete cluster is ever renamed into place: anything else is debris.
        let _ = std::fs::remove_dir_all(&path);
        let staging = path.with_extension(format!(
            "tmp-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        let made = initdb(bins, &staging, TEST_SUPERUSER, TEST_PASSWORD, true).and_then(|()| {
            match std::fs::rename(&staging, &path) {
                Err(_) if is_cluster(&path) => Ok(()), // another process won the race
                other => other.map_err(|e| PgError::io(format!("rename to {}", path.display()), e)),
            }
        });
        let _ = std::fs::remove_dir_all(&staging);
        made?;
    }
    Ok(TEMPLATE.get_or_init(|| path))
}

fn is_cluster(dir: &Path) -> bool {
    dir.join("PG_VERSION").is_file() && dir.join("global/pg_control").is_file()
}
