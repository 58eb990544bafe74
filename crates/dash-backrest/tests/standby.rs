//! Two local servers, a primary and its streaming standby, both archiving
//! (`archive_mode=always`) into one repository: duplicate pushes of the same
//! segment are accepted, and a backup is taken from the standby with both
//! servers given on the command line (no SSH).

mod common;

use std::path::Path;
use std::time::Duration;

use common::{wait_for, Fixture};
use dash_backrest::{BackupType, PgServer};

/// `last_archived_wal,failed_count` from `pg_stat_archiver`.
fn archiver(node: &dash_pg::PgNode) -> (String, i64) {
    let row = node
        .psql(
            "postgres",
            "SELECT coalesce(last_archived_wal, '') || ',' || failed_count FROM pg_stat_archiver",
        )
        .expect("pg_stat_archiver");
    let (wal, failed) = row.trim().split_once(',').expect("two fields");
    (wal.to_string(), failed.parse().expect("count"))
}

#[test]
fn standbys_archive_the_same_segments_and_backups_come_from_the_standby() {
    skip_unless_runnable!();
    let f = Fixture::new("always", 2);
    let standby = f.node.replica().expect("replica");
    let (primary, replica) = (f.pg(), PgServer::of(&standby));

    // Both archivers push every segment; the second push of each is a duplicate.
    for round in 0..3 {
        let sql = format!(
            "CREATE TABLE r{round} AS SELECT 1 AS x; SELECT pg_walfile_name(pg_switch_wal())"
        );
        let switched = f.node.psql("postgres", &sql).unwrap().trim().to_string();
        wait_for(
            "both archivers past the switch",
            Duration::from_secs(20),
            || {
                let (p, s) = (archiver(&f.node).0, archiver(&standby).0);
                p >= switched && s >= switched
            },
        );
    }
    // Both usually push at the same moment. pgBackRest then writes the same
    // temp file twice; the loser may fail once ([104] FileMoveError) and
    // PostgreSQL's retry a second later finds the segment there. Nothing
    // else may fail.
    for node in [&f.node, &standby.node] {
        let log = std::fs::read_to_string(node.log_path()).unwrap_or_default();
        for line in log.lines().filter(|l| l.contains("ERROR: [")) {
            assert!(line.contains("ERROR: [104]: archive-push"), "{line}\n{log}");
        }
    }
    // A later push of a segment already there, as PostgreSQL runs it
    // (through /bin/sh, in the data dir), succeeds (silently: pgBackRest
    // keeps quiet about duplicates when archive-mode-check=n); the same name
    // with other bytes is refused.
    let segment = archiver(&standby).0;
    let push = |path: &str| {
        let line = f.repo.archive_command().replace("%p", path);
        let mut sh = dash_pg::server_command(Path::new("/bin/sh"));
        sh.arg("-c").arg(line).current_dir(standby.data_dir());
        sh.output().expect("run /bin/sh")
    };
    let out = push(&format!("pg_wal/{segment}"));
    assert!(out.status.success(), "{out:?}");
    let tampered = f.dir.path().join(&segment);
    let mut bytes = std::fs::read(standby.data_dir().join("pg_wal").join(&segment)).unwrap();
    *bytes.last_mut().unwrap() ^= 0xff;
    std::fs::write(&tampered, bytes).unwrap();
    dash_pg::give_to_server_user(&tampered).unwrap();
    let out = push(tampered.to_str().unwrap());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a different segment was accepted");
    assert!(
        stderr.contains("ERROR: [045]") && stderr.contains("different checksum"),
        "{stderr}"
    );

    // `check` and `backup` accept archive_mode=always (archive-mode-check=n).
    f.repo
        .check(&primary, Duration::from_secs(20))
        .expect("check");
    let done = (f.repo)
        .backup(BackupType::Full, &primary, Some(&replica))
        .expect("backup from the standby");
    assert_eq!(done.ty, BackupType::Full);
    let manifest = f
        .dir
        .path()
        .join("repo/backup")
        .join(&f.repo.stanza)
        .join(&done.label)
        .join("backup.manifest");
    let manifest = std::fs::read_to_string(&manifest).expect("backup.manifest");
    assert!(
        manifest.contains("option-backup-standby=true"),
        "{manifest}"
    );
    drop(standby);
}
