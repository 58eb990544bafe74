//! The record of verified restores (`dashctl db verify-backup`), kept in the
//! repository beside pgBackRest's own directories (`<repo>/dash/
//! verifications.json`, the newest [`KEPT`]), so that it travels with the
//! backups it speaks of: `dashctl db backups` shows the last one and the
//! node agents export its time for the "no verified backup" alert.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::replace_file;
use crate::{BackrestError, Repo};

/// How many verifications the record keeps.
pub const KEPT: usize = 50;

/// One verification of one backup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    /// The backup restored (its label).
    pub label: String,
    /// When the verification ended.
    pub at: DateTime<Utc>,
    /// Restored, promoted and checked without a problem.
    pub ok: bool,
    /// The last transaction recovery replayed, when known.
    pub restored_to: Option<DateTime<Utc>>,
    /// How long it took.
    pub seconds: f64,
    /// What was checked, or what failed.
    pub detail: String,
}

impl Repo {
    fn verifications_path(&self) -> Result<PathBuf, BackrestError> {
        Ok(self.repo_path()?.join("dash").join("verifications.json"))
    }

    /// Every recorded verification, oldest first (none when nothing was recorded).
    pub fn verifications(&self) -> Result<Vec<Verification>, BackrestError> {
        let path = self.verifications_path()?;
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| {
                BackrestError::invalid(
                    "verification record",
                    path.display().to_string(),
                    &e.to_string(),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(BackrestError::io(format!("read {}", path.display()), e)),
        }
    }

    /// Appends `v` to the record (keeping the newest [`KEPT`]).
    pub fn record_verification(&self, v: &Verification) -> Result<(), BackrestError> {
        let path = self.verifications_path()?;
        let mut all = self.verifications().unwrap_or_default();
        all.push(v.clone());
        let drop = all.len().saturating_sub(KEPT);
        all.drain(..drop);
        let dir = path.parent().expect("a file in a directory");
        std::fs::create_dir_all(dir)
            .map_err(|e| BackrestError::io(format!("create {}", dir.display()), e))?;
        let text = serde_json::to_string_pretty(&all).expect("plain data serializes");
        replace_file(&path, &text, 0o644)
    }

    /// When the newest successful verification ended, if any.
    pub fn last_verified(&self) -> Option<DateTime<Utc>> {
        let all = self.verifications().ok()?;
        all.iter().rev().find(|v| v.ok).map(|v| v.at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RepoSettings;

    #[test]
    fn verifications_are_kept_in_order_and_only_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repo::create(
            &dir.path().join("pgbackrest.conf"),
            "dash",
            &RepoSettings::under(dir.path()),
        )
        .unwrap();
        assert!(repo.verifications().unwrap().is_empty());
        assert_eq!(repo.last_verified(), None);
        let at = |s: i64| DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap();
        for i in 0..(KEPT as i64 + 3) {
            let v = Verification {
                label: format!("b{i}"),
                at: at(i),
                ok: i % 2 == 0,
                restored_to: None,
                seconds: 1.0,
                detail: String::new(),
            };
            repo.record_verification(&v).unwrap();
        }
        let all = repo.verifications().unwrap();
        assert_eq!(all.len(), KEPT);
        assert_eq!(all.first().unwrap().label, "b3");
        // b52 is the newest and ok (even).
        assert_eq!(repo.last_verified(), Some(at(KEPT as i64 + 2)));
    }
}
