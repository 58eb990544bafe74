//! `dashctl db maintenance` and `dashctl db pool` against two real API
//! processes on one database: the change is waited for on every live
//! instance and each is reported; an instance that does not follow fails
//! the command; stale ones are not waited for; `ensure_writes_stopped`
//! names any instance still accepting writes.

mod runbook_common;

use std::time::Duration;

use dash_runbook::admin::{self, ensure_writes_stopped};
use dash_runbook::{exit, RunbookError};
use dash_testkit::TestApi;
use runbook_common::*;

const FAKE_ID: &str = "00000000-0000-4000-8000-00000000f00d";

/// Reports a made-up instance every 200 ms that never follows anything
/// (it accepts writes and keeps a pool of 20), as a process too old or too
/// stuck to follow would.
async fn fake_live_instance(c: tokio_postgres::Client) -> tokio::task::JoinHandle<()> {
    report_fake(&c).await.expect("report the fake instance");
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let _ = report_fake(&c).await;
        }
    })
}

async fn report_fake(c: &tokio_postgres::Client) -> Result<u64, tokio_postgres::Error> {
    c.execute(
        "INSERT INTO dash_control.instances (instance_id, host, pid, started_at,
                last_seen, maintenance_reason, pool_size, settings_version)
         VALUES ($1::text::uuid, 'fake-host', 4242, now(), now(), NULL, 20, 0)
         ON CONFLICT (instance_id) DO UPDATE SET last_seen = now()",
        &[&FAKE_ID],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_wait_for_every_live_instance_and_report_each() {
    let node = start_node().await;
    let db = node.fresh_database().unwrap();
    let a = TestApi::ready(dash_testkit::db_settings(&[&node], &db)).await;
    let b = TestApi::ready(dash_testkit::db_settings(&[&node], &db)).await;
    let t = target(&[&node], &db, endpoint(&a));
    let pg = client(&node, &db).await;
    // An instance that went away a while ago, in the middle of nothing.
    pg.batch_execute(
        "INSERT INTO dash_control.instances (instance_id, host, pid, started_at, last_seen,
                maintenance_reason, pool_size, settings_version)
         VALUES (gen_random_uuid(), 'stale-host', 1, now() - interval '1 hour',
                 now() - interval '30 seconds', NULL, 20, 0)",
    )
    .await
    .unwrap();

    let m = admin::maintenance(&t, Some(true), "restoring", true)
        .await
        .unwrap();
    let shown = m.render();
    assert!(m.changed && m.enabled, "{shown}");
    assert_eq!(m.cluster_wide, Some(true), "{shown}");
    assert!(m.followed.all, "{shown}");
    assert_eq!(m.exit_code(), exit::OK, "{shown}");
    assert_eq!(m.followed.view.live().count(), 2, "{shown}");
    assert!(m
        .followed
        .view
        .live()
        .all(|i| i.maintenance.as_deref() == Some("restoring")));
    assert!(
        shown.contains("stale-host") && shown.contains("gone (not waited for)"),
        "{shown}"
    );
    assert_eq!(
        create_swarm(&b, "refused").await,
        503,
        "the other process stopped writes"
    );

    let stopped = ensure_writes_stopped(&t, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(stopped.view.live().count(), 2);

    // A live instance that does not follow: writes are not confirmed stopped.
    let fake = fake_live_instance(client(&node, &db).await).await;
    let e = ensure_writes_stopped(&t, Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(matches!(e, RunbookError::Refused(_)), "{e}");
    assert!(
        e.to_string()
            .contains("still accepting writes: fake-host (pid 4242"),
        "{e}"
    );

    // Lifting: the fake one accepts writes, so it counts as following.
    let m = admin::maintenance(&t, Some(false), "", true).await.unwrap();
    assert!(
        m.followed.all && m.exit_code() == exit::OK,
        "{}",
        m.render()
    );
    assert_eq!(create_swarm(&b, "accepted").await, 201);

    // The pool: the fake one never follows, so the command says so and fails.
    let p = admin::pool(&t, Some(9), true).await.unwrap();
    let shown = p.render();
    assert!(!p.followed.all, "{shown}");
    assert_eq!(p.exit_code(), exit::CHECK_FAILED, "{shown}");
    assert!(
        shown.contains("NOT FOLLOWED") && shown.contains("fake-host (pid 4242)"),
        "{shown}"
    );
    assert!(
        p.followed
            .view
            .live()
            .filter(|i| i.host != "fake-host")
            .all(|i| i.pool_size == Some(9)),
        "{shown}"
    );
    fake.abort();
    b.shutdown().await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_are_not_confirmed_stopped_without_maintenance() {
    let node = start_node().await;
    let db = node.fresh_database().unwrap();
    let a = TestApi::ready(dash_testkit::db_settings(&[&node], &db)).await;
    let t = target(&[&node], &db, endpoint(&a));
    let e = ensure_writes_stopped(&t, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("not on in the cluster setting"),
        "{e}"
    );
    a.shutdown().await;
}
