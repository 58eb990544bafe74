//! WAL archiving as this member's PostgreSQL reports it (`pg_stat_archiver`
//! and the `.ready` files of `pg_wal/archive_status`), read every few
//! seconds and exported as `dash_node_archive_*`: what an alert needs to see
//! that archiving stalls or fails, and how much WAL a restore could lack.

use std::time::{Duration, Instant};

use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio_postgres::Client;

/// WAL archiving into the pgBackRest repository, on every member: a
/// standby archives too (`always`), so segments a dying primary had not yet
/// archived reach the repository from its standby (pgBackRest accepts the
/// identical duplicate pushes). `archive_timeout` bounds how old the newest
/// archived WAL can be while writes trickle.
pub fn settings(repo: &dash_backrest::Repo) -> Vec<(String, String)> {
    vec![
        ("archive_mode".into(), "always".into()),
        ("archive_command".into(), repo.archive_command()),
        ("archive_timeout".into(), "60s".into()),
    ]
}

/// How often the archiver's state is read.
pub const READ_EVERY: Duration = Duration::from_secs(5);

/// One reading, `None` fields when PostgreSQL has nothing to say (never archived).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ArchiveReading {
    /// `archive_mode` is not `off`.
    pub enabled: bool,
    /// Completed WAL segments waiting for `archive_command`.
    pub pending_segments: i64,
    /// WAL written but not archived: the pending segments plus, on a
    /// primary, what the current segment holds so far.
    pub lag_bytes: i64,
    pub last_success_unix: Option<f64>,
    pub last_failure_unix: Option<f64>,
}

/// The reading query. `pg_ls_archive_statusdir` needs a superuser or
/// `pg_monitor`, which the agent's login is.
const SQL: &str = "SELECT current_setting('archive_mode') <> 'off', \
     (SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'), \
     (SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size'), \
     CASE WHEN pg_is_in_recovery() THEN 0 \
          ELSE (pg_walfile_name_offset(pg_current_wal_insert_lsn())).file_offset END, \
     extract(epoch FROM last_archived_time)::float8, \
     extract(epoch FROM last_failed_time)::float8 \
     FROM pg_stat_archiver";

/// Reads the archiver's state; `None` when the server did not answer.
pub async fn read(client: &Client) -> Option<ArchiveReading> {
    let row = client.query_one(SQL, &[]).await.ok()?;
    let pending: i64 = row.get(1);
    let segment: i64 = row.get(2);
    let current: i64 = row.get::<_, Option<i32>>(3).map_or(0, i64::from);
    Some(ArchiveReading {
        enabled: row.get(0),
        pending_segments: pending,
        lag_bytes: pending * segment + current,
        last_success_unix: row.get(4),
        last_failure_unix: row.get(5),
    })
}

/// The `dash_node_archive_*` gauges.
#[derive(Default)]
pub struct ArchiveMetrics {
    pub enabled: Gauge,
    pub pending: Gauge,
    pub lag_bytes: Gauge,
    pub last_success: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub last_failure: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub last_verified: Gauge<f64, std::sync::atomic::AtomicU64>,
}

impl ArchiveMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "dash_node_archive_enabled",
            "1 when this member's PostgreSQL archives WAL (archive_mode on or always)",
            self.enabled.clone(),
        );
        registry.register(
            "dash_node_archive_pending_segments",
            "Completed WAL segments waiting to be archived",
            self.pending.clone(),
        );
        registry.register(
            "dash_node_archive_lag_bytes",
            "WAL written but not yet in the archive (pending segments, plus the current one's bytes on a primary)",
            self.lag_bytes.clone(),
        );
        registry.register(
            "dash_node_archive_last_success_timestamp_seconds",
            "When the archiver last archived a file (Unix time; 0: never since the server started)",
            self.last_success.clone(),
        );
        registry.register(
            "dash_node_archive_last_failure_timestamp_seconds",
            "When archive_command last failed (Unix time; 0: never)",
            self.last_failure.clone(),
        );
        registry.register(
            "dash_node_backup_last_verified_timestamp_seconds",
            "When `dashctl db verify-backup` last restored and checked a backup of the repository successfully (Unix time; 0: never)",
            self.last_verified.clone(),
        );
    }

    /// Reads the repository's record of verified restores.
    pub fn set_verified(&self, repo: &dash_backrest::Repo) {
        let at = repo
            .last_verified()
            .map_or(0.0, |t| t.timestamp_millis() as f64 / 1000.0);
        self.last_verified.set(at);
    }

    /// Records a reading; a stopped server keeps the last one, except that
    /// nothing is pending on a server that does not run.
    pub fn set(&self, r: Option<&ArchiveReading>) {
        let Some(r) = r else {
            self.pending.set(0);
            return;
        };
        self.enabled.set(i64::from(r.enabled));
        self.pending.set(r.pending_segments);
        self.lag_bytes.set(r.lag_bytes);
        self.last_success.set(r.last_success_unix.unwrap_or(0.0));
        self.last_failure.set(r.last_failure_unix.unwrap_or(0.0));
    }
}

/// When the next reading is due.
#[derive(Debug, Default)]
pub struct ArchiveClock(Option<Instant>);

impl ArchiveClock {
    pub fn due(&mut self, now: Instant) -> bool {
        let due = self.0.is_none_or(|t| now.duration_since(t) >= READ_EVERY);
        if due {
            self.0 = Some(now);
        }
        due
    }
}
