//! Running the PostgreSQL client tools (`pg_dump`, `pg_restore`) as clients:
//! as whoever we are (root is fine for clients), the password in
//! `PGPASSWORD`, never on the command line.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use dash_store::{DbSettings, HostPort};
use tokio::process::Command;

use super::RunbookError;
use dash_pg::PgBinaries;

/// The path of a client tool: beside the newest server binaries Dash finds
/// (`DASH_PG_BINDIR`, `pg_config`, `/usr/lib/postgresql/*/bin`), else `PATH`.
/// A newer `pg_dump` reads older servers; the reverse fails.
pub fn tool(name: &str) -> PathBuf {
    match PgBinaries::locate() {
        Ok(bins) if bins.path(name).is_file() => bins.path(name),
        _ => PathBuf::from(name),
    }
}

/// A client-tool command connected to `dbname` on `host`.
pub fn command(name: &str, settings: &DbSettings, host: &HostPort, dbname: &str) -> Command {
    let mut cmd = Command::new(tool(name));
    cmd.arg("--host")
        .arg(&host.host)
        .arg("--port")
        .arg(host.port.to_string())
        .arg("--username")
        .arg(&settings.user)
        .arg("--dbname")
        .arg(format!("dbname={}", conninfo_value(dbname)))
        .arg("--no-password");
    cmd.env("PGPASSWORD", settings.password.expose())
        .env("PGAPPNAME", super::target::CLI_APPLICATION_NAME)
        .env(
            "PGCONNECT_TIMEOUT",
            settings.connect_timeout.as_secs().max(2).to_string(),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if settings.password.is_empty() {
        cmd.env_remove("PGPASSWORD");
    }
    cmd
}

/// A libpq conninfo value, quoted.
fn conninfo_value(v: &str) -> String {
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// Runs `cmd` to completion; a failure carries the tool's stderr.
pub async fn run(mut cmd: Command, what: &str) -> Result<String, RunbookError> {
    let program = cmd.as_std().get_program().to_string_lossy().into_owned();
    let out = cmd.output().await.map_err(|e| {
        RunbookError::Tool(format!(
            "{what}: cannot run {program}: {e} (install the PostgreSQL client tools, or set DASH_PG_BINDIR)"
        ))
    })?;
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if !out.status.success() {
        let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(RunbookError::Tool(format!(
            "{what}: {program} failed ({}): {}",
            out.status,
            tail.join("\n")
        )));
    }
    Ok(stderr)
}

/// `pg_dump --version`, e.g. `pg_dump (PostgreSQL) 15.8`.
pub async fn version(name: &str) -> Option<String> {
    let out = Command::new(tool(name))
        .arg("--version")
        .output()
        .await
        .ok()?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The size of `path` (0 while it does not exist).
pub fn size_of(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conninfo_values_are_quoted() {
        assert_eq!(conninfo_value("dash"), "'dash'");
        assert_eq!(conninfo_value("it's"), "'it\\'s'");
    }

    #[test]
    fn the_password_never_reaches_the_command_line() {
        let settings = DbSettings {
            password: dash_store::Secret::new("s3cret"),
            ..DbSettings::default()
        };
        let cmd = command("pg_dump", &settings, &settings.hosts[0], "dash");
        let args: Vec<String> = (cmd.as_std().get_args())
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(!args.iter().any(|a| a.contains("s3cret")), "{args:?}");
        let env: Vec<_> = cmd.as_std().get_envs().collect();
        assert!(env
            .iter()
            .any(|(k, v)| *k == "PGPASSWORD" && v.is_some_and(|v| v == "s3cret")));
    }
}
