//! What Dash records beside each dump: `<dump>.sha256` (the `sha256sum`
//! format, so `sha256sum -c` works too) and `<dump>.json`, a manifest with
//! the per-table row counts of the dump's snapshot and the last verification.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::RunbookError;

/// The manifest of one dump.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// The dump's file name (no directory).
    pub file: String,
    pub database: String,
    /// `host:port` the dump was taken from.
    pub source: String,
    pub server_version: String,
    pub pg_dump: String,
    pub created_at: DateTime<Utc>,
    pub duration_seconds: f64,
    pub size_bytes: u64,
    pub sha256: String,
    /// Rows per table (`schema.table`) in the dump's snapshot; empty for a
    /// dump Dash did not make.
    pub tables: BTreeMap<String, i64>,
    /// The last `verify-backup` of this dump.
    pub verification: Option<Verification>,
    /// Not made by `dashctl db backup` (recorded by `verify-backup`): never
    /// deleted by `--keep`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub foreign: bool,
}

/// One table's expected and observed row count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableCount {
    pub table: String,
    pub expected: Option<i64>,
    pub found: Option<i64>,
}

impl TableCount {
    /// The per-table comparison as a table: expected and found row counts.
    pub fn render_all(tables: &[TableCount], expected: &str, found: &str) -> String {
        let mut t = super::output::Table::new(&["TABLE", expected, found, "RESULT"]);
        for c in tables {
            t.row(vec![
                c.table.clone(),
                super::output::or_dash(c.expected),
                super::output::or_dash(c.found),
                if c.ok() {
                    "ok".into()
                } else {
                    "MISMATCH".into()
                },
            ]);
        }
        t.render()
    }

    pub fn ok(&self) -> bool {
        self.expected.is_some() && self.expected == self.found
    }
}

/// The result of restoring a dump into a scratch database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    pub at: DateTime<Utc>,
    pub ok: bool,
    /// `ok`, `mismatch` or `missing`.
    pub checksum: String,
    /// `ok`, or the restore's error.
    pub restore: String,
    pub tables: Vec<TableCount>,
    /// Where the dump was restored (a throwaway local instance, or a
    /// scratch database on the primary).
    #[serde(alias = "scratch_database")]
    pub restored_in: String,
    pub duration_seconds: f64,
}

/// `<dump>.sha256`.
pub fn checksum_path(dump: &Path) -> PathBuf {
    with_suffix(dump, ".sha256")
}

/// `<dump>.json`.
pub fn manifest_path(dump: &Path) -> PathBuf {
    with_suffix(dump, ".json")
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// The SHA-256 of a file, in hex.
pub fn sha256_file(path: &Path) -> Result<String, RunbookError> {
    let mut file = std::fs::File::open(path)
        .map_err(|e| RunbookError::io(format!("open {}", path.display()), e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| RunbookError::io(format!("read {}", path.display()), e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// The hex digest recorded in `<dump>.sha256`, if the file exists.
pub fn recorded_checksum(dump: &Path) -> Result<Option<String>, RunbookError> {
    let path = checksum_path(dump);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(text.split_whitespace().next().map(str::to_ascii_lowercase)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(RunbookError::io(format!("read {}", path.display()), e)),
    }
}

/// Compares a dump with its recorded checksum: `ok`, `mismatch` or `missing`.
pub fn check_checksum(dump: &Path) -> Result<String, RunbookError> {
    Ok(match recorded_checksum(dump)? {
        None => "missing".into(),
        Some(want) if want == sha256_file(dump)? => "ok".into(),
        Some(_) => "mismatch".into(),
    })
}

/// Writes `<dump>.sha256` atomically.
pub fn write_checksum(dump: &Path, hex: &str) -> Result<(), RunbookError> {
    let name = dump
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    write_atomic(&checksum_path(dump), format!("{hex}  {name}\n").as_bytes())
}

impl Manifest {
    /// Reads `<dump>.json`; `None` when there is none.
    pub fn load(dump: &Path) -> Result<Option<Manifest>, RunbookError> {
        let path = manifest_path(dump);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| {
                RunbookError::Invalid(format!("{} is not a valid manifest: {e}", path.display()))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(RunbookError::io(format!("read {}", path.display()), e)),
        }
    }

    /// Writes `<dump>.json` atomically.
    pub fn save(&self, dump: &Path) -> Result<(), RunbookError> {
        let text = serde_json::to_vec_pretty(self).expect("a manifest serializes");
        write_atomic(&manifest_path(dump), &text)
    }
}

/// Writes `path` through a temp file in the same directory, fsync, rename:
/// a reader sees the old content or the new, never a part.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RunbookError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let err = |e| RunbookError::io(format!("write {}", path.display()), e);
    let mut tmp = tempfile::Builder::new()
        .prefix(".dash-tmp-")
        .tempfile_in(dir)
        .map_err(err)?;
    tmp.write_all(bytes).map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    sync_dir(dir);
    Ok(())
}

/// Makes a rename in `dir` durable (best effort).
pub fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_file_round_trip_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let dump = dir.path().join("a.dump");
        std::fs::write(&dump, b"hello").unwrap();
        assert_eq!(check_checksum(&dump).unwrap(), "missing");
        write_checksum(&dump, &sha256_file(&dump).unwrap()).unwrap();
        let line = std::fs::read_to_string(checksum_path(&dump)).unwrap();
        assert!(
            line.starts_with("2cf24dba5fb0a30e") && line.ends_with("  a.dump\n"),
            "{line}"
        );
        assert_eq!(check_checksum(&dump).unwrap(), "ok");
        std::fs::write(&dump, b"hellO").unwrap();
        assert_eq!(check_checksum(&dump).unwrap(), "mismatch");
    }

    #[test]
    fn row_counts_must_match_exactly() {
        let t = |e, f| TableCount {
            table: "public.x".into(),
            expected: e,
            found: f,
        };
        assert!(t(Some(3), Some(3)).ok());
        assert!(!t(Some(3), Some(2)).ok());
        assert!(!t(None, Some(2)).ok());
        assert!(!t(Some(3), None).ok());
    }
}
