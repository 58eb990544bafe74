//! The guarded restore against the real API: refused while a writer is
//! running, done with --stop-writes (maintenance mode on, writes refused,
//! reads served, then lifted), and the data is the dump's afterwards.

mod runbook_common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dash_runbook::admin;
use dash_runbook::backup::{backup, resolve_dump, BackupOptions};
use dash_runbook::recovery_check;
use dash_runbook::restore::{restore, RestoreOptions};
use dash_runbook::RunbookError;
use runbook_common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_is_refused_under_writers_and_done_with_stop_writes() {
    let node = start_node().await;
    let db = node.fresh_database().unwrap();
    let app = TestApi::ready(db_settings(&[&node], &db)).await;
    let t = target(&[&node], &db, endpoint(&app));
    for i in 0..5 {
        assert_eq!(create_swarm(&app, &format!("before-{i}")).await, 201);
    }
    let dir = tempfile::tempdir().unwrap();
    backup(
        &t,
        &BackupOptions {
            dir: dir.path().to_path_buf(),
            keep: None,
        },
    )
    .await
    .unwrap();
    let dump = resolve_dump(dir.path(), None).unwrap();

    // An active writer through the API.
    let stop = Arc::new(AtomicBool::new(false));
    let statuses = Arc::new(Mutex::new(Vec::new()));
    let writer = {
        let (stop, statuses) = (stop.clone(), statuses.clone());
        let http = app.client.clone();
        let base = app.base.clone();
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                let r = http
                    .post(format!("{base}/api/v1/swarms"))
                    .bearer_auth(TOKEN)
                    .json(&serde_json::json!({ "name": format!("after-{i}"), "strategy": "parallel" }))
                    .send()
                    .await;
                if let Ok(r) = r {
                    let status = r.status().as_u16();
                    let body: serde_json::Value = r.json().await.unwrap_or_default();
                    let code = body
                        .pointer("/error/code")
                        .and_then(|c| c.as_str())
                        .unwrap_or("")
                        .to_string();
                    statuses.lock().unwrap().push((status, code));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    let opts = RestoreOptions {
        file: dump.clone(),
        stop_writes: false,
        yes: true,
    };
    let e = restore(&t, &opts).await.unwrap_err();
    assert!(matches!(e, RunbookError::Refused(_)), "{e}");
    assert!(e.to_string().contains("--stop-writes"), "{e}");

    // Without a terminal and without --yes it refuses before touching anything.
    let opts = RestoreOptions {
        file: dump.clone(),
        stop_writes: true,
        yes: false,
    };
    let e = restore(&t, &opts).await.unwrap_err();
    assert!(matches!(e, RunbookError::NeedsYes { .. }), "{e}");
    let (_, m) = app.get_path("/health").await;
    assert!(
        m["maintenance"].is_null(),
        "maintenance mode was not touched: {m}"
    );

    let opts = RestoreOptions {
        file: dump.clone(),
        stop_writes: true,
        yes: true,
    };
    let r = restore(&t, &opts).await.unwrap();
    stop.store(true, Ordering::SeqCst);
    writer.await.unwrap();
    assert!(r.ok, "{}", r.render());
    assert!(r.stopped_writes);
    assert_eq!(r.maintenance_lifted, Some(true));
    let swarms = r
        .tables
        .iter()
        .find(|c| c.table == "public.swarms")
        .unwrap();
    assert_eq!((swarms.expected, swarms.found), (Some(5), Some(5)));
    let statuses = statuses.lock().unwrap().clone();
    assert!(
        statuses.iter().any(|(s, _)| *s == 201),
        "the writer wrote before"
    );
    assert!(
        statuses
            .iter()
            .all(|(s, code)| *s == 201 || (*s == 503 && code == "maintenance")),
        "writes are either accepted or refused with 503 maintenance: {statuses:?}"
    );

    // Maintenance is lifted and the API writes and reads again on the restored data.
    let (_, health) = app.get_path("/health").await;
    assert!(health["maintenance"].is_null(), "{health}");
    assert_eq!(create_swarm(&app, "after-restore").await, 201);
    let v = recovery_check::verify(&endpoint(&app)).await;
    assert!(v.ok, "{}", v.render());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_refuses_writes_keeps_reads_and_pool_resizes_live() {
    let node = start_node().await;
    let db = node.fresh_database().unwrap();
    let app = TestApi::ready(db_settings(&[&node], &db)).await;
    let t = target(&[&node], &db, endpoint(&app));

    let m = admin::maintenance(&t, Some(true), "test", false)
        .await
        .unwrap_err();
    assert!(matches!(m, RunbookError::NeedsYes { .. }));
    let m = admin::maintenance(&t, Some(true), "test", true)
        .await
        .unwrap();
    assert!(m.enabled && m.changed);
    assert_eq!(create_swarm(&app, "refused").await, 503);
    assert_eq!(app.get("/swarms").await.0, 200, "reads keep working");
    let v = recovery_check::verify(&endpoint(&app)).await;
    assert!(
        !v.ok && v.exit_code() == 3,
        "the smoke test fails in maintenance: {}",
        v.render()
    );
    assert!(v.render().contains("maintenance"));
    let m = admin::maintenance(&t, Some(false), "", true).await.unwrap();
    assert!(!m.enabled);
    assert_eq!(create_swarm(&app, "accepted").await, 201);

    let shown = admin::pool(&t, None, false).await.unwrap();
    assert_eq!(shown.previous_max_size, Some(20));
    assert!(matches!(
        admin::pool(&t, Some(7), false).await,
        Err(RunbookError::NeedsYes { .. })
    ));
    let r = admin::pool(&t, Some(7), true).await.unwrap();
    assert!(r.confirmed(), "{}", r.render());
    assert_eq!(
        (r.previous_max_size, r.metric_max_size),
        (Some(20), Some(7.0))
    );

    // No token: a usage error that names the fix.
    let mut no_token = endpoint(&app);
    no_token.token = None;
    let t = target(&[&node], &db, no_token);
    let e = admin::pool(&t, Some(8), true).await.unwrap_err();
    assert!(e.is_usage() && e.to_string().contains("--token"), "{e}");

    let v = recovery_check::verify(&endpoint(&app)).await;
    assert!(v.ok, "{}", v.render());
    let dead = recovery_check::verify(&no_api()).await;
    assert!(
        !dead.ok && dead.checks.iter().all(|c| !c.ok),
        "{}",
        dead.render()
    );
}
