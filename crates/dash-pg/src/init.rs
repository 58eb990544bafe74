//! Creating a cluster (`initdb` plus Dash's base configuration) and running
//! the PostgreSQL client tools.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use super::user::{give_to_server_user, server_command, server_user};
use super::{PgBinaries, PgError};

/// `initdb` flags shared by every node (the template cache key includes them).
pub(crate) const INITDB_FLAGS: &[&str] = &[
    "--data-checksums",
    "--auth-local=trust",
    "--auth-host=scram-sha-256",
    "--encoding=UTF8",
    "--locale=C",
];

/// Settings appended once to `postgresql.conf` at init. They are the same on
/// every node, so a `pg_rewind` (which copies `postgresql.conf`) changes
/// nothing; per-node settings (port, addresses, socket dir, `NodeConfig::settings`)
/// go on the `postgres` command line instead.
pub(crate) const BASE_CONF: &str = "
# --- added by dash (per-node settings are on the postgres command line) ---
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
wal_keep_size = '256MB'
wal_log_hints = on
hot_standby = on
wal_retrieve_retry_interval = '10ms'
max_connections = 100
logging_collector = off
log_line_prefix = '%m [%p] %q%u@%d '
";

/// Host authentication: scram over loopback (including replication), trust on
/// the node's own Unix socket.
pub(crate) const PG_HBA: &str = "# written by dash
local   all          all                  trust
local   replication  all                  trust
host    all          all   127.0.0.1/32   scram-sha-256
host    all          all   ::1/128        scram-sha-256
host    replication  all   127.0.0.1/32   scram-sha-256
host    replication  all   ::1/128        scram-sha-256
";

/// Runs `initdb` into `data_dir` (created, mode 0700, owned by the server
/// user) and writes Dash's base `postgresql.conf` additions and `pg_hba.conf`.
pub(crate) fn initdb(
    bins: &PgBinaries,
    data_dir: &Path,
    superuser: &str,
    password: &str,
    no_sync: bool,
) -> Result<(), PgError> {
    server_user()?;
    make_private_dir(data_dir)?;
    let parent = data_dir.parent().unwrap_or(Path::new("/"));
    let mut pwfile = tempfile::Builder::new()
        .prefix(".dash-pw")
        .tempfile_in(parent)
        .map_err(|e| PgError::io(format!("password file in {}", parent.display()), e))?;
    writeln!(pwfile, "{password}").map_err(|e| PgError::io("write password file", e))?;
    give_to_server_user(pwfile.path())?;

    let mut cmd = server_command(&bins.path("initdb"));
    cmd.arg("-D")
        .arg(data_dir)
        .args(["-U", superuser])
        .args(INITDB_FLAGS);
    cmd.arg(format!("--pwfile={}", pwfile.path().display()));
    if no_sync {
        cmd.arg("--no-sync");
    }
    run(cmd)?;

    let conf = data_dir.join("postgresql.conf");
    let io = |e| PgError::io(format!("write {}", conf.display()), e);
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&conf)
        .map_err(io)?;
    file.write_all(BASE_CONF.as_bytes()).map_err(io)?;
    std::fs::write(data_dir.join("pg_hba.conf"), PG_HBA).map_err(io)
}

/// Creates `dir` (and parents) with mode 0700, owned by the server user.
pub(crate) fn make_private_dir(dir: &Path) -> Result<(), PgError> {
    let io = |e| PgError::io(format!("create {}", dir.display()), e);
    std::fs::create_dir_all(dir).map_err(io)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
    give_to_server_user(dir)
}

/// Runs `cmd`, capturing its output; a non-zero exit is a [`PgError::Command`]
/// (the environment, which may hold `PGPASSWORD`, is never shown).
pub fn run(mut cmd: Command) -> Result<Output, PgError> {
    let line = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    let fail = |status: String, output: String| PgError::Command {
        command: line.clone(),
        status,
        output,
    };
    let out = cmd
        .output()
        .map_err(|e| fail("could not run".into(), e.to_string()))?;
    if out.status.success() {
        return Ok(out);
    }
    let mut text = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if text.is_empty() {
        text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    }
    Err(fail(out.status.to_string(), text))
}

/// FNV-1a: a hash that is stable across processes and builds.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}
