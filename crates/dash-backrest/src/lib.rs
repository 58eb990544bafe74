//! pgBackRest, Dash's one way to drive it: the repository's config file,
//! continuous WAL archiving (`archive_command`/`restore_command`), physical
//! backups (full, diff, incr; from a standby when there is one), their
//! catalogue (`pgbackrest info`) and restores to a point in time.
//!
//! Every command runs `pgbackrest --config=<config> --stanza=<stanza> ...`
//! as the server user ([`dash_pg::server_command`]) with argv entries, never
//! through a shell. The config file holds only repository-wide settings; the
//! PostgreSQL servers (`--pgN-path/-port/-socket-path/-user`) go on the command
//! line, because which node is primary changes. pgBackRest rejects a
//! command-line option a command does not take (`--pg1-port` for
//! `archive-push`, `--compress-type` for `stanza-create`), so each command
//! gets only its own.
//!
//! What experiments with pgBackRest 2.45 and PostgreSQL 15 on one 2-core
//! machine established:
//!
//! 1. Backup from a standby works with both servers local (no `pgN-host`, no
//!    SSH): `--pg1-path/--pg1-port/--pg1-socket-path` for the primary,
//!    `--pg2-...` for the standby, `--backup-standby`. pgBackRest starts the
//!    backup on the primary, waits for the standby to replay to the start LSN
//!    and copies the files from the standby.
//! 2. With `archive_mode=always` every node pushes the same segments. A
//!    push of a segment the archive already holds with the same checksum
//!    succeeds (exit 0), so standbys can archive too and close the gap a
//!    dying primary leaves. pgBackRest warns about such duplicates only when
//!    `archive-mode-check=y`; that default also refuses `archive_mode=always`
//!    in `check` and `backup` (`[067]`), so the config file sets
//!    `archive-mode-check=n` and duplicates pass silently. The same name with
//!    other bytes still fails (`[045]`, different checksum): PostgreSQL then
//!    retries it and WAL piles up on that node. When the primary and a standby
//!    push one segment at the same moment (the usual case, both finish it
//!    together) they share pgBackRest's temp file and one may fail once with
//!    `[104] FileMoveError`; PostgreSQL's retry a second later finds the
//!    segment archived. Expect an occasional `failed_count` in
//!    `pg_stat_archiver` on archiving standbys.
//! 3. Speed on 2 cores: one `archive-push` of a full 16 MiB segment took
//!    ~70 ms with lz4 and zst level 1, ~320 ms with gz (level 6, the
//!    default); a full backup of a 90 MB cluster took 2.3 s with zst:1
//!    (10.7 MB stored), 3.5 s with gz (13.4 MB), 1.5 s with lz4 (25.4 MB).
//!    Dash uses `compress-type=zst`, `compress-level=1`, `start-fast=y`
//!    (without it a backup waits for the next scheduled checkpoint) and
//!    synchronous archiving (`archive-async` would only pay off well above
//!    ten segments a second).
//! 4. A restore with `--type=time --target-action=promote` recovers, promotes
//!    onto a new timeline and, when the restored server starts with archiving
//!    on, archives that timeline's history file (`00000002.history`): see
//!    the tests.
//!
//! `archive-push` and `archive-get` need `--pg1-path` when PostgreSQL passes a
//! relative `%p`; PostgreSQL runs both commands with the data directory as the
//! working directory, so [`Repo::archive_command`] passes `--pg1-path="$PWD"`.

mod backup;
mod command;
mod config;
mod info;
mod restore;
mod verified;

use std::path::PathBuf;

pub use backup::{BackupDone, BackupType, Retention};
pub use command::{pgbackrest_path, PgServer};
pub use config::{Repo, RepoSettings};
pub use info::{BackupInfo, Catalogue, Window};
pub use restore::{recovery_settings_cleanup, RecoveryTarget, RECOVERY_SETTINGS};
pub use verified::Verification;

/// The stanza Dash uses when there is one cluster per repository.
pub const DEFAULT_STANZA: &str = "dash";

/// Errors from driving pgBackRest.
#[derive(Debug, thiserror::Error)]
pub enum BackrestError {
    /// The config file is missing.
    #[error("pgBackRest config {0} does not exist: create the repository first (Repo::create)")]
    NoConfig(PathBuf),
    /// The `pgbackrest` program could not be run.
    #[error(
        "could not run pgBackRest ({path}): {source}; install the `pgbackrest` package \
         or set DASH_PGBACKREST to its absolute path"
    )]
    NotInstalled {
        /// The program we tried.
        path: PathBuf,
        /// Why it did not start.
        source: std::io::Error,
    },
    /// A pgBackRest command failed.
    #[error("`pgbackrest {command}` failed ({status}): {message}")]
    Command {
        /// The pgBackRest command (`backup`, `restore`, ...).
        command: String,
        /// The exit status.
        status: String,
        /// pgBackRest's numeric error code (`ERROR: [082]`), when it printed one.
        code: Option<u16>,
        /// pgBackRest's `ERROR`/`HINT` lines (or its whole stderr, trimmed).
        message: String,
    },
    /// A value cannot be used (a path that cannot be quoted, a bad name).
    #[error("invalid {what} {value:?}: {why}")]
    Invalid {
        /// What the value is for.
        what: &'static str,
        /// The value.
        value: String,
        /// Why it is refused.
        why: String,
    },
    /// `pgbackrest info` printed something we could not read.
    #[error("could not read `pgbackrest info --output=json`: {0}")]
    Info(String),
    /// A restore target directory holds files.
    #[error(
        "restore target {0} is not empty: restore into an empty or absent directory, \
         or use Repo::restore_delta on a stopped cluster"
    )]
    NotEmpty(PathBuf),
    /// Recovery settings cannot be cleaned up yet.
    #[error(
        "{0} still has recovery.signal: recovery has not finished; clean up after the \
         server has promoted"
    )]
    StillRecovering(PathBuf),
    /// A file-system operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Handing files to the server user failed.
    #[error(transparent)]
    Pg(#[from] dash_pg::PgError),
}

impl BackrestError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> BackrestError {
        BackrestError::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn invalid(what: &'static str, value: impl Into<String>, why: &str) -> Self {
        BackrestError::Invalid {
            what,
            value: value.into(),
            why: why.to_string(),
        }
    }
}
