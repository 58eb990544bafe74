//! `dashctl db backups` and retention: the dumps in the backup directory with
//! their size, age, checksum state and last verification; `--keep N`
//! deletes the oldest dumps Dash made, never anything else.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::manifest::{self, sync_dir, Manifest};
use super::output::{bytes, Table};
use super::RunbookError;

/// The symlink to the newest complete dump, kept in the backup directory
/// beside the dumps.
pub const LATEST: &str = "latest.dump";

/// One dump in the backup directory.
#[derive(Debug, Clone, Serialize)]
pub struct BackupEntry {
    pub file: String,
    pub size_bytes: u64,
    pub created_at: DateTime<Utc>,
    pub age_seconds: f64,
    /// `ok`, `mismatch` or `missing`.
    pub checksum: String,
    /// `ok`, `failed` or `never`.
    pub verified: String,
    pub verified_at: Option<DateTime<Utc>>,
    pub latest: bool,
    /// Made by `dashctl db backup` (has a manifest): subject to `--keep`.
    pub managed: bool,
}

/// `dashctl db backups`.
#[derive(Debug, Clone, Serialize)]
pub struct BackupList {
    pub dir: PathBuf,
    /// Newest first.
    pub backups: Vec<BackupEntry>,
    /// Incomplete dumps (a backup in progress, or one that crashed).
    pub partial: Vec<String>,
}

impl BackupList {
    pub fn render(&self) -> String {
        let mut out = format!("Backups in {}\n", self.dir.display());
        if self.backups.is_empty() {
            out.push_str("  none (make one with `dashctl db backup`)\n");
        } else {
            let mut t = Table::new(&["FILE", "SIZE", "AGE", "CHECKSUM", "VERIFIED", "LATEST"]);
            for b in &self.backups {
                t.row(vec![
                    b.file.clone(),
                    bytes(b.size_bytes),
                    super::output::seconds(b.age_seconds),
                    b.checksum.clone(),
                    match b.verified_at {
                        Some(at) => format!("{} {}", b.verified, at.format("%Y-%m-%d %H:%M")),
                        None => b.verified.clone(),
                    },
                    if b.latest {
                        "<- latest.dump".into()
                    } else {
                        String::new()
                    },
                ]);
            }
            out.push_str(&t.render());
        }
        for p in &self.partial {
            out.push_str(&format!("incomplete: {p}\n"));
        }
        out
    }
}

/// Lists the dumps in `dir`, checking each one's checksum.
pub fn list(dir: &Path) -> Result<BackupList, RunbookError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| RunbookError::io(format!("read backup directory {}", dir.display()), e))?;
    let latest = std::fs::read_link(dir.join(LATEST))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
    let mut backups = Vec::new();
    let mut partial = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".partial") {
            partial.push(name);
            continue;
        }
        if !name.ends_with(".dump") || name.starts_with('.') || name == LATEST {
            continue;
        }
        let path = entry.path();
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        let manifest = Manifest::load(&path).ok().flatten();
        let created_at = match &manifest {
            Some(m) => m.created_at,
            None => meta
                .modified()
                .map(DateTime::<Utc>::from)
                .unwrap_or_else(|_| Utc::now()),
        };
        let verification = manifest.as_ref().and_then(|m| m.verification.as_ref());
        backups.push(BackupEntry {
            size_bytes: meta.len(),
            created_at,
            age_seconds: (Utc::now() - created_at).num_milliseconds() as f64 / 1000.0,
            checksum: manifest::check_checksum(&path)?,
            verified: match verification {
                Some(v) if v.ok => "ok".into(),
                Some(_) => "failed".into(),
                None => "never".into(),
            },
            verified_at: verification.map(|v| v.at),
            latest: latest.as_deref() == Some(name.as_str()),
            managed: manifest.as_ref().is_some_and(|m| !m.foreign),
            file: name,
        });
    }
    backups.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.file.cmp(&a.file)));
    partial.sort();
    Ok(BackupList {
        dir: dir.to_path_buf(),
        backups,
        partial,
    })
}

/// Deletes all but the newest `keep` dumps Dash made (never `latest.dump`'s
/// target, never a file without a Dash manifest); returns what it deleted.
pub fn retain(dir: &Path, keep: usize) -> Result<Vec<String>, RunbookError> {
    let listing = list(dir)?;
    let mut removed = Vec::new();
    for b in listing
        .backups
        .iter()
        .filter(|b| b.managed)
        .skip(keep.max(1))
    {
        if b.latest {
            continue;
        }
        let path = dir.join(&b.file);
        for p in [
            manifest::manifest_path(&path),
            manifest::checksum_path(&path),
            path.clone(),
        ] {
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(RunbookError::io(format!("remove {}", p.display()), e)),
            }
        }
        removed.push(b.file.clone());
    }
    sync_dir(dir);
    Ok(removed)
}
