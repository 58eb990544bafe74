//! Finding the PostgreSQL server binaries on this machine.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::PgError;

/// Where the Debian/Ubuntu packages put each major version's server binaries.
const DEBIAN_ROOT: &str = "/usr/lib/postgresql";

/// A PostgreSQL server installation: its `bin` directory and major version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgBinaries {
    /// Directory holding `postgres`, `initdb`, `pg_ctl`, `pg_basebackup`, ...
    pub bindir: PathBuf,
    /// Major version, e.g. 15.
    pub version: u32,
}

impl PgBinaries {
    /// Finds the server binaries: `$DASH_PG_BINDIR`, then `pg_config --bindir`
    /// if it holds `postgres`, then the highest `/usr/lib/postgresql/*/bin`,
    /// then `PATH`.
    pub fn locate() -> Result<PgBinaries, PgError> {
        Self::search(std::env::var_os("DASH_PG_BINDIR").map(PathBuf::from))
    }

    /// [`PgBinaries::locate`] with an explicit value for `$DASH_PG_BINDIR`. An
    /// override that holds no `postgres` is an error: the operator asked for it.
    pub fn search(bindir_override: Option<PathBuf>) -> Result<PgBinaries, PgError> {
        let mut searched = Vec::new();
        if let Some(dir) = bindir_override {
            return match Self::at(&dir) {
                Some(bins) => Ok(bins),
                None => Err(PgError::BinariesNotFound {
                    searched: vec![format!(
                        "DASH_PG_BINDIR={} (no runnable `postgres` there)",
                        dir.display()
                    )],
                }),
            };
        }
        searched.push("DASH_PG_BINDIR (not set)".to_string());

        match pg_config_bindir() {
            Some(dir) => match Self::at(&dir) {
                Some(bins) => return Ok(bins),
                None => searched.push(format!(
                    "`pg_config --bindir` = {} (no `postgres`)",
                    dir.display()
                )),
            },
            None => searched.push("`pg_config --bindir` (pg_config not on PATH)".to_string()),
        }

        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(DEBIAN_ROOT)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
            .collect();
        versions.sort();
        match versions.iter().rev().find_map(|(_, dir)| Self::at(dir)) {
            Some(bins) => return Ok(bins),
            None => searched.push(format!("{DEBIAN_ROOT}/*/bin (no server installed)")),
        }

        let path = std::env::var_os("PATH").unwrap_or_default();
        match std::env::split_paths(&path).find_map(|dir| Self::at(&dir)) {
            Some(bins) => Ok(bins),
            None => {
                searched.push("PATH (no `postgres`)".to_string());
                Err(PgError::BinariesNotFound { searched })
            }
        }
    }

    /// The binaries in `dir`, if it holds a `postgres` that reports its version.
    fn at(dir: &Path) -> Option<PgBinaries> {
        let postgres = dir.join("postgres");
        if !postgres.is_file() {
            return None;
        }
        let out = Command::new(&postgres).arg("--version").output().ok()?;
        let version = parse_major_version(&String::from_utf8_lossy(&out.stdout))?;
        Some(PgBinaries {
            bindir: dir.to_path_buf(),
            version,
        })
    }

    /// The full path of one tool, e.g. `path("pg_ctl")`.
    pub fn path(&self, tool: &str) -> PathBuf {
        self.bindir.join(tool)
    }
}

fn pg_config_bindir() -> Option<PathBuf> {
    let out = Command::new("pg_config").arg("--bindir").output().ok()?;
    let dir = String::from_utf8(out.stdout).ok()?;
    out.status.success().then(|| PathBuf::from(dir.trim()))
}

/// Parses `postgres (PostgreSQL) 15.8 (Debian ...)` into 15.
fn parse_major_version(text: &str) -> Option<u32> {
    let rest = text.split(')').nth(1)?.trim_start();
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// The message of [`PgError::BinariesNotFound`].
pub(super) fn not_found_message(searched: &[String]) -> String {
    format!(
        "PostgreSQL server binaries not found; searched: {}; install the PostgreSQL server \
         package, e.g. `apt-get install postgresql` (or set DASH_PG_BINDIR to the directory \
         holding `postgres`)",
        searched.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions() {
        assert_eq!(
            parse_major_version("postgres (PostgreSQL) 15.8 (Debian 15.8-1)\n"),
            Some(15)
        );
        assert_eq!(
            parse_major_version("postgres (PostgreSQL) 17beta1"),
            Some(17)
        );
        assert_eq!(parse_major_version("garbage"), None);
    }
}
