//! Hosts added to a running pool: a replica added to the cluster while the
//! API runs is tried like a listed host, so the pool still finds the
//! primary when only the added node is writable.

use std::sync::Arc;
use std::time::Duration;

use dash_store::pool::NoopObserver;
use dash_store::{Db, HostPort, StoreError};
use dash_testkit::TempNode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_added_while_running_is_where_the_pool_finds_the_primary() {
    let node = tokio::task::spawn_blocking(TempNode::start)
        .await
        .unwrap()
        .expect("start PostgreSQL");
    let dbname = node.fresh_database().expect("create database");
    let mut settings = dash_testkit::db_settings(&[&node], &dbname);
    let real = settings.hosts[0].clone();
    // Listed: only a port nobody listens on.
    let dead = HostPort {
        host: "127.0.0.1".into(),
        port: dash_pg::free_port(),
    };
    settings.hosts = vec![dead.clone()];
    settings.acquire_timeout = Duration::from_millis(800);
    let db = Db::new(settings, Arc::new(NoopObserver));

    let e = db
        .conn()
        .await
        .err()
        .expect("no primary among the listed hosts");
    assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");

    let added = db.add_hosts([real.clone(), dead.clone()]);
    assert_eq!(added, std::slice::from_ref(&real));
    assert!(db.add_hosts([real.clone()]).is_empty(), "added once");
    assert_eq!(db.hosts(), [dead, real.clone()]);

    let mut c = db.conn().await.expect("the added host is the primary");
    let one: i32 = c.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
    assert_eq!(db.primary(), Some(real));
    assert_eq!(
        db.settings().hosts.len(),
        1,
        "the configured list is unchanged"
    );
}
