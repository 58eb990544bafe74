//! `StoreError` classification with real driver errors from a real server:
//! read-only nodes, terminated backends, serialization failures, lock and
//! statement timeouts, and the client-side deadline; and that the pool hands
//! out a healthy connection after each.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use dash_store::pool::NoopObserver;
use dash_store::{Conn, Db, DbSettings, HostPort, StoreError};
use dash_testkit::TempNode;

async fn node_and_db() -> (TempNode, String) {
    let node = tokio::task::spawn_blocking(TempNode::start)
        .await
        .unwrap()
        .expect("start PostgreSQL");
    let db = node.fresh_database().expect("create database");
    (node, db)
}

fn store(settings: DbSettings) -> Db {
    Db::new(settings, Arc::new(NoopObserver))
}

async fn pid(c: &mut Conn) -> i32 {
    c.query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0)
}

async fn direct(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    client
}

/// Classifies the error of a real driver call.
async fn driver_error(client: &tokio_postgres::Client, sql: &str) -> StoreError {
    let e = client.batch_execute(sql).await.expect_err(sql);
    dash_store::error::classify(e)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_nodes_are_classified_and_never_used() {
    let (node, dbname) = node_and_db().await;
    let primary = direct(&node.url(&dbname)).await;
    primary
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL)")
        .await
        .unwrap();
    let standby = tokio::task::block_in_place(|| node.replica()).expect("start a standby");

    // A write on a standby: 25006, ReadOnly, retryable, poisons.
    let on_standby = direct(&standby.url(&dbname)).await;
    let e = driver_error(&on_standby, "INSERT INTO t VALUES (1, 1)").await;
    assert!(matches!(e, StoreError::ReadOnly(_)), "{e:?}");
    assert!(e.is_retryable() && e.poisons_connection() && e.is_unavailable());

    // The pool never writes to a standby: it finds the primary after it, and
    // a list of standbys alone leads to the server they stream from (the
    // runbook's DATABASE_HOST=postgres-replica patch).
    let hosts = |nodes: &[&TempNode]| {
        nodes
            .iter()
            .map(|n| HostPort {
                host: n.host().to_string(),
                port: n.port(),
            })
            .collect::<Vec<_>>()
    };
    let only_standby = store(DbSettings {
        hosts: hosts(&[&standby]),
        ..common::db_settings(&[&node], &dbname)
    });
    let mut c = only_standby.conn().await.expect("followed to its primary");
    let in_recovery: bool = c
        .query_one("SELECT pg_is_in_recovery()", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!in_recovery, "a standby was used as the primary");
    assert_eq!(only_standby.primary().unwrap().port, node.port());
    drop(c);
    let both = store(DbSettings {
        hosts: hosts(&[&standby, &node]),
        ..common::db_settings(&[&node], &dbname)
    });
    let mut c = both.conn().await.unwrap();
    c.execute("INSERT INTO t VALUES (1, 1)", &[]).await.unwrap();
    assert_eq!(both.primary().unwrap().port, node.port());

    // A session that turned read-only (a demoted node) is discarded, not recycled.
    let db = store(common::db_settings(&[&node], &dbname));
    let mut c = db.conn().await.unwrap();
    let first = pid(&mut c).await;
    c.batch_execute("SET default_transaction_read_only = on")
        .await
        .unwrap();
    let e = c
        .execute("INSERT INTO t VALUES (2, 2)", &[])
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::ReadOnly(_)), "{e:?}");
    drop(c);
    let mut c = db.conn().await.unwrap();
    assert_ne!(
        pid(&mut c).await,
        first,
        "the read-only connection came back"
    );
    c.execute("INSERT INTO t VALUES (2, 2)", &[]).await.unwrap();
    drop(c);

    // A database that only offers read-only sessions is not a primary either.
    primary
        .batch_execute(&format!(
            "ALTER DATABASE \"{dbname}\" SET default_transaction_read_only = on"
        ))
        .await
        .unwrap();
    let fresh = store(DbSettings {
        acquire_timeout: Duration::from_millis(300),
        ..common::db_settings(&[&node], &dbname)
    });
    let e = fresh
        .conn()
        .await
        .err()
        .expect("read-only sessions are refused");
    assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
    primary
        .batch_execute(&format!(
            "ALTER DATABASE \"{dbname}\" RESET default_transaction_read_only"
        ))
        .await
        .unwrap();
    let mut c = fresh.conn().await.unwrap();
    c.execute("INSERT INTO t VALUES (3, 3)", &[]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_connections_conflicts_and_timeouts() {
    let (node, dbname) = node_and_db().await;
    let admin = direct(&node.url(&dbname)).await;
    admin
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL); INSERT INTO t VALUES (1, 0)",
        )
        .await
        .unwrap();
    let db = store(common::db_settings(&[&node], &dbname));

    // A terminated backend: ConnectionLost, outcome unknown (not retryable), poisons.
    let mut c = db.conn().await.unwrap();
    let victim = pid(&mut c).await;
    admin
        .execute("SELECT pg_terminate_backend($1)", &[&victim])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let e = c.query_one("SELECT 1", &[]).await.unwrap_err();
    assert!(matches!(e, StoreError::ConnectionLost(_)), "{e:?}");
    assert!(!e.is_retryable() && e.poisons_connection() && e.is_unavailable());
    drop(c);
    let mut c = db.conn().await.unwrap();
    assert_ne!(pid(&mut c).await, victim);
    drop(c);

    // A serialization failure (40001): Conflict, retryable, the connection stays usable.
    let mut c = db.conn().await.unwrap();
    let same = pid(&mut c).await;
    {
        let mut tx = c.transaction().await.unwrap();
        tx.batch_execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            .await
            .unwrap();
        tx.query_one("SELECT v FROM t WHERE id = 1", &[])
            .await
            .unwrap();
        admin
            .execute("UPDATE t SET v = v + 1 WHERE id = 1", &[])
            .await
            .unwrap();
        let e = tx
            .execute("UPDATE t SET v = v + 10 WHERE id = 1", &[])
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::Conflict(_)), "{e:?}");
        assert!(e.is_retryable() && !e.poisons_connection() && !e.is_unavailable());
        let e = driver_error(
            &admin,
            "DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '40P01'; END $$",
        )
        .await;
        assert!(matches!(e, StoreError::Conflict(_)), "deadlock: {e:?}");
    }
    drop(c);
    let mut c = db.conn().await.unwrap();
    assert_eq!(
        pid(&mut c).await,
        same,
        "a conflict does not cost the connection"
    );
    let v: i32 = c
        .query_one("SELECT v FROM t WHERE id = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(v, 1, "the conflicting update was rolled back");
    drop(c);

    // A row lock held too long: refused as retryable, never an internal error.
    let short = store(DbSettings {
        statement_timeout: Duration::from_millis(300),
        ..common::db_settings(&[&node], &dbname)
    });
    let mut holder = direct(&node.url(&dbname)).await;
    let lock = holder.transaction().await.unwrap();
    lock.execute("SELECT * FROM t WHERE id = 1 FOR UPDATE", &[])
        .await
        .unwrap();
    let mut c = short.conn().await.unwrap();
    let same = pid(&mut c).await;
    // Dash sets lock_timeout = statement_timeout, so a lock wait ends as a statement timeout...
    let e = c
        .execute("UPDATE t SET v = 5 WHERE id = 1", &[])
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::StatementTimeout(_)), "{e:?}");
    // ...and, with a shorter lock_timeout, as a lock timeout (55P03).
    c.batch_execute("SET lock_timeout = '100ms'").await.unwrap();
    let e = c
        .execute("UPDATE t SET v = 5 WHERE id = 1", &[])
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Conflict(_)), "{e:?}");
    assert!(e.is_retryable() && !e.poisons_connection());
    c.batch_execute("RESET lock_timeout").await.unwrap();
    drop(lock);
    // A statement cancelled by the server's statement_timeout: retryable, the
    // connection is healthy and is kept.
    let e = c.query_one("SELECT pg_sleep(3)", &[]).await.unwrap_err();
    assert!(matches!(e, StoreError::StatementTimeout(_)), "{e:?}");
    assert!(e.is_retryable() && !e.poisons_connection() && e.is_unavailable());
    drop(c);
    let mut c = short.conn().await.unwrap();
    assert_eq!(
        pid(&mut c).await,
        same,
        "a statement timeout does not cost the connection"
    );
    drop(c);

    // The client-side deadline: Deadline, outcome unknown, poisons; the pool
    // then hands out a healthy connection.
    let hung = store(DbSettings {
        query_timeout: Duration::from_millis(300),
        ..common::db_settings(&[&node], &dbname)
    });
    let mut c = hung.conn().await.unwrap();
    let stuck = pid(&mut c).await;
    let started = Instant::now();
    let e = c.query_one("SELECT pg_sleep(3)", &[]).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(e, StoreError::Deadline(_)), "{e:?}");
    assert!(!e.is_retryable() && e.poisons_connection() && e.is_unavailable());
    drop(c);
    let mut c = hung.conn().await.unwrap();
    assert_ne!(pid(&mut c).await, stuck, "the hung connection came back");
    let one: i32 = c.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
}
