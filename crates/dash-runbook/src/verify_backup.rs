//! `dashctl db verify-backup`: a dump is only a backup once it has been
//! restored. Checks the checksum, restores into a scratch database on the
//! primary's server (created, and always dropped, even on failure), compares
//! every table's row count with the counts recorded at backup time, and
//! records the result in the dump's manifest.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::Utc;
use serde::Serialize;

use super::backup::count_rows;
use super::manifest::{self, Manifest, TableCount, Verification};
use super::output::{duration, Progress, Table};
use super::session::{self, quote_ident, within, Primary, QUERY_DEADLINE};
use super::{tools, RunbookError, Target};

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub file: PathBuf,
    pub ok: bool,
    /// `ok`, `mismatch` or `missing`.
    pub checksum: String,
    /// `ok`, or why the restore failed.
    pub restore: String,
    pub tables: Vec<TableCount>,
    pub scratch_database: String,
    pub scratch_dropped: bool,
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
        t.row(vec![
            format!("restore into scratch database {}", self.scratch_database),
            self.restore.clone(),
        ]);
        t.row(vec![
            "scratch database dropped".into(),
            if self.scratch_dropped {
                "yes".into()
            } else {
                "NO".into()
            },
        ]);
        out.push_str(&t.render());
        if !self.tables.is_empty() {
            out.push('\n');
            out.push_str(&TableCount::render_all(
                &self.tables,
                "ROWS AT BACKUP",
                "ROWS RESTORED",
            ));
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
pub async fn verify_backup(target: &Target, dump: &Path) -> Result<VerifyReport, RunbookError> {
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

    let primary = session::primary(target).await?;
    let scratch = format!("dash_verify_{:08x}", rand::random::<u32>());
    within(
        "create the scratch database",
        QUERY_DEADLINE * 6,
        primary.client.batch_execute(&format!(
            "CREATE DATABASE {} TEMPLATE template0",
            quote_ident(&scratch)
        )),
    )
    .await?;
    let restored = restore_and_count(target, &primary, dump, &scratch).await;
    let dropped = drop_database(&primary, &scratch).await;
    if let Err(e) = &dropped {
        notes.push(format!(
            "could not drop scratch database {scratch}: {e}; drop it by hand"
        ));
    }

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
        scratch_database: scratch.clone(),
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
        scratch_database: scratch,
        scratch_dropped: dropped.is_ok(),
        duration_seconds,
        recorded,
        notes,
    })
}

/// `pg_restore` into the scratch database, then its row counts.
async fn restore_and_count(
    target: &Target,
    primary: &Primary,
    dump: &Path,
    scratch: &str,
) -> Result<std::collections::BTreeMap<String, i64>, RunbookError> {
    let mut cmd = tools::command("pg_restore", &target.settings, &primary.host, scratch);
    cmd.args(["--no-owner", "--no-privileges", "--exit-on-error"])
        .arg(dump);
    let progress = Progress::start(format!("restoring {} into {scratch}", dump.display()));
    let result = progress
        .track(tools::run(cmd, "pg_restore"), || "restoring".to_string())
        .await;
    progress.finish(if result.is_ok() { "restored" } else { "failed" });
    result?;
    let client = session::connect(&target.settings, &primary.host, scratch).await?;
    count_rows(&client, None).await
}

/// `DROP DATABASE ... WITH (FORCE)`: ends any session still in it.
async fn drop_database(primary: &Primary, name: &str) -> Result<(), RunbookError> {
    within(
        "drop the scratch database",
        QUERY_DEADLINE * 6,
        primary.client.batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_ident(name)
        )),
    )
    .await
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
