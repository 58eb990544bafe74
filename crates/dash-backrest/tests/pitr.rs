//! Point-in-time recovery end to end with real PostgreSQL and pgBackRest:
//! archive, back up, write rows around a known time and WAL position,
//! restore to each, start the restored server and count what survived.

mod common;

use std::time::Duration;

use chrono::Utc;
use common::{has_file, server_temp_dir, wait_for, Fixture, Restored};
use dash_backrest::{recovery_settings_cleanup, BackrestError, BackupType, RecoveryTarget};
use tempfile::TempDir;

/// Commits `count` transactions of 10 rows each, tagged with `batch`.
fn write_batch(f: &Fixture, batch: u32, count: u32) {
    for _ in 0..count {
        let sql =
            format!("INSERT INTO t (batch, n) SELECT {batch}, g FROM generate_series(1, 10) g");
        f.node.psql("postgres", &sql).expect("insert");
    }
}

/// Restores `f`'s repository to `target` into a new temp dir's `data`,
/// starts it and waits until it has promoted.
fn restore_and_start(f: &Fixture, target: RecoveryTarget) -> (TempDir, Restored) {
    let dir = server_temp_dir();
    let data = dir.path().join("data");
    f.repo.restore(&data, &target, None).expect("restore");
    let restored = Restored::start(&data, &f.node, &f.repo);
    restored.wait_promoted();
    (dir, restored)
}

#[test]
fn restores_to_a_time_and_to_an_lsn() {
    skip_unless_runnable!();
    let f = Fixture::new("on", 2);
    let pg = f.pg();
    f.node
        .psql("postgres", "CREATE TABLE t (batch int, n int)")
        .expect("create table");
    let full = f.repo.backup(BackupType::Full, &pg, None).expect("full");
    assert_eq!(
        (full.ty, full.info.prior.as_deref()),
        (BackupType::Full, None)
    );

    write_batch(&f, 1, 3);
    // The insert position: with synchronous_commit=off (scratch nodes) the
    // commits may not have been written yet.
    let lsn_after_1 = f
        .node
        .psql("postgres", "SELECT pg_current_wal_insert_lsn()")
        .unwrap();
    let lsn_after_1 = dash_pg::parse_lsn(lsn_after_1.trim()).expect("lsn");
    std::thread::sleep(Duration::from_millis(1100));
    let between = Utc::now();
    std::thread::sleep(Duration::from_millis(1100));
    write_batch(&f, 2, 3);
    // A backup after the target: pgBackRest must not pick it for the restore.
    let incr = f.repo.backup(BackupType::Incr, &pg, None).expect("incr");
    assert_eq!(incr.info.prior.as_deref(), Some(full.label.as_str()));
    assert!(incr.info.start > between, "{incr:?} began after {between}");
    f.repo.check(&pg, Duration::from_secs(20)).expect("check");

    let catalogue = f.repo.info().expect("info");
    let window = catalogue.window.expect("a window with backups");
    assert_eq!(window.earliest, full.info.stop);
    assert!(
        window.earliest <= between && between <= window.latest,
        "{window:?}"
    );
    assert!(
        window.latest >= incr.info.stop && window.latest <= Utc::now(),
        "{window:?}"
    );

    // To the time: batch 1 (committed before) all there, batch 2 none.
    let (target, restored) = restore_and_start(&f, RecoveryTarget::Time(between));
    let data = target.path().join("data");
    let counts = "SELECT count(*) FILTER (WHERE batch = 1) || ',' || count(*) FILTER (WHERE batch = 2) FROM t";
    assert_eq!(restored.query(counts), "30,0");
    // Promoted onto timeline 2, whose history file the server archives.
    let wal = restored.query("SELECT pg_walfile_name(pg_current_wal_lsn())");
    assert!(wal.starts_with("00000002"), "{wal}");
    wait_for(
        "00000002.history in the archive",
        Duration::from_secs(20),
        || has_file(&f.archive_dir(), "00000002.history"),
    );
    let removed = recovery_settings_cleanup(&data).expect("cleanup");
    assert!(
        removed.iter().any(|l| l.starts_with("restore_command")),
        "{removed:?}"
    );
    assert!(
        removed
            .iter()
            .any(|l| l.starts_with("recovery_target_time")),
        "{removed:?}"
    );
    let auto_conf = std::fs::read_to_string(data.join("postgresql.auto.conf")).unwrap();
    assert!(!auto_conf.contains("recovery_target"), "{auto_conf}");
    drop(restored);

    // To the WAL position right after batch 1, into a new directory.
    let (_target, restored) = restore_and_start(&f, RecoveryTarget::Lsn(lsn_after_1));
    assert_eq!(restored.query(counts), "30,0");
    drop(restored);

    // The same over the stopped first restore (--delta): its rows gone too.
    let lsn = RecoveryTarget::Lsn(lsn_after_1);
    let full_restore = f.repo.restore(&data, &lsn, None);
    assert!(
        matches!(full_restore, Err(BackrestError::NotEmpty(_))),
        "{full_restore:?}"
    );
    f.repo
        .restore_delta(&data, &lsn, None)
        .expect("delta restore");
    let restored = Restored::start(&data, &f.node, &f.repo);
    restored.wait_promoted();
    assert_eq!(restored.query(counts), "30,0");

    // The source still has everything.
    assert_eq!(f.node.psql("postgres", counts).unwrap().trim(), "30,30");
}
