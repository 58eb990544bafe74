//! `dashctl db backups` for the pgBackRest repository: every backup with
//! its type, size and times, the restorable window (from the oldest
//! backup's end to the newest archived WAL) and the last verification.

use dash_backrest::{BackupInfo, Verification, Window};
use serde::Serialize;

use super::Setup;
use crate::output::{bytes, Table};
use crate::RunbookError;

#[derive(Debug, Clone, Serialize)]
pub struct PhysicalList {
    pub config: String,
    pub stanza: String,
    pub backups: Vec<BackupInfo>,
    pub window: Option<Window>,
    pub archive_max: Option<String>,
    /// The newest verification, and the newest that succeeded.
    pub last_verification: Option<Verification>,
    pub last_verified_ok: Option<Verification>,
}

impl PhysicalList {
    pub fn render(&self) -> String {
        let mut out = format!(
            "pgBackRest repository ({}, stanza {})\n",
            self.config, self.stanza
        );
        if self.backups.is_empty() {
            out.push_str("  no backup yet: `dashctl db backup --type full`\n");
        } else {
            let mut t = Table::new(&[
                "LABEL", "TYPE", "STARTED", "ENDED", "SIZE", "STORED", "VERIFIED",
            ]);
            for b in &self.backups {
                let verified = match &self.last_verified_ok {
                    Some(v) if v.label == b.label => format!("ok {}", v.at.format("%m-%d %H:%M")),
                    _ => "-".into(),
                };
                t.row(vec![
                    b.label.clone(),
                    b.ty.to_string(),
                    b.start.format("%Y-%m-%d %H:%M:%S").to_string(),
                    b.stop.format("%Y-%m-%d %H:%M:%S").to_string(),
                    bytes(b.size),
                    bytes(b.repo_size),
                    verified,
                ]);
            }
            out.push_str(&t.render());
        }
        match &self.window {
            Some(w) => out.push_str(&format!(
                "restorable window: {} .. {} (UTC; the end is the newest archived WAL{})\n",
                w.earliest.format("%Y-%m-%d %H:%M:%S"),
                w.latest.format("%Y-%m-%d %H:%M:%S"),
                self.archive_max
                    .as_ref()
                    .map(|s| format!(", {s}"))
                    .unwrap_or_default()
            )),
            None => out.push_str("restorable window: none (no backup, or no archived WAL)\n"),
        }
        match &self.last_verification {
            Some(v) => out.push_str(&format!(
                "last verification: {} of {} at {} ({})\n",
                if v.ok { "PASSED" } else { "FAILED" },
                v.label,
                v.at.format("%Y-%m-%d %H:%M:%S UTC"),
                v.detail
            )),
            None => out.push_str("last verification: never (`dashctl db verify-backup`)\n"),
        }
        out
    }
}

/// Reads the catalogue and the verification records.
pub async fn list(setup: &Setup) -> Result<PhysicalList, RunbookError> {
    let repo = setup.repo.clone();
    let (cat, verifications) =
        tokio::task::spawn_blocking(move || (repo.info(), repo.verifications()))
            .await
            .map_err(|e| RunbookError::Invalid(format!("info task: {e}")))?;
    let cat = cat?;
    let verifications = verifications.unwrap_or_default();
    Ok(PhysicalList {
        config: setup.repo.config.display().to_string(),
        stanza: setup.repo.stanza.clone(),
        window: cat.window,
        archive_max: cat.archive_max,
        backups: cat.backups,
        last_verification: verifications.last().cloned(),
        last_verified_ok: verifications.iter().rev().find(|v| v.ok).cloned(),
    })
}
