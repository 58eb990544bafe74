//! What a restore could and could not check, and the verdict that follows:
//! "verified" only when every check ran and passed; a check that could not
//! run (no checksum file, no manifest) is named, never counted as passed.

use std::path::Path;

use serde::Serialize;

use super::manifest::{self, Manifest, TableCount};
use super::sequences::SequenceRepair;

/// The result of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckState {
    Ok,
    Failed,
    NotChecked,
}

/// One check a restore makes.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreCheck {
    pub name: String,
    pub state: CheckState,
    pub detail: String,
}

/// The restore's verdict (exit 0 only for `Verified`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every check ran and passed.
    Verified,
    /// Restored; no check failed, but some could not be made.
    NotVerified,
    /// Restored, and a check failed.
    Failed,
}

impl Verdict {
    pub fn of(checks: &[RestoreCheck]) -> Verdict {
        if checks.iter().any(|c| c.state == CheckState::Failed) {
            Verdict::Failed
        } else if checks.iter().any(|c| c.state == CheckState::NotChecked) {
            Verdict::NotVerified
        } else {
            Verdict::Verified
        }
    }

    /// The last line of the report.
    pub fn line(self, checks: &[RestoreCheck]) -> String {
        let named = |state| {
            (checks.iter())
                .filter(|c| c.state == state)
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Verdict::Verified => "RESTORED AND VERIFIED\n".into(),
            Verdict::NotVerified => format!(
                "RESTORED, NOT VERIFIED: {} not checked\n",
                named(CheckState::NotChecked)
            ),
            Verdict::Failed => format!(
                "RESTORE VERIFICATION FAILED: {}\n",
                named(CheckState::Failed)
            ),
        }
    }
}

/// Renders the checks as `name: state (detail)` lines.
pub fn render(checks: &[RestoreCheck]) -> String {
    let mut out = String::from("Checks:\n");
    for c in checks {
        let state = match c.state {
            CheckState::Ok => "ok",
            CheckState::Failed => "FAILED",
            CheckState::NotChecked => "not checked",
        };
        out.push_str(&format!("  {}: {state}: {}\n", c.name, c.detail));
    }
    out
}

/// The dump's checksum (a mismatch was refused before restoring).
pub fn checksum(dump: &Path, state: &str) -> RestoreCheck {
    let file = manifest::checksum_path(dump);
    match state {
        "ok" => check(
            "checksum",
            CheckState::Ok,
            format!("matches {}", file.display()),
        ),
        "missing" => check(
            "checksum",
            CheckState::NotChecked,
            format!(
                "{} is missing: the dump's integrity could not be checked",
                file.display()
            ),
        ),
        other => check("checksum", CheckState::Failed, other.to_string()),
    }
}

/// The row counts after the restore against the manifest's.
pub fn row_counts(dump: &Path, manifest: Option<&Manifest>, tables: &[TableCount]) -> RestoreCheck {
    let path = manifest::manifest_path(dump);
    let verify = format!(
        "`dashctl db verify-backup {}` records them for the next restore",
        dump.display()
    );
    match manifest {
        None => check(
            "row counts",
            CheckState::NotChecked,
            format!(
                "no manifest ({} is missing): nothing to compare the {} table(s) with; {verify}",
                path.display(),
                tables.len()
            ),
        ),
        Some(m) if m.foreign && m.tables.is_empty() => check(
            "row counts",
            CheckState::NotChecked,
            format!(
                "the manifest {} records no row counts; {verify}",
                path.display()
            ),
        ),
        Some(_) => {
            let differ = tables.iter().filter(|t| !t.ok()).count();
            match differ {
                0 => check(
                    "row counts",
                    CheckState::Ok,
                    format!("all {} table(s) match the manifest", tables.len()),
                ),
                n => check(
                    "row counts",
                    CheckState::Failed,
                    format!("{n} of {} table(s) differ from the manifest", tables.len()),
                ),
            }
        }
    }
}

/// Every sequence at or past its column's maximum.
pub fn sequences(repair: &Result<SequenceRepair, String>) -> RestoreCheck {
    match repair {
        Ok(r) => check("sequences", CheckState::Ok, r.summary()),
        Err(e) => check("sequences", CheckState::Failed, e.clone()),
    }
}

fn check(name: &str, state: CheckState, detail: String) -> RestoreCheck {
    RestoreCheck {
        name: name.into(),
        state,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verdict_never_counts_an_unmade_check_as_passed() {
        let dump = Path::new("/b/x.dump");
        let rows = row_counts(dump, None, &[]);
        let sum = checksum(dump, "ok");
        assert_eq!(rows.state, CheckState::NotChecked);
        assert!(rows.detail.contains("/b/x.dump.json"), "{}", rows.detail);
        let checks = vec![sum.clone(), rows];
        assert_eq!(Verdict::of(&checks), Verdict::NotVerified);
        let line = Verdict::NotVerified.line(&checks);
        assert_eq!(line, "RESTORED, NOT VERIFIED: row counts not checked\n");
        assert_eq!(Verdict::of(std::slice::from_ref(&sum)), Verdict::Verified);
        let failed = sequences(&Err("still behind".into()));
        assert_eq!(Verdict::of(&[sum, failed]), Verdict::Failed);
        assert_eq!(checksum(dump, "missing").state, CheckState::NotChecked);
    }
}
