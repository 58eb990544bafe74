//! What a restore aims at: `--to TIME`, `--to-lsn LSN` or `--before-event
//! ID` (resolved against the database to the event's transaction, so that
//! recovery stops just before that transaction commits), and which backup
//! set can reach it (the newest one that ended before the target).

use chrono::{DateTime, NaiveDateTime, Utc};
use dash_backrest::{BackupInfo, Catalogue, RecoveryTarget};
use tokio_postgres::Client;

use crate::session::{within, QUERY_DEADLINE};
use crate::RunbookError;

/// The point asked for, before it is resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wanted {
    Time(DateTime<Utc>),
    Lsn(u64),
    BeforeEvent(i64),
}

/// A resolved point: the recovery target, and the time a backup must have
/// ended before (none for an LSN target, which compares LSNs instead).
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub target: RecoveryTarget,
    pub before: Option<DateTime<Utc>>,
    /// How the point reads in the report and the halt's reason.
    pub words: String,
}

/// Parses `--to`: RFC 3339 (`2026-11-30T12:00:00.123Z`,
/// `2026-11-30 12:00:00+01:00`) or a bare `YYYY-MM-DD HH:MM:SS[.frac]`
/// taken as UTC.
pub fn parse_time(v: &str) -> Result<DateTime<Utc>, String> {
    let v = v.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(&v.replacen(' ', "T", 1)) {
        return Ok(t.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(v, fmt) {
            return Ok(t.and_utc());
        }
    }
    Err(format!(
        "{v:?} is not a time: use RFC 3339 (2026-11-30T12:00:00Z, 2026-11-30 12:00:00.5+01:00) \
         or YYYY-MM-DD HH:MM:SS (UTC)"
    ))
}

/// Parses `--to-lsn` (`0/3000060`).
pub fn parse_lsn(v: &str) -> Result<u64, String> {
    dash_pg::parse_lsn(v.trim()).ok_or_else(|| {
        format!("{v:?} is not an LSN: use the form 0/3000060 (pg_current_wal_lsn())")
    })
}

impl Wanted {
    /// Resolves the point; `--before-event` reads the event (its
    /// transaction and time) from the database through `client`.
    pub async fn resolve(&self, client: Option<&Client>) -> Result<Point, RunbookError> {
        match *self {
            Wanted::Time(t) => Ok(Point {
                target: RecoveryTarget::Time(t),
                before: Some(t),
                words: format!("{}", t.format("%Y-%m-%d %H:%M:%S%.6f UTC")),
            }),
            Wanted::Lsn(lsn) => Ok(Point {
                target: RecoveryTarget::Lsn(lsn),
                before: None,
                words: format!("LSN {}", dash_pg::fmt_lsn(lsn)),
            }),
            Wanted::BeforeEvent(id) => {
                let Some(client) = client else {
                    return Err(RunbookError::Refused(format!(
                        "--before-event {id} needs the database to read the event from, and no primary answers: \
                         use --to TIME instead (the event feed or `dashctl db incidents` gives times)"
                    )));
                };
                let row = within(
                    "read the event",
                    QUERY_DEADLINE,
                    client.query_opt(
                        "SELECT txid, created_at, kind FROM events WHERE id = $1",
                        &[&id],
                    ),
                )
                .await?;
                let Some(row) = row else {
                    return Err(RunbookError::Usage(format!(
                        "there is no event {id} (GET /api/v1/events lists them); \
                         if the bad statement deleted it, use --to TIME"
                    )));
                };
                let txid: i64 = row.get(0);
                let at: DateTime<Utc> = row.get(1);
                let kind: String = row.get(2);
                Ok(Point {
                    // recovery_target_xid is the 32-bit xid; inclusive=false
                    // stops just before that transaction's commit.
                    target: RecoveryTarget::Xid {
                        xid: (txid & 0xFFFF_FFFF) as u32,
                        inclusive: false,
                    },
                    before: Some(at),
                    words: format!(
                        "just before event {id} ({kind}, transaction {txid}, at {})",
                        at.format("%Y-%m-%d %H:%M:%S%.6f UTC")
                    ),
                })
            }
        }
    }
}

/// The newest backup that can reach `point`: it ended before the target
/// time (or LSN). `None` with the reason when none can.
pub fn pick_set<'a>(cat: &'a Catalogue, point: &Point) -> Result<&'a BackupInfo, String> {
    let fits = |b: &&BackupInfo| match (&point.target, point.before) {
        (RecoveryTarget::Lsn(lsn), _) => b.lsn_stop.is_some_and(|stop| stop <= *lsn),
        (_, Some(t)) => b.stop < t,
        (_, None) => true,
    };
    if cat.backups.is_empty() {
        return Err(
            "the repository has no backup yet: take one with `dashctl db backup --type full`"
                .into(),
        );
    }
    (cat.backups.iter().rev().find(fits)).ok_or_else(|| {
        let oldest = &cat.backups[0];
        format!(
            "{} is before the oldest backup ({} ended {}): nothing in the repository can restore to it",
            point.words,
            oldest.label,
            oldest.stop.format("%Y-%m-%d %H:%M:%S UTC")
        )
    })
}

/// Refuses a time after the newest archived WAL: recovery would end before
/// reaching it and PostgreSQL stops with an error.
pub fn check_reachable(cat: &Catalogue, point: &Point) -> Result<(), String> {
    match (&cat.window, point.before) {
        (Some(w), Some(t)) if t > w.latest => Err(format!(
            "{} is after the newest archived WAL ({}): the archive cannot reach it yet",
            point.words,
            w.latest.format("%Y-%m-%d %H:%M:%S UTC")
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_the_forms_an_operator_types() {
        let t = parse_time("2026-11-30T12:00:00Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-30T12:00:00+00:00");
        assert_eq!(parse_time("2026-11-30 12:00:00").unwrap(), t);
        assert_eq!(parse_time("2026-11-30 13:00:00+01:00").unwrap(), t);
        let frac = parse_time("2026-11-30 12:00:00.25").unwrap();
        assert_eq!((frac - t).num_milliseconds(), 250);
        for junk in ["yesterday", "", "2026-13-01 00:00:00", "12:00"] {
            assert!(parse_time(junk).is_err(), "{junk}");
        }
        assert_eq!(parse_lsn("0/3000060"), Ok(0x300_0060));
        assert!(parse_lsn("3000060").is_err());
    }
}
