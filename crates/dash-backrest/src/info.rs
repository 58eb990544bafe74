//! The catalogue: `pgbackrest info --output=json` read into backups, the
//! archive's WAL range and the restorable window.

use std::path::Path;
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::{BackrestError, BackupType, Repo};

/// What a stanza's repository holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Catalogue {
    /// Backups, oldest first.
    pub backups: Vec<BackupInfo>,
    /// The oldest archived WAL segment of the current cluster.
    pub archive_min: Option<String>,
    /// The newest archived WAL segment of the current cluster.
    pub archive_max: Option<String>,
    /// The times a restore can reach; `None` without backups.
    pub window: Option<Window>,
    /// pgBackRest's status code for the stanza (0 = ok, 2 = no valid backups, ...).
    pub status_code: i64,
    /// pgBackRest's status message (`ok`, `no valid backups`, `missing stanza path`, ...).
    pub status: String,
}

/// One backup in the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BackupInfo {
    /// Its label (`20240101-120000F`, `20240101-120000F_20240101-130000D`).
    pub label: String,
    /// Full, diff or incr.
    pub ty: BackupType,
    /// The backup it builds on (none for a full backup).
    pub prior: Option<String>,
    /// When it started.
    pub start: DateTime<Utc>,
    /// When it stopped: the earliest time a restore of it reaches.
    pub stop: DateTime<Utc>,
    /// The WAL position it started at.
    pub lsn_start: Option<u64>,
    /// The WAL position it stopped at (the cluster is consistent from here).
    pub lsn_stop: Option<u64>,
    /// The first WAL segment it needs.
    pub wal_start: Option<String>,
    /// The last WAL segment it needs.
    pub wal_stop: Option<String>,
    /// Bytes this backup copied (all files for a full, changed ones otherwise).
    pub size: u64,
    /// Bytes this backup stored in the repository (after compression).
    pub repo_size: u64,
    /// Bytes of the whole cluster when it was taken.
    pub database_size: u64,
    /// pgBackRest found page checksum errors in it.
    pub error: bool,
}

/// The restorable window.
///
/// `earliest` is the oldest backup's stop time, the first consistent point a
/// restore reaches. `latest` is when the newest WAL segment reached the
/// repository: the newest modification time of the files under
/// `<repo>/archive/<stanza>/<archive id>/`, or the newest backup's stop time
/// if that is later. It approximates the last commit the archive covers: a
/// segment is pushed after it fills or is switched, so commits after the
/// newest push are still only on the server, and a target after the end of
/// the archive makes recovery fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Window {
    /// The earliest time a restore can reach.
    pub earliest: DateTime<Utc>,
    /// About the latest time a restore can reach.
    pub latest: DateTime<Utc>,
}

impl Repo {
    /// `pgbackrest info --output=json` for this stanza, with the window.
    pub fn info(&self) -> Result<Catalogue, BackrestError> {
        let out = self.run("info", &["--output=json".into()])?;
        let mut parsed = parse(&out.stdout, &self.stanza)?;
        let backups = &parsed.catalogue.backups;
        if let (Some(first), Some(last)) = (backups.first(), backups.last()) {
            let archive = self.repo_path()?.join("archive").join(&self.stanza);
            let archive = match &parsed.archive_id {
                Some(id) => archive.join(id),
                None => archive,
            };
            let pushed = newest_wal_mtime(&archive).map(DateTime::<Utc>::from);
            let window = Window {
                earliest: first.stop,
                latest: pushed.map_or(last.stop, |t| t.max(last.stop)),
            };
            parsed.catalogue.window = Some(window);
        }
        Ok(parsed.catalogue)
    }
}

/// A catalogue without its window, and the archive id (`15-1`) it came from.
struct Parsed {
    catalogue: Catalogue,
    archive_id: Option<String>,
}

#[derive(Deserialize)]
struct RawStanza {
    name: String,
    status: RawStatus,
    #[serde(default)]
    backup: Vec<RawBackup>,
    #[serde(default)]
    archive: Vec<RawArchive>,
}

#[derive(Deserialize)]
struct RawStatus {
    code: i64,
    message: String,
}

#[derive(Deserialize)]
struct RawBackup {
    label: String,
    #[serde(rename = "type")]
    ty: String,
    prior: Option<String>,
    timestamp: Range<i64>,
    lsn: Option<Range<Option<String>>>,
    archive: Option<Range<Option<String>>>,
    info: RawSizes,
    #[serde(default)]
    error: Option<bool>,
}

#[derive(Deserialize)]
struct Range<T> {
    start: T,
    stop: T,
}

#[derive(Deserialize)]
struct RawSizes {
    size: u64,
    delta: u64,
    repository: RawRepoSizes,
}

#[derive(Deserialize)]
struct RawRepoSizes {
    delta: u64,
}

#[derive(Deserialize)]
struct RawArchive {
    id: String,
    min: Option<String>,
    max: Option<String>,
    database: RawDbRef,
}

#[derive(Deserialize)]
struct RawDbRef {
    id: u64,
}

/// Reads `info --output=json` (an array of stanzas) for `stanza`.
fn parse(json: &[u8], stanza: &str) -> Result<Parsed, BackrestError> {
    let bad = |why: String| BackrestError::Info(why);
    let stanzas: Vec<RawStanza> = serde_json::from_slice(json).map_err(|e| bad(e.to_string()))?;
    let raw = (stanzas.into_iter())
        .find(|s| s.name == stanza)
        .ok_or_else(|| bad(format!("stanza {stanza} is not in the output")))?;
    let mut backups = Vec::with_capacity(raw.backup.len());
    for b in raw.backup {
        let time = |secs: i64| {
            DateTime::from_timestamp(secs, 0)
                .ok_or_else(|| bad(format!("backup {}: bad timestamp {secs}", b.label)))
        };
        let (lsn_start, lsn_stop) = b.lsn.map_or((None, None), |r| (r.start, r.stop));
        let (wal_start, wal_stop) = b.archive.map_or((None, None), |r| (r.start, r.stop));
        backups.push(BackupInfo {
            ty: b
                .ty
                .parse()
                .map_err(|_| bad(format!("backup type {:?}", b.ty)))?,
            prior: b.prior,
            start: time(b.timestamp.start)?,
            stop: time(b.timestamp.stop)?,
            lsn_start: lsn_start.as_deref().and_then(dash_pg::parse_lsn),
            lsn_stop: lsn_stop.as_deref().and_then(dash_pg::parse_lsn),
            wal_start,
            wal_stop,
            size: b.info.delta,
            repo_size: b.info.repository.delta,
            database_size: b.info.size,
            error: b.error.unwrap_or(false),
            label: b.label,
        });
    }
    let current = raw.archive.into_iter().max_by_key(|a| a.database.id);
    let (archive_id, archive_min, archive_max) =
        current.map_or((None, None, None), |a| (Some(a.id), a.min, a.max));
    Ok(Parsed {
        catalogue: Catalogue {
            backups,
            archive_min,
            archive_max,
            window: None,
            status_code: raw.status.code,
            status: raw.status.message,
        },
        archive_id,
    })
}

/// The newest modification time of a WAL segment file (name starting with
/// 24 hex digits) in `dir` or its subdirectories (one per 256 segments).
fn newest_wal_mtime(dir: &Path) -> Option<SystemTime> {
    let mut newest = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        let name = entry.file_name();
        let name = name.as_encoded_bytes();
        let mtime = if meta.is_dir() {
            newest_wal_mtime(&entry.path())
        } else if name.len() >= 24 && name[..24].iter().all(u8::is_ascii_hexdigit) {
            meta.modified().ok()
        } else {
            None
        };
        newest = newest.max(mtime);
    }
    newest
}

#[cfg(test)]
mod tests;
