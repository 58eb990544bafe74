//! `dashctl db verify-backup` with a pgBackRest repository: the newest
//! backup plus every archived WAL segment is restored into a throwaway
//! directory on this host (never on a database node, and with no privilege
//! there: only the repository is read), recovered to the end of the archive
//! by a server of our own with archiving off (nothing is written to the
//! repository), then checked: it promotes, every table the live primary has
//! is there with its row count beside the live one, and `amcheck` passes.
//! The result is recorded in the repository (`dashctl db backups`, the
//! agents' `dash_node_backup_last_verified_timestamp_seconds`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::Utc;
use dash_backrest::{RecoveryTarget, Verification};
use serde::Serialize;

use super::Setup;
use crate::amcheck::{amcheck, Amcheck};
use crate::output::duration;
use crate::{session, RunbookError, Target};

#[derive(Debug, Clone, Serialize)]
pub struct PhysicalVerifyReport {
    pub label: String,
    pub ok: bool,
    pub timeline: u32,
    pub lsn: String,
    /// The last transaction recovery replayed.
    pub restored_to: Option<chrono::DateTime<Utc>>,
    /// Table → (restored rows, live rows when the primary answered).
    pub tables: BTreeMap<String, (i64, Option<i64>)>,
    pub missing_tables: Vec<String>,
    pub amcheck: Amcheck,
    pub seconds: f64,
    pub notes: Vec<String>,
}

impl PhysicalVerifyReport {
    pub fn render(&self) -> String {
        let mut out = format!(
            "backup {} plus archived WAL restored into a throwaway instance on this host, \
             promoted on timeline {} at {}{}\n",
            self.label,
            self.timeline,
            self.lsn,
            self.restored_to
                .map(|t| format!(" (last transaction {})", t.format("%Y-%m-%d %H:%M:%S UTC")))
                .unwrap_or_default()
        );
        for (table, (restored, live)) in &self.tables {
            let live = live.map_or("-".into(), |n| n.to_string());
            out.push_str(&format!(
                "  {table:<28} restored {restored:>10}  live {live:>10}\n"
            ));
        }
        for t in &self.missing_tables {
            out.push_str(&format!("  MISSING: {t} (the live primary has it)\n"));
        }
        out.push_str(&format!("  amcheck: {}\n", self.amcheck.summary()));
        for n in &self.notes {
            out.push_str(&format!("  note: {n}\n"));
        }
        out.push_str(&format!(
            "{} in {}\n",
            if self.ok {
                "VERIFIED"
            } else {
                "VERIFICATION FAILED"
            },
            duration(Duration::from_secs_f64(self.seconds))
        ));
        out
    }
}

/// Verifies the newest backup (see the module docs).
pub async fn verify(target: &Target, setup: &Setup) -> Result<PhysicalVerifyReport, RunbookError> {
    let started = Instant::now();
    let repo = setup.repo.clone();
    let cat = tokio::task::spawn_blocking(move || repo.info())
        .await
        .map_err(|e| RunbookError::Invalid(format!("info task: {e}")))??;
    let Some(newest) = cat.backups.last() else {
        return Err(RunbookError::Refused(
            "the repository has no backup to verify: `dashctl db backup --type full`".into(),
        ));
    };
    let label = newest.label.clone();
    let scratch = tempfile::Builder::new()
        .prefix("dash-verify-")
        .tempdir()
        .map_err(|e| RunbookError::io("create a throwaway directory", e))?;
    dash_pg::give_to_server_user(scratch.path()).map_err(|e| RunbookError::Tool(e.to_string()))?;
    let dir = scratch.path().join("data");
    let rec = super::staging::recover(
        &setup.repo,
        &dir,
        &RecoveryTarget::EndOfArchive,
        Some(&label),
        &setup.superuser,
        false,
    )
    .await;
    let mut notes = Vec::new();
    let outcome = match rec {
        Ok(rec) => {
            let counts = rec.counts(&setup.dbname, &setup.superuser).await;
            let checked = match rec.client_for(&setup.dbname, &setup.superuser).await {
                Ok(c) => amcheck(&c).await,
                Err(e) => Amcheck::failed(&dash_core::error_chain(&e)),
            };
            let facts = (rec.timeline, rec.lsn.clone(), rec.last_commit);
            drop(rec);
            Ok((counts?, checked, facts))
        }
        Err(e) => Err(e),
    };
    drop(scratch);
    let (counts, checked, (timeline, lsn, restored_to)) = match outcome {
        Ok(o) => o,
        Err(e) => {
            record(
                setup,
                &label,
                false,
                None,
                started,
                &dash_core::error_chain(&e),
            );
            return Err(e);
        }
    };
    let live = match session::primary(target).await {
        Ok(p) => crate::backup::count_rows(&p.client, None).await.ok(),
        Err(_) => {
            notes.push(
                "no primary answered: row counts are not compared with the live database".into(),
            );
            None
        }
    };
    let mut missing = Vec::new();
    let mut tables: BTreeMap<String, (i64, Option<i64>)> = BTreeMap::new();
    for (t, n) in &counts {
        tables.insert(
            t.clone(),
            (*n, live.as_ref().and_then(|l| l.get(t).copied())),
        );
    }
    for t in live.iter().flat_map(|l| l.keys()) {
        if !counts.contains_key(t) {
            missing.push(t.clone());
        }
    }
    if live.is_some() {
        notes.push("live counts are read after recovery: writes since the newest archived WAL make them larger".into());
    }
    let ok = missing.is_empty() && checked.ok();
    let detail = format!(
        "{} table(s), amcheck {}, restored to {}",
        counts.len(),
        checked.summary(),
        lsn
    );
    record(setup, &label, ok, restored_to, started, &detail);
    Ok(PhysicalVerifyReport {
        label,
        ok,
        timeline,
        lsn,
        restored_to,
        tables,
        missing_tables: missing,
        amcheck: checked,
        seconds: started.elapsed().as_secs_f64(),
        notes,
    })
}

/// Records the outcome in the repository; a failure to record is printed,
/// not fatal (the verification itself stands).
fn record(
    setup: &Setup,
    label: &str,
    ok: bool,
    restored_to: Option<chrono::DateTime<Utc>>,
    started: Instant,
    detail: &str,
) {
    let v = Verification {
        label: label.to_string(),
        at: Utc::now(),
        ok,
        restored_to,
        seconds: started.elapsed().as_secs_f64(),
        detail: detail.to_string(),
    };
    if let Err(e) = setup.repo.record_verification(&v) {
        eprintln!("could not record the verification in the repository: {e}");
    }
}
