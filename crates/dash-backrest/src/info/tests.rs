//! Unit tests: reading `pgbackrest info --output=json` as pgBackRest 2.45
//! printed it (a full and an incr backup; a stanza without backups), and
//! finding the newest archived segment.

use super::*;

#[test]
fn reads_backups_archive_range_and_status() {
    let parsed = parse(include_bytes!("info-2.45.json"), "dash").unwrap();
    assert_eq!(parsed.archive_id.as_deref(), Some("15-1"));
    let c = parsed.catalogue;
    assert_eq!((c.status_code, c.status.as_str()), (0, "ok"));
    assert_eq!(c.archive_min.as_deref(), Some("000000010000000000000001"));
    assert_eq!(c.archive_max.as_deref(), Some("000000010000000000000004"));
    assert_eq!(c.backups.len(), 2);
    let (full, incr) = (&c.backups[0], &c.backups[1]);
    assert_eq!(full.label, "20261130-152931F");
    assert_eq!((full.ty, full.prior.as_deref()), (BackupType::Full, None));
    assert_eq!(full.start.timestamp(), 1_796_052_571);
    assert_eq!(full.stop.timestamp(), 1_796_052_572);
    assert_eq!(
        (full.lsn_start, full.lsn_stop),
        (Some(0x200_0028), Some(0x200_0100))
    );
    assert_eq!(full.wal_start.as_deref(), Some("000000010000000000000002"));
    assert_eq!(
        (full.size, full.repo_size, full.database_size),
        (22_992_374, 2_811_643, 22_992_374)
    );
    assert_eq!(
        (incr.ty, incr.prior.as_deref()),
        (BackupType::Incr, Some("20261130-152931F"))
    );
    assert_eq!(
        (incr.size, incr.repo_size, incr.database_size),
        (8_458, 390, 22_992_374)
    );
    assert_eq!(incr.wal_stop.as_deref(), Some("000000010000000000000004"));
    assert!(!incr.error);
}

#[test]
fn a_stanza_without_backups_has_no_range_and_other_stanzas_are_errors() {
    let json = include_bytes!("info-2.45-empty.json");
    let c = parse(json, "dash").unwrap().catalogue;
    assert!(c.backups.is_empty() && c.archive_min.is_none() && c.archive_max.is_none());
    assert_eq!((c.status_code, c.status.as_str()), (2, "no valid backups"));
    let err = parse(json, "other").err().unwrap().to_string();
    assert!(err.contains("stanza other is not in the output"), "{err}");
    assert!(parse(b"not json", "dash").is_err());
}

#[test]
fn the_newest_segment_counts_and_other_files_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("0000000100000000");
    std::fs::create_dir(&sub).unwrap();
    assert_eq!(newest_wal_mtime(dir.path()), None);
    let seg = sub.join("000000010000000000000001-abc.zst");
    std::fs::write(&seg, "x").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(dir.path().join("archive.info"), "newer, not a segment").unwrap();
    let mtime = std::fs::metadata(&seg).unwrap().modified().unwrap();
    assert_eq!(newest_wal_mtime(dir.path()), Some(mtime));
}
