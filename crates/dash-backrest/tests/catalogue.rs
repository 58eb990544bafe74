//! The catalogue and retention with real pgBackRest: full, diff and incr
//! backups with their priors, sizes and WAL ranges; a full backup past the
//! retention count expires the older chain; the config file and the stanza
//! are idempotent; and the errors callers see for a bad config or target.

mod common;

use std::os::unix::fs::MetadataExt;

use common::{server_temp_dir, Fixture};
use dash_backrest::{
    BackrestError, BackupType, PgServer, RecoveryTarget, Repo, RepoSettings, DEFAULT_STANZA,
};

#[test]
fn diff_and_incr_build_on_their_priors_and_retention_expires_the_old_chain() {
    skip_unless_runnable!();
    let f = Fixture::new("on", 1);
    let pg = f.pg();
    // Idempotent: the stanza exists for this very cluster.
    f.repo.stanza_create(&pg).expect("stanza-create again");
    let empty = f.repo.info().expect("info");
    assert!(
        empty.backups.is_empty() && empty.window.is_none(),
        "{empty:?}"
    );

    let full = f.repo.backup(BackupType::Full, &pg, None).unwrap();
    f.node
        .psql(
            "postgres",
            "CREATE TABLE big AS SELECT g FROM generate_series(1, 50000) g",
        )
        .unwrap();
    let diff = f.repo.backup(BackupType::Diff, &pg, None).unwrap();
    let incr = f.repo.backup(BackupType::Incr, &pg, None).unwrap();

    let c = f.repo.info().expect("info");
    assert_eq!((c.status_code, c.status.as_str()), (0, "ok"));
    let got: Vec<_> = (c.backups.iter())
        .map(|b| (b.label.as_str(), b.ty, b.prior.as_deref()))
        .collect();
    let want = [
        (full.label.as_str(), BackupType::Full, None),
        (
            diff.label.as_str(),
            BackupType::Diff,
            Some(full.label.as_str()),
        ),
        (
            incr.label.as_str(),
            BackupType::Incr,
            Some(diff.label.as_str()),
        ),
    ];
    assert_eq!(got, want);
    for b in &c.backups {
        assert!(b.start <= b.stop, "{b:?}");
        assert!(b.lsn_start.unwrap() <= b.lsn_stop.unwrap(), "{b:?}");
        assert!(b.wal_start.as_ref().unwrap() <= b.wal_stop.as_ref().unwrap());
        assert!(0 < b.repo_size && b.repo_size < b.size, "compressed: {b:?}");
        assert!(b.size <= b.database_size && !b.error, "{b:?}");
    }
    // The diff copies the new table; the incr after it copies far less.
    assert!(c.backups[1].size > 50_000 * 28, "{:?}", c.backups[1]);
    assert!(c.backups[2].size < c.backups[1].size, "{c:?}");
    assert!(c.backups[0].size > c.backups[1].size, "{c:?}");
    let (min, max) = (
        c.archive_min.clone().unwrap(),
        c.archive_max.clone().unwrap(),
    );
    assert!(min <= *c.backups[0].wal_start.as_ref().unwrap(), "{c:?}");
    assert!(max >= *c.backups[2].wal_stop.as_ref().unwrap(), "{c:?}");
    let window = c.window.unwrap();
    assert_eq!(window.earliest, full.info.stop);
    assert!(window.latest >= incr.info.stop, "{window:?}");
    assert_eq!(full.info, c.backups[0]);

    // Retention 1: a second full backup expires the first chain and its WAL.
    let full2 = f.repo.backup(BackupType::Full, &pg, None).unwrap();
    let c = f.repo.info().unwrap();
    let labels: Vec<_> = c.backups.iter().map(|b| b.label.as_str()).collect();
    assert_eq!(labels, [full2.label.as_str()]);
    assert!(
        c.archive_min.unwrap() > min,
        "WAL before the kept backup expired"
    );
    f.repo.expire().expect("expire with nothing to do");
}

#[test]
fn the_config_file_is_rewritten_in_place_and_errors_say_what_to_do() {
    skip_unless_runnable!();
    let dir = server_temp_dir();
    let config = dir.path().join("conf/pgbackrest.conf");
    let missing = Repo::open(&config, DEFAULT_STANZA).unwrap_err();
    assert!(matches!(missing, BackrestError::NoConfig(_)), "{missing}");
    assert!(missing.to_string().contains(&*config.to_string_lossy()));

    let mut settings = RepoSettings::under(dir.path());
    let repo = Repo::create(&config, DEFAULT_STANZA, &settings).unwrap();
    let first = std::fs::read_to_string(&config).unwrap();
    assert!(first.contains(&format!("repo1-path={}/repo\n", dir.path().display())));
    assert_eq!(
        Repo::create(&config, DEFAULT_STANZA, &settings).unwrap(),
        repo
    );
    assert_eq!(std::fs::read_to_string(&config).unwrap(), first);
    assert_eq!(std::fs::metadata(&config).unwrap().mode() & 0o777, 0o640);
    settings.retention_full_days = Some(14);
    Repo::create(&config, DEFAULT_STANZA, &settings).unwrap();
    let by_time = std::fs::read_to_string(&config).unwrap();
    assert!(by_time.contains("repo1-retention-full-type=time\nrepo1-retention-full=14\n"));
    assert_eq!(Repo::open(&config, DEFAULT_STANZA).unwrap(), repo);
    assert!(Repo::open(&config, "no/slashes").is_err());

    // pgBackRest's own error line comes through.
    let nowhere = PgServer {
        data_dir: dir.path().join("no-cluster"),
        port: 1,
        socket_dir: dir.path().join("no-sock"),
        user: "dash_user".into(),
    };
    let err = repo.stanza_create(&nowhere).unwrap_err();
    match &err {
        BackrestError::Command {
            command,
            code,
            message,
            ..
        } => {
            assert_eq!(command, "stanza-create");
            assert!(code.is_some() && message.contains("ERROR: ["), "{err}");
        }
        other => panic!("expected a command error, got {other}"),
    }

    // A config path that does not exist, and a target that is not empty.
    let gone = Repo {
        config: dir.path().join("gone.conf"),
        stanza: DEFAULT_STANZA.into(),
    };
    assert!(matches!(gone.info(), Err(BackrestError::NoConfig(_))));
    let busy = dir.path().join("busy");
    std::fs::create_dir(&busy).unwrap();
    std::fs::write(busy.join("file"), "x").unwrap();
    let err = repo.restore(&busy, &RecoveryTarget::EndOfArchive, None);
    assert!(matches!(err, Err(BackrestError::NotEmpty(_))), "{err:?}");
}
