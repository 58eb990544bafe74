//! Scenario 2's backups against real PostgreSQL: a dump with checksum,
//! manifest and `latest.dump`; verification by restoring into a scratch
//! database (always dropped); a corrupted dump and a tampered manifest are
//! caught; retention keeps the newest.

mod runbook_common;

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use dash_runbook::backup::{self, backup, BackupOptions};
use dash_runbook::backups::{self, LATEST};
use dash_runbook::manifest::{self, Manifest};
use dash_runbook::verify_backup::{verify_backup, VerifyOptions};
use dash_runbook::Target;
use runbook_common::*;

async fn seeded(node: &dash_testkit::TempNode) -> String {
    let db = node.fresh_database().unwrap();
    let c = client(node, &db).await;
    c.batch_execute(
        "CREATE TABLE swarms (id int PRIMARY KEY, name text NOT NULL);
         CREATE INDEX swarms_name ON swarms (name);
         CREATE TABLE events (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, kind text);
         INSERT INTO swarms SELECT g, 'swarm ' || g FROM generate_series(1, 250) g;
         INSERT INTO events (kind) SELECT 'created' FROM generate_series(1, 1000);",
    )
    .await
    .unwrap();
    db
}

async fn scratch_databases(node: &dash_testkit::TempNode, db: &str) -> i64 {
    let c = client(node, db).await;
    c.query_one(
        "SELECT count(*) FROM pg_database WHERE datname LIKE 'dash_verify_%'",
        &[],
    )
    .await
    .unwrap()
    .get(0)
}

fn flip_bytes(path: &Path) {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let len = f.metadata().unwrap().len();
    let at = len / 2;
    let mut buf = [0u8; 16];
    f.seek(SeekFrom::Start(at)).unwrap();
    f.read_exact(&mut buf).unwrap();
    for b in &mut buf {
        *b ^= 0xff;
    }
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(&buf).unwrap();
}

async fn take(t: &Target, dir: &Path, keep: Option<usize>) -> backup::BackupReport {
    backup(
        t,
        &BackupOptions {
            dir: dir.to_path_buf(),
            keep,
        },
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_verify_and_catch_a_corrupted_dump() {
    let node = start_node().await;
    let db = seeded(&node).await;
    let t = target(&[&node], &db, no_api());
    let dir = tempfile::tempdir().unwrap();

    let r = take(&t, dir.path(), None).await;
    assert_eq!(r.tables["public.swarms"], 250);
    assert_eq!(r.tables["public.events"], 1000);
    assert!(r.file.is_file() && r.size_bytes > 0);
    let name = r.file.file_name().unwrap().to_str().unwrap().to_string();
    assert!(
        name.starts_with(&format!("dash-{db}-")) && name.ends_with(".dump"),
        "{name}"
    );
    assert_eq!(
        std::fs::read_link(dir.path().join(LATEST))
            .unwrap()
            .to_str()
            .unwrap(),
        name
    );
    assert_eq!(manifest::check_checksum(&r.file).unwrap(), "ok");
    let m = Manifest::load(&r.file).unwrap().unwrap();
    assert_eq!((m.sha256.as_str(), m.tables.len()), (r.sha256.as_str(), 2));
    assert!(m.verification.is_none());
    // Nothing partial is left behind.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.starts_with('.')), "{names:?}");

    let list = backups::list(dir.path()).unwrap();
    assert_eq!(list.backups.len(), 1);
    let b = &list.backups[0];
    assert_eq!(
        (b.checksum.as_str(), b.verified.as_str(), b.latest),
        ("ok", "never", true)
    );

    // Verification through latest.dump, in a throwaway local instance:
    // restored, counted, recorded, the instance removed, nothing on the server.
    let latest = backup::resolve_dump(dir.path(), None).unwrap();
    let local = VerifyOptions::default();
    let v = verify_backup(&t, &latest, &local).await.unwrap();
    assert!(v.ok, "{}", v.render());
    assert!(v.scratch_removed && v.recorded);
    assert!(v.restored_in.contains("throwaway"), "{}", v.render());
    assert_eq!(
        v.tables.iter().filter(|c| c.ok()).count(),
        2,
        "{:?}",
        v.tables
    );
    assert_eq!(scratch_databases(&node, &db).await, 0);
    let list = backups::list(dir.path()).unwrap();
    assert_eq!(list.backups[0].verified, "ok");
    assert!(list.render().contains("<- latest.dump"));

    // A manifest whose counts disagree with the dump: caught.
    let mut m = Manifest::load(&r.file).unwrap().unwrap();
    m.tables.insert("public.swarms".into(), 999);
    m.save(&r.file).unwrap();
    let v = verify_backup(&t, &r.file, &local).await.unwrap();
    assert!(!v.ok && v.restore == "ok", "{}", v.render());
    assert!(v.render().contains("MISMATCH"));

    // Flipped bytes, verified on the server: the checksum catches it, the
    // scratch database is still dropped.
    let r2 = take(&t, dir.path(), None).await;
    flip_bytes(&r2.file);
    let on_server = VerifyOptions { on_server: true };
    let v = verify_backup(&t, &r2.file, &on_server).await.unwrap();
    assert!(!v.ok, "{}", v.render());
    assert_eq!(v.checksum, "mismatch");
    assert!(v.scratch_removed && v.restored_in.contains("on the primary"));
    assert_eq!(scratch_databases(&node, &db).await, 0);
    let m = Manifest::load(&r2.file).unwrap().unwrap();
    assert!(!m.verification.unwrap().ok, "the failure is recorded");
    let list = backups::list(dir.path()).unwrap();
    let corrupt = list
        .backups
        .iter()
        .find(|b| b.file == r2.file.file_name().unwrap().to_str().unwrap())
        .unwrap();
    assert_eq!(
        (corrupt.checksum.as_str(), corrupt.verified.as_str()),
        ("mismatch", "failed")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_keeps_the_newest_and_never_foreign_files() {
    let node = start_node().await;
    let db = seeded(&node).await;
    let t = target(&[&node], &db, no_api());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("handmade.dump"), b"not ours").unwrap();
    let first = take(&t, dir.path(), None).await;
    let second = take(&t, dir.path(), None).await;
    let third = take(&t, dir.path(), Some(2)).await;
    assert_eq!(
        third.removed,
        vec![first
            .file
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned()]
    );
    assert!(!first.file.exists() && !manifest::manifest_path(&first.file).exists());
    assert!(!manifest::checksum_path(&first.file).exists());
    assert!(second.file.exists() && third.file.exists());
    assert!(dir.path().join("handmade.dump").exists());
    let target = std::fs::read_link(dir.path().join(LATEST)).unwrap();
    assert_eq!(target.as_os_str(), third.file.file_name().unwrap());
}
