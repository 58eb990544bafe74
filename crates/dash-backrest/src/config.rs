//! The repository's config file (its `[global]` section: where the repository,
//! logs, locks and spool are, retention, compression) and the two commands
//! PostgreSQL runs through `/bin/sh`: `archive_command` and `restore_command`.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use dash_pg::give_to_server_user;

use crate::command::pgbackrest_path;
use crate::BackrestError;

/// Where a repository is and which stanza: every command runs
/// `pgbackrest --config=<config> --stanza=<stanza> ...` as the server user.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Repo {
    /// The config file (absolute).
    pub config: PathBuf,
    /// The stanza: one PostgreSQL cluster's backups and archive.
    pub stanza: String,
}

/// What goes in the config file's `[global]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoSettings {
    /// The repository (`repo1-path`): backups and archived WAL.
    pub repo_path: PathBuf,
    /// pgBackRest's log files (`log-path`).
    pub log_path: PathBuf,
    /// Lock files (`lock-path`).
    pub lock_path: PathBuf,
    /// Spool for asynchronous archiving (`spool-path`).
    pub spool_path: PathBuf,
    /// Full backups to keep (`repo1-retention-full`, count); default 2.
    pub retention_full: u32,
    /// When set, keep full backups for this many days instead of by count
    /// (`repo1-retention-full-type=time`).
    pub retention_full_days: Option<u32>,
    /// Processes for compression and transfer (`process-max`); default 2.
    pub process_max: u32,
}

impl RepoSettings {
    /// Everything under `root`: `repo`, `log`, `lock`, `spool`; the defaults.
    pub fn under(root: &Path) -> RepoSettings {
        RepoSettings {
            repo_path: root.join("repo"),
            log_path: root.join("log"),
            lock_path: root.join("lock"),
            spool_path: root.join("spool"),
            retention_full: 2,
            retention_full_days: None,
            process_max: 2,
        }
    }
}

impl Repo {
    /// Writes the config file (mode 0640, owned by the server user; replaced
    /// atomically) and creates the repository, log, lock and spool directories
    /// owned by the server user. Running it again with the same settings
    /// changes nothing; with other settings it rewrites the file.
    pub fn create(
        config: &Path,
        stanza: &str,
        settings: &RepoSettings,
    ) -> Result<Repo, BackrestError> {
        check_stanza(stanza)?;
        let config = absolute(config)?;
        let text = config_text(settings)?;
        for dir in [
            &settings.repo_path,
            &settings.log_path,
            &settings.lock_path,
            &settings.spool_path,
        ] {
            server_user_dir(&absolute(dir)?, 0o750)?;
        }
        let parent = config.parent().unwrap_or(Path::new("/"));
        std::fs::create_dir_all(parent)
            .map_err(|e| BackrestError::io(format!("create {}", parent.display()), e))?;
        replace_file(&config, &text, 0o640)?;
        Ok(Repo {
            config,
            stanza: stanza.to_string(),
        })
    }

    /// An existing repository's config file (it must exist).
    pub fn open(config: &Path, stanza: &str) -> Result<Repo, BackrestError> {
        check_stanza(stanza)?;
        let config = absolute(config)?;
        if !config.is_file() {
            return Err(BackrestError::NoConfig(config));
        }
        Ok(Repo {
            config,
            stanza: stanza.to_string(),
        })
    }

    /// The value for PostgreSQL's `archive_command`:
    /// `'/usr/bin/pgbackrest' '--config=…' '--stanza=…' --pg1-path="$PWD" archive-push %p`.
    /// PostgreSQL runs it through `/bin/sh` in the data directory, which is
    /// why `$PWD` is the data directory (pgBackRest needs it for the relative
    /// `%p` and checks the cluster's system id against the stanza).
    pub fn archive_command(&self) -> String {
        self.wal_command("archive-push %p")
    }

    /// The value for PostgreSQL's `restore_command`: `… archive-get %f "%p"`.
    pub fn restore_command(&self) -> String {
        self.wal_command("archive-get %f \"%p\"")
    }

    fn wal_command(&self, tail: &str) -> String {
        let head = [
            pgbackrest_path().as_os_str().to_string_lossy().into_owned(),
            format!("--config={}", self.config.display()),
            format!("--stanza={}", self.stanza),
        ];
        let quoted: Vec<String> = head.iter().map(|a| shell_quote(a)).collect();
        format!("{} --pg1-path=\"$PWD\" {tail}", quoted.join(" "))
    }

    /// The repository path (`repo1-path`) from the config file.
    pub fn repo_path(&self) -> Result<PathBuf, BackrestError> {
        let text = std::fs::read_to_string(&self.config).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => BackrestError::NoConfig(self.config.clone()),
            _ => BackrestError::io(format!("read {}", self.config.display()), e),
        })?;
        text.lines()
            .filter_map(|line| line.trim().split_once('='))
            .find(|(key, _)| key.trim() == "repo1-path")
            .map(|(_, value)| PathBuf::from(value.trim()))
            .ok_or_else(|| {
                BackrestError::invalid(
                    "config file",
                    self.config.display().to_string(),
                    "it has no repo1-path: rewrite it with Repo::create",
                )
            })
    }
}

/// The config file's text.
fn config_text(s: &RepoSettings) -> Result<String, BackrestError> {
    let mut lines = vec![
        "# Written by Dash (Repo::create): repository-wide settings only; the".to_string(),
        "# PostgreSQL servers (pgN-*) go on each command's command line.".to_string(),
        "[global]".to_string(),
    ];
    for (key, path) in [
        ("repo1-path", &s.repo_path),
        ("log-path", &s.log_path),
        ("lock-path", &s.lock_path),
        ("spool-path", &s.spool_path),
    ] {
        lines.push(format!("{key}={}", config_path(&absolute(path)?)?));
    }
    match s.retention_full_days {
        Some(days) => lines.extend([
            "repo1-retention-full-type=time".to_string(),
            format!("repo1-retention-full={}", days.max(1)),
        ]),
        None => lines.push(format!("repo1-retention-full={}", s.retention_full.max(1))),
    }
    lines.extend([
        format!("process-max={}", s.process_max.max(1)),
        // zst level 1: the smallest archive at lz4's speed (see the crate docs).
        "compress-type=zst".to_string(),
        "compress-level=1".to_string(),
        "start-fast=y".to_string(),
        "archive-async=n".to_string(),
        // Standbys archive too (archive_mode=always); see the crate docs.
        "archive-mode-check=n".to_string(),
        "log-level-console=warn".to_string(),
        "log-level-stderr=warn".to_string(),
        "log-level-file=info".to_string(),
    ]);
    Ok(lines.join("\n") + "\n")
}

/// A path as a config value: pgBackRest reads `key=value` lines and trims them.
fn config_path(path: &Path) -> Result<String, BackrestError> {
    let text = plain_path(path)?;
    if text.trim() != text {
        return Err(BackrestError::invalid(
            "path",
            text,
            "pgBackRest's config file trims leading and trailing spaces",
        ));
    }
    Ok(text.to_string())
}

/// A path as UTF-8 without control characters (newlines cannot be quoted for
/// PostgreSQL's config nor written in pgBackRest's).
pub(crate) fn plain_path(path: &Path) -> Result<&str, BackrestError> {
    let text = path
        .to_str()
        .ok_or_else(|| BackrestError::invalid("path", path.to_string_lossy(), "it is not UTF-8"))?;
    if text.chars().any(char::is_control) {
        return Err(BackrestError::invalid(
            "path",
            text,
            "it holds a control character (newline, tab, ...)",
        ));
    }
    Ok(text)
}

/// Single-quotes `arg` for `/bin/sh`; `%` is doubled because PostgreSQL
/// expands `%p`, `%f`, `%r` and `%%` in these commands before the shell sees them.
fn shell_quote(arg: &str) -> String {
    format!("'{}'", arg.replace('\'', "'\\''").replace('%', "%%"))
}

/// A stanza name: letters, digits, `.`, `_`, `-` (it becomes a directory name).
fn check_stanza(stanza: &str) -> Result<(), BackrestError> {
    let ok = !stanza.is_empty()
        && !stanza.starts_with('.')
        && stanza
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    match ok {
        true => Ok(()),
        false => Err(BackrestError::invalid(
            "stanza",
            stanza,
            "use letters, digits, '.', '_' and '-' (not first '.')",
        )),
    }
}

/// `path` made absolute against the current directory, checked to be plain.
pub(crate) fn absolute(path: &Path) -> Result<PathBuf, BackrestError> {
    let path = match path.is_absolute() {
        true => path.to_path_buf(),
        false => std::env::current_dir()
            .map_err(|e| BackrestError::io("current directory", e))?
            .join(path),
    };
    plain_path(&path)?;
    Ok(path)
}

/// Replaces `path` atomically with `text` (a temp file beside it, synced,
/// then renamed), mode `mode`, owned by the server user.
pub(crate) fn replace_file(path: &Path, text: &str, mode: u32) -> Result<(), BackrestError> {
    let io = |what: &str, e| BackrestError::io(format!("{what} {}", path.display()), e);
    let parent = path.parent().unwrap_or(Path::new("/"));
    let mut file = tempfile::Builder::new()
        .prefix(".dash-backrest")
        .tempfile_in(parent)
        .map_err(|e| io("temp file beside", e))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.as_file().sync_all())
        .map_err(|e| io("write", e))?;
    std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(mode))
        .map_err(|e| io("chmod", e))?;
    give_to_server_user(file.path())?;
    file.persist(path).map_err(|e| io("replace", e.error))?;
    Ok(())
}

/// Whether `dir` is empty; `None` when it does not exist.
pub(crate) fn empty_dir(dir: &Path) -> Result<Option<bool>, BackrestError> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => Ok(Some(entries.next().is_none())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(BackrestError::io(format!("read {}", dir.display()), e)),
    }
}

/// Creates `dir` (and parents) with `mode` and hands it to the server user
/// when we made it or it is empty; a directory holding files is left as it is.
pub(crate) fn server_user_dir(dir: &Path, mode: u32) -> Result<(), BackrestError> {
    let io = |e| BackrestError::io(format!("create {}", dir.display()), e);
    if empty_dir(dir)? == Some(false) {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(io)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).map_err(io)?;
    Ok(give_to_server_user(dir)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting_survives_quotes_percent_and_spaces() {
        assert_eq!(shell_quote("/a b/c"), "'/a b/c'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote("100%p"), "'100%%p'");
    }

    #[test]
    fn stanza_names_are_checked() {
        for good in ["dash", "db-1", "a.b_c"] {
            assert!(check_stanza(good).is_ok(), "{good}");
        }
        for bad in ["", ".hidden", "a/b", "a b", "x;y", "é"] {
            assert!(check_stanza(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn paths_with_newlines_or_edge_spaces_are_refused() {
        assert!(plain_path(Path::new("/a\nb")).is_err());
        assert!(config_path(Path::new("/a ")).is_err());
        assert!(config_path(Path::new("/a b")).is_ok());
    }
}
