//! Running `pgbackrest` as the server user with argv entries (never a shell),
//! the PostgreSQL servers it works on (`--pgN-*` options), and turning a
//! failure into a [`BackrestError`] that carries pgBackRest's own error lines.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use dash_pg::server_command;

use crate::config::plain_path;
use crate::{BackrestError, Repo};

/// Where Debian's package installs pgBackRest.
const DEFAULT_PGBACKREST: &str = "/usr/bin/pgbackrest";
/// The most of pgBackRest's stderr an error carries.
const MAX_MESSAGE: usize = 2000;

/// One PostgreSQL server pgBackRest works on, local to this host
/// (`pgN-path`, `pgN-port`, `pgN-socket-path`, `pgN-user`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgServer {
    /// Its data directory.
    pub data_dir: PathBuf,
    /// Its port.
    pub port: u16,
    /// Its Unix-socket directory (pgBackRest connects over the socket).
    pub socket_dir: PathBuf,
    /// A superuser pgBackRest connects as (trust on the local socket).
    pub user: String,
}

impl PgServer {
    /// The server of a local [`dash_pg::PgNode`], connecting as its superuser.
    pub fn of(node: &dash_pg::PgNode) -> PgServer {
        PgServer {
            data_dir: node.data_dir().to_path_buf(),
            port: node.port(),
            socket_dir: node.socket_dir().to_path_buf(),
            user: node.superuser().to_string(),
        }
    }

    /// `--pgN-path/-port/-socket-path/-user` for index `n` (1 or 2).
    pub(crate) fn args(&self, n: u8) -> Result<Vec<OsString>, BackrestError> {
        let path = plain_path(&self.data_dir)?;
        let socket = plain_path(&self.socket_dir)?;
        Ok(vec![
            format!("--pg{n}-path={path}").into(),
            format!("--pg{n}-port={}", self.port).into(),
            format!("--pg{n}-socket-path={socket}").into(),
            format!("--pg{n}-user={}", self.user).into(),
        ])
    }
}

/// The `pgbackrest` program: `$DASH_PGBACKREST`, else the first `pgbackrest`
/// on `PATH`, else `/usr/bin/pgbackrest`. Always absolute: it also goes into
/// `archive_command`, which runs with the server's `PATH`.
pub fn pgbackrest_path() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        if let Some(path) = std::env::var_os("DASH_PGBACKREST").map(PathBuf::from) {
            if path.is_absolute() {
                return path;
            }
        }
        std::env::var_os("PATH")
            .iter()
            .flat_map(std::env::split_paths)
            .map(|dir| dir.join("pgbackrest"))
            .find(|p| p.is_absolute() && p.is_file())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_PGBACKREST))
    })
}

impl Repo {
    /// Runs `pgbackrest --config --stanza [args] <command>` as the server user
    /// and returns its output; a non-zero exit is [`BackrestError::Command`].
    pub(crate) fn run(&self, command: &str, args: &[OsString]) -> Result<Output, BackrestError> {
        if !self.config.is_file() {
            return Err(BackrestError::NoConfig(self.config.clone()));
        }
        let program = pgbackrest_path();
        let mut cmd = server_command(program);
        cmd.arg(format!("--config={}", plain_path(&self.config)?))
            .arg(format!("--stanza={}", self.stanza))
            .args(args)
            .arg(command)
            .stdin(Stdio::null());
        let out = cmd.output().map_err(|source| BackrestError::NotInstalled {
            path: program.to_path_buf(),
            source,
        })?;
        if out.status.success() {
            return Ok(out);
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let text = match stderr.trim().is_empty() {
            true => stdout,
            false => stderr,
        };
        Err(BackrestError::Command {
            command: command.to_string(),
            status: out.status.to_string(),
            code: error_code(&text),
            message: error_lines(&text),
        })
    }

    /// `stanza-create`: the stanza's `backup.info` and `archive.info` for the
    /// cluster `pg` runs. Succeeds when the stanza already exists for the same
    /// cluster (system id and version).
    pub fn stanza_create(&self, pg: &PgServer) -> Result<(), BackrestError> {
        self.run("stanza-create", &pg.args(1)?).map(drop)
    }

    /// `check`: the configuration, then a WAL switch on `primary`, waiting up
    /// to `timeout` until that segment is in the archive (proves
    /// `archive_command` works).
    pub fn check(&self, primary: &PgServer, timeout: Duration) -> Result<(), BackrestError> {
        let mut args = primary.args(1)?;
        args.push(archive_timeout(timeout).into());
        self.run("check", &args).map(drop)
    }
}

/// `--archive-timeout=<seconds>` (pgBackRest takes 0.1 to 86400).
pub(crate) fn archive_timeout(timeout: Duration) -> String {
    let secs = timeout.as_secs_f64().clamp(0.1, 86_400.0);
    format!("--archive-timeout={secs:.3}")
}

/// The code of pgBackRest's first `ERROR: [NNN]:` line.
fn error_code(text: &str) -> Option<u16> {
    let rest = &text[text.find("ERROR: [")? + "ERROR: [".len()..];
    rest.split(']').next()?.parse().ok()
}

/// pgBackRest's `ERROR` lines and the indented lines (hints) after them, or
/// the whole text when there are none; trimmed to [`MAX_MESSAGE`] bytes.
fn error_lines(text: &str) -> String {
    let mut kept = Vec::new();
    let mut in_error = false;
    for line in text.lines() {
        if line.contains("ERROR:") {
            in_error = true;
        } else if !line.starts_with(' ') {
            in_error = false;
        }
        if in_error {
            kept.push(line.trim());
        }
    }
    let joined = match kept.is_empty() {
        true => text.trim().to_string(),
        false => kept.join("\n"),
    };
    match joined.char_indices().nth(MAX_MESSAGE) {
        Some((cut, _)) => format!("{}…", &joined[..cut]),
        None => joined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_lines_keep_errors_and_hints() {
        let text = "WARN: something\nERROR: [082]: WAL segment was not archived\n       \
                    HINT: check the archive_command\nINFO: done\n";
        assert_eq!(error_code(text), Some(82));
        assert_eq!(
            error_lines(text),
            "ERROR: [082]: WAL segment was not archived\nHINT: check the archive_command"
        );
        assert_eq!(error_code("plain failure"), None);
        assert_eq!(error_lines(" plain failure \n"), "plain failure");
    }

    #[test]
    fn archive_timeout_is_clamped_to_what_pgbackrest_takes() {
        assert_eq!(archive_timeout(Duration::ZERO), "--archive-timeout=0.100");
        assert_eq!(
            archive_timeout(Duration::from_millis(2500)),
            "--archive-timeout=2.500"
        );
    }
}
