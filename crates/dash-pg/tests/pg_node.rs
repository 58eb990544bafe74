//! Real PostgreSQL nodes through `dash_pg`: auth, restart, replication,
//! promotion, teardown and the error an operator sees without binaries.

use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use dash_pg::ScratchNode as TempNode;
use dash_pg::{data_dir_pids, NodeConfig, PgBinaries, PgError, PgNode, StopMode};

/// Polls `f` until it returns true or `limit` passes.
fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

#[tokio::test]
async fn scram_login_over_tcp_to_a_fresh_database() {
    let pg = TempNode::start().unwrap();
    let db = pg.fresh_database().unwrap();
    let (client, conn) = tokio_postgres::connect(&pg.url(&db), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let row = client
        .query_one("SELECT current_database(), current_user, (SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid WHERE rolname = current_user)", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), db);
    assert_eq!(row.get::<_, String>(1), "dash_user");
    assert!(row.get::<_, bool>(2), "password stored as scram");

    let wrong = pg.url(&db).replace(pg.password(), "wrong");
    let Err(err) = tokio_postgres::connect(&wrong, tokio_postgres::NoTls).await else {
        panic!("a wrong password was accepted");
    };
    let invalid_password = Some(&tokio_postgres::error::SqlState::INVALID_PASSWORD);
    assert_eq!(err.code(), invalid_password, "{err:?}");
}

#[test]
fn data_survives_a_restart() {
    let pg = TempNode::start().unwrap();
    let db = pg.fresh_database().unwrap();
    pg.psql(
        &db,
        "CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)",
    )
    .unwrap();
    pg.stop(StopMode::Fast).unwrap();
    assert!(!pg.is_running());
    assert!(pg.postmaster_pid().is_none());
    pg.stop(StopMode::Fast).unwrap(); // already stopped: fine
    pg.start().unwrap();
    assert_eq!(pg.psql(&db, "SELECT v FROM kept").unwrap().trim(), "42");
}

#[test]
fn replica_streams_and_promotes() {
    let primary = TempNode::start().unwrap();
    let db = primary.fresh_database().unwrap();
    primary.psql(&db, "CREATE TABLE t (v int)").unwrap();
    let replica = primary.replica().unwrap();
    assert_eq!(
        replica
            .psql("postgres", "SELECT pg_is_in_recovery()")
            .unwrap()
            .trim(),
        "t"
    );

    primary.psql(&db, "INSERT INTO t VALUES (7)").unwrap();
    let seen = eventually(Duration::from_secs(10), || {
        replica
            .psql(&db, "SELECT count(*) FROM t WHERE v = 7")
            .is_ok_and(|out| out.trim() == "1")
    });
    assert!(seen, "row never reached the replica");
    let senders = primary
        .psql(
            "postgres",
            "SELECT application_name || ':' || state FROM pg_stat_replication",
        )
        .unwrap();
    assert_eq!(senders.trim(), "replica:streaming");

    replica.promote().unwrap();
    let writable = eventually(Duration::from_secs(10), || {
        replica.psql(&db, "INSERT INTO t VALUES (8)").is_ok()
    });
    assert!(writable, "promoted replica never accepted a write");
    assert_eq!(
        replica
            .psql("postgres", "SELECT pg_is_in_recovery()")
            .unwrap()
            .trim(),
        "f"
    );
}

#[test]
fn drop_tears_everything_down() {
    let pg = TempNode::start().unwrap();
    let (port, dir, pids) = (
        pg.port(),
        pg.dir().to_path_buf(),
        data_dir_pids(pg.data_dir()),
    );
    assert!(TcpStream::connect(("127.0.0.1", port)).is_ok());
    drop(pg);
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "port still accepts"
    );
    assert!(!dir.exists(), "temp dir left behind");
    for pid in pids {
        assert!(
            !PathBuf::from(format!("/proc/{pid}")).exists(),
            "pid {pid} survived"
        );
    }
}

#[test]
fn a_panicking_test_still_tears_down() {
    let seen = std::sync::Mutex::new(None);
    let result = std::panic::catch_unwind(|| {
        let pg = TempNode::start().unwrap();
        *seen.lock().unwrap() = Some((pg.port(), pg.dir().to_path_buf()));
        panic!("test failure while the node runs");
    });
    assert!(result.is_err());
    let (port, dir) = seen.into_inner().unwrap().unwrap();
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "port still accepts"
    );
    assert!(!dir.exists(), "temp dir left behind");
}

#[test]
fn data_dir_pids_are_the_postmaster_and_its_children() {
    let pg = TempNode::start().unwrap();
    let postmaster = pg.postmaster_pid().unwrap();
    let pids = data_dir_pids(pg.data_dir());
    assert!(pids.contains(&postmaster), "{pids:?} lacks {postmaster}");
    assert!(pids.len() >= 2, "no child processes: {pids:?}");
}

#[test]
fn a_taken_port_is_reported_as_such() {
    let a = TempNode::start().unwrap();
    let b = TempNode::start().unwrap();
    b.stop(StopMode::Fast).unwrap();
    let cfg = NodeConfig {
        port: a.port(),
        ..b.config().clone()
    };
    let clash = PgNode::open(b.binaries(), cfg).unwrap();
    match clash.start() {
        Err(PgError::PortInUse { port, .. }) => assert_eq!(port, a.port()),
        other => panic!("expected PortInUse, got {other:?}"),
    }
    assert!(!clash.is_running());
}

#[test]
fn init_creates_a_cluster_once_and_open_reuses_it() {
    let bins = PgBinaries::locate().unwrap();
    let dir = tempfile::tempdir().unwrap();
    dash_pg::give_to_server_user(dir.path()).unwrap();
    let cfg = NodeConfig::new(
        dir.path().join("primary"),
        dash_pg::free_port(),
        "s3cret:/@",
    );
    let node = PgNode::init(&bins, cfg.clone()).unwrap();
    /// Stops the node even if an assertion below fails.
    struct Stop(PgNode);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = self.0.stop(StopMode::Immediate);
        }
    }
    let node = Stop(node);
    assert!(matches!(
        PgNode::init(&bins, cfg.clone()),
        Err(PgError::AlreadyInitialized(_))
    ));
    node.0.start().unwrap();
    assert_eq!(
        node.0
            .psql("postgres", "SHOW data_checksums")
            .unwrap()
            .trim(),
        "on"
    );
    assert_eq!(
        node.0
            .psql("postgres", "SHOW wal_retrieve_retry_interval")
            .unwrap()
            .trim(),
        "10ms"
    );
    node.0.stop(StopMode::Fast).unwrap();

    let reopened = Stop(PgNode::open(&bins, cfg).unwrap());
    reopened.0.start().unwrap();
    assert_eq!(reopened.0.psql("postgres", "SELECT 1").unwrap().trim(), "1");
    let empty = NodeConfig::new(dir.path().join("nothing"), 1, "x");
    assert!(matches!(
        PgNode::open(&bins, empty),
        Err(PgError::NotInitialized(_))
    ));
}

#[test]
fn missing_binaries_say_where_we_looked_and_what_to_install() {
    let err = PgBinaries::search(Some("/nonexistent/dash-bogus".into())).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("DASH_PG_BINDIR=/nonexistent/dash-bogus"),
        "{msg}"
    );
    assert!(
        msg.contains("install the PostgreSQL server package, e.g. `apt-get install postgresql`"),
        "{msg}"
    );

    let all = PgError::BinariesNotFound {
        searched: vec!["PATH (no `postgres`)".into()],
    }
    .to_string();
    assert!(all.contains("searched: PATH (no `postgres`)"), "{all}");
    assert!(PgBinaries::locate().unwrap().version >= 13);
}
