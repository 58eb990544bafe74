//! `dashctl db verify-backup`: a dump is only a backup once it has been
//! restored. Checks the checksum, restores into a throwaway PostgreSQL
//! instance started on this machine (or, with `--on-server`, a scratch
//! database on the primary; see [`crate::scratch_instance`]), always removed
//! again, compares every table's row count with the counts recorded at
//! backup time, and records the result in the dump's manifest.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::Utc;
use serde::Serialize;

use super::manifest::{self, Manifest, TableCount, Verification};
use super::output::{duration, or_dash, Table};
use super::scratch_instance::{restore_locally, restore_on_server};
use super::{tools, RunbookError, Target};

/// `dashctl db verify-backup` options.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Restore into a scratch database on the primary instead of a
    /// throwaway local instance.
    pub on_server: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub file: PathBuf,
    pub ok: bool,
    /// `ok`, `mismatch` or `missing`.
    pub checksum: String,
    /// `ok`, or why the restore failed.
    pub restore: String,
    pub tables: Vec<TableCount>,
    /// Where the dump was restored: a throwaway local instance, or a
    /// scratch database on the primary (`--on-server`).
    pub restored_in: String,
    /// That instance or database is gone again.
    pub scratch_removed: bool,
    pub duration_seconds: f64,
    /// The result was written to the manifest.
    pub recorded: bool,
    pub notes: Vec<String>,
}

impl VerifyReport {
    pub fn render(&self) -> String {
        let mut out = format!("Verify {}\n", self.file.display());
        let mut t = Table::new(&["CHECK", "RESULT"]);
        t.row(vec!["checksum (sha256)".into(), self.checksum.clone()]);
        t.row(vec!["restore".into(), self.restore.clone()]);
        t.row(vec![
            "scratch removed afterwards".into(),
            if self.scratch_removed {
                "yes".into()
            } else {
                "NO".into()
            },
        ]);
        out.push_str(&t.render());
        out.push_str(&format!("restored into {}\n", self.restored_in));
        if self.tables.iter().any(|t| t.expected.is_some()) {
            out.push('\n');
            out.push_str(&TableCount::render_all(
                &self.tables,
                "ROWS AT BACKUP",
                "ROWS RESTORED",
            ));
        } else if !self.tables.is_empty() {
            let mut t = Table::new(&["TABLE", "ROWS RESTORED"]);
            for c in &self.tables {
                t.row(vec![c.table.clone(), or_dash(c.found)]);
            }
            out.push('\n');
            out.push_str(&t.render());
        }
        for n in &self.notes {
            out.push_str(&format!("note: {n}\n"));
        }
        out.push_str(&format!(
            "\n{} in {}\n",
            if self.ok {
                "VERIFIED"
            } else {
                "VERIFICATION FAILED"
            },
            duration(std::time::Duration::from_secs_f64(self.duration_seconds))
        ));
        out
    }
}

/// Compares the counts at backup time with the counts found.
pub fn compare(
    expected: &std::collections::BTreeMap<String, i64>,
    found: &std::collections::BTreeMap<String, i64>,
) -> Vec<TableCount> {
    let names: BTreeSet<&String> = expected.keys().chain(found.keys()).collect();
    names
        .into_iter()
        .map(|t| TableCount {
            table: t.clone(),
            expected: expected.get(t).copied(),
            found: found.get(t).copied(),
        })
        .collect()
}

/// Verifies `dump` (see the module docs).
pub async fn verify_backup(
    target: &Target,
    dump: &Path,
    opts: &VerifyOptions,
) -> Result<VerifyReport, RunbookError> {
    let started = Instant::now();
    let path = dump.to_path_buf();
    let checksum = tokio::task::spawn_blocking(move || manifest::check_checksum(&path))
        .await
        .map_err(|e| RunbookError::Invalid(format!("hashing task failed: {e}")))??;
    let mut manifest = Manifest::load(dump)?;
    let mut notes = Vec::new();
    if checksum == "mismatch" {
        notes.push("the file does not match its recorded sha256: it changed or is corrupt".into());
    }
    if manifest.is_none() {
        notes.push(
            "no manifest: Dash did not make this dump; row counts are reported, not compared"
                .into(),
        );
    }

    let scratch = match opts.on_server {
        true => restore_on_server(target, dump).await?,
        false => restore_locally(dump).await?,
    };
    notes.extend(scratch.notes);
    let restored = scratch.counts;
    let (restore, found) = match restored {
        Ok(found) => ("ok".to_string(), Some(found)),
        Err(e) => (dash_core::error_chain(&e), None),
    };
    let expected = manifest
        .as_ref()
        .map(|m| m.tables.clone())
        .unwrap_or_default();
    let tables = match (&found, &manifest) {
        (Some(found), Some(_)) => compare(&expected, found),
        (Some(found), None) => compare(&Default::default(), found),
        (None, _) => Vec::new(),
    };
    let counts_ok = match &manifest {
        Some(m) if !m.tables.is_empty() => tables.iter().all(TableCount::ok),
        _ => true,
    };
    let foreign = manifest.as_ref().is_none_or(|m| m.foreign);
    let checksum_ok = checksum == "ok" || (checksum == "missing" && foreign);
    if checksum == "missing" && !foreign {
        notes.push("the checksum file is missing".into());
    }
    let ok = checksum_ok && restore == "ok" && counts_ok;
    let duration_seconds = started.elapsed().as_secs_f64();

    let verification = Verification {
        at: Utc::now(),
        ok,
        checksum: checksum.clone(),
        restore: restore.clone(),
        tables: tables.clone(),
        restored_in: scratch.place.clone(),
        duration_seconds,
    };
    let record = match manifest.as_mut() {
        Some(m) => {
            m.verification = Some(verification);
            m.clone()
        }
        None => foreign_manifest(dump, target, found.unwrap_or_default(), verification),
    };
    let recorded = match record.save(dump) {
        Ok(()) => true,
        Err(e) => {
            notes.push(format!("could not record the result: {e}"));
            false
        }
    };
    Ok(VerifyReport {
        file: dump.to_path_buf(),
        ok,
        checksum,
        restore,
        tables,
        restored_in: scratch.place,
        scratch_removed: scratch.removed,
        duration_seconds,
        recorded,
        notes,
    })
}

/// A manifest for a dump Dash did not make, so its verification is recorded.
fn foreign_manifest(
    dump: &Path,
    target: &Target,
    tables: std::collections::BTreeMap<String, i64>,
    verification: Verification,
) -> Manifest {
    let meta = std::fs::metadata(dump).ok();
    Manifest {
        format: 1,
        file: dump
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned(),
        database: target.settings.dbname.clone(),
        source: "unknown (not made by dashctl db backup)".into(),
        server_version: String::new(),
        pg_dump: String::new(),
        created_at: meta
            .and_then(|m| m.modified().ok())
            .map(chrono::DateTime::<Utc>::from)
            .unwrap_or_else(Utc::now),
        duration_seconds: 0.0,
        size_bytes: tools::size_of(dump),
        sha256: manifest::sha256_file(dump).unwrap_or_default(),
        tables: match verification.ok {
            true => tables,
            false => Default::default(),
        },
        verification: Some(verification),
        foreign: true,
    }
}
