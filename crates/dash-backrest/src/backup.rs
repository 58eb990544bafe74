//! Physical backups (`pgbackrest backup`: full, diff, incr; from a standby
//! when one is given) and retention (`expire`).

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use crate::info::BackupInfo;
use crate::{BackrestError, PgServer, Repo};

/// What a backup copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackupType {
    /// Every file of the cluster.
    Full,
    /// Files changed since the last full backup.
    Diff,
    /// Files changed since the last backup of any type.
    Incr,
}

impl BackupType {
    /// pgBackRest's name: `full`, `diff`, `incr`.
    pub fn as_str(self) -> &'static str {
        match self {
            BackupType::Full => "full",
            BackupType::Diff => "diff",
            BackupType::Incr => "incr",
        }
    }
}

impl fmt::Display for BackupType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BackupType {
    type Err = BackrestError;
    fn from_str(s: &str) -> Result<BackupType, BackrestError> {
        match s {
            "full" => Ok(BackupType::Full),
            "diff" => Ok(BackupType::Diff),
            "incr" => Ok(BackupType::Incr),
            other => Err(BackrestError::invalid(
                "backup type",
                other,
                "use full, diff or incr",
            )),
        }
    }
}

/// A finished backup.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BackupDone {
    /// The new backup's label (`20240101-120000F`, `..._20240101-130000I`).
    pub label: String,
    /// Its type (pgBackRest makes a full backup when there is none to
    /// build on, whatever was asked).
    pub ty: BackupType,
    /// How long the command ran (backup and expire).
    pub duration: Duration,
    /// The backup as the catalogue lists it (times, LSNs, sizes).
    pub info: BackupInfo,
}

impl Repo {
    /// `pgbackrest backup --type=<ty>`, then retention (`expire`, which
    /// pgBackRest runs after every successful backup). With a `standby`, the
    /// files are copied from it (`--backup-standby`): pgBackRest starts and
    /// stops the backup on `primary` and waits for the standby to replay to
    /// the start. Both servers are local (see the crate docs).
    pub fn backup(
        &self,
        ty: BackupType,
        primary: &PgServer,
        standby: Option<&PgServer>,
    ) -> Result<BackupDone, BackrestError> {
        let before: HashSet<String> = (self.info()?.backups.into_iter())
            .map(|b| b.label)
            .collect();
        let mut args = primary.args(1)?;
        if let Some(standby) = standby {
            args.extend(standby.args(2)?);
            args.push("--backup-standby".into());
        }
        args.push(format!("--type={ty}").into());
        let started = Instant::now();
        self.run("backup", &args)?;
        let duration = started.elapsed();
        let info = (self.info()?.backups.into_iter())
            .filter(|b| !before.contains(&b.label))
            .max_by(|a, b| a.label.cmp(&b.label))
            .ok_or_else(|| {
                BackrestError::Info(format!(
                    "`pgbackrest backup` succeeded but no new backup is in the catalogue of \
                     stanza {} (config {})",
                    self.stanza,
                    self.config.display()
                ))
            })?;
        Ok(BackupDone {
            label: info.label.clone(),
            ty: info.ty,
            duration,
            info,
        })
    }

    /// `pgbackrest expire`: removes backups and WAL past the retention the
    /// config file sets.
    pub fn expire(&self) -> Result<(), BackrestError> {
        self.run("expire", &[]).map(drop)
    }

    /// `pgbackrest expire` with `retention` instead of the config file's:
    /// full backups (with their diffs, incrs and WAL) beyond the newest N,
    /// or older than N days, are removed.
    pub fn expire_with(&self, retention: Retention) -> Result<(), BackrestError> {
        let (ty, n) = match retention {
            Retention::Count(n) => ("count", n),
            Retention::Days(d) => ("time", d),
        };
        if n == 0 {
            return Err(BackrestError::invalid(
                "retention",
                "0".to_string(),
                "keep at least one full backup (or one day)",
            ));
        }
        let args = [
            format!("--repo1-retention-full-type={ty}").into(),
            format!("--repo1-retention-full={n}").into(),
        ];
        self.run("expire", &args).map(drop)
    }
}

/// How many full backups to keep: by count or by age.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// The newest N full backups.
    Count(u32),
    /// Full backups younger than N days (and the newest one older, which
    /// the younger ones' window starts from).
    Days(u32),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_types_round_trip_and_junk_is_refused() {
        for ty in [BackupType::Full, BackupType::Diff, BackupType::Incr] {
            assert_eq!(ty.to_string().parse::<BackupType>().unwrap(), ty);
        }
        for junk in ["", "FULL", "Full", "incremental", "full ", "f"] {
            let err = junk.parse::<BackupType>().unwrap_err().to_string();
            assert!(err.contains("full, diff or incr"), "{junk:?}: {err}");
        }
    }
}
