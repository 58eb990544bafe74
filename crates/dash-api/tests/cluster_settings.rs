//! Maintenance mode and the pool size are cluster-wide: two API processes on
//! one database, a change made through one is followed by the other; with
//! the database down it still applies on the process that took it.

mod common;

use std::time::{Duration, Instant};

use common::{TestApi, TestApp};
use dash_pg::StopMode;
use reqwest::Method;
use serde_json::{json, Value};

/// Generous bound for "within a second or so" on a busy machine.
const FOLLOW: Duration = Duration::from_secs(15);

async fn put(api: &TestApi, path: &str, body: Value, actor: Option<&str>) -> (u16, Value) {
    let mut rb = api.req(Method::PUT, path).json(&body);
    if let Some(a) = actor {
        rb = rb.header("x-dash-actor", a);
    }
    common::split(rb.send().await.expect("request")).await
}

async fn admin_get(api: &TestApi, path: &str) -> Value {
    let r = api.req(Method::GET, path).send().await.expect("request");
    let (st, b) = common::split(r).await;
    assert_eq!(st, 200, "{b}");
    b
}

/// Polls `check` until it holds or [`FOLLOW`] passes; the last value seen.
async fn eventually<T: std::fmt::Debug, F: std::future::Future<Output = T>>(
    what: &str,
    mut probe: impl FnMut() -> F,
    check: impl Fn(&T) -> bool,
) -> T {
    let deadline = Instant::now() + FOLLOW;
    loop {
        let v = probe().await;
        if check(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: still {v:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn create_swarm(api: &TestApi) -> (u16, Value) {
    api.post("/swarms", json!({"name": "s", "strategy": "tree"}))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_through_one_instance_stops_writes_on_the_other() {
    let a = TestApp::spawn().await;
    let b = TestApi::ready(a.db_settings()).await;
    assert_eq!(create_swarm(&b).await.0, 201);

    let (st, on) = put(
        &a,
        "/admin/maintenance",
        json!({"enabled": true, "reason": "restoring a backup"}),
        Some("alice on laptop"),
    )
    .await;
    assert_eq!(st, 200, "{on}");
    assert_eq!(on["cluster_wide"], true, "{on}");
    assert_eq!(on["cluster"]["enabled"], true, "{on}");

    // The other process refuses writes soon after, without being called.
    let (st, e) = eventually("B refuses writes", || create_swarm(&b), |r| r.0 != 201).await;
    assert_eq!(st, 503, "{e}");
    assert_eq!(e["error"]["code"], "maintenance");
    assert!(e["error"]["message"]
        .as_str()
        .unwrap()
        .contains("restoring a backup"));

    // Both report it; every live instance has applied it.
    let view = eventually(
        "both instances report maintenance",
        || admin_get(&b, "/admin/maintenance"),
        |v| v["all_applied"] == true && live(v).len() == 2,
    )
    .await;
    assert_eq!(view["enabled"], true);
    assert_eq!(view["cluster"]["reason"], "restoring a backup");
    let by = view["cluster"]["changed_by"].as_str().unwrap();
    assert!(by.starts_with("alice on laptop (token "), "{by}");
    assert!(
        !by.contains(common::TOKEN),
        "the token never reaches the log: {by}"
    );
    assert!(live(&view).iter().all(|i| i["maintenance"] == true));
    assert_eq!(live(&view).iter().filter(|i| i["this"] == true).count(), 1);

    // Lifted through the other one: the first accepts writes again.
    let (st, off) = put(&b, "/admin/maintenance", json!({"enabled": false}), None).await;
    assert_eq!((st, &off["cluster_wide"]), (200, &json!(true)), "{off}");
    eventually("A accepts writes", || create_swarm(&a), |r| r.0 == 201).await;

    // Both changes are in the log, in order, with who made them.
    let log = b_log(&a).await;
    let kinds: Vec<(&str, Option<&str>)> = log
        .iter()
        .map(|e| (e.setting.as_str(), e.new_value.as_deref()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("maintenance", Some("restoring a backup")),
            ("maintenance", None)
        ]
    );
    assert!(log[1].changed_by.starts_with("an API caller (token "));
    b.shutdown().await;
    a.shutdown().await;
}

fn live(view: &Value) -> Vec<Value> {
    view["instances"]
        .as_array()
        .expect("an instances array")
        .iter()
        .filter(|i| i["live"] == true)
        .cloned()
        .collect()
}

async fn b_log(app: &TestApp) -> Vec<dash_store::repo::control::AdminLogEntry> {
    let metrics = std::sync::Arc::new(dash_store::pool::NoopObserver);
    let db = dash_store::Db::new(app.db_settings(), metrics);
    let log = db.admin_log(None, 100).await.expect("read the admin log");
    db.close();
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_size_follows_on_the_other_instance() {
    let a = TestApp::spawn().await;
    let b = TestApi::ready(a.db_settings()).await;
    let (st, r) = put(&a, "/admin/pool", json!({"size": 7}), None).await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(
        (r["cluster_wide"].clone(), r["pool"]["max_size"].clone()),
        (json!(true), json!(7))
    );
    assert_eq!(r["cluster"]["pool_size"], 7);
    let view = eventually(
        "B's pool follows",
        || admin_get(&b, "/admin/pool"),
        |v| v["pool"]["max_size"] == 7 && v["all_applied"] == true && live(v).len() == 2,
    )
    .await;
    assert!(live(&view).iter().all(|i| i["pool_size"] == 7), "{view}");
    assert!(b.metrics().await.contains("pg_pool_max_size 7"));
    b.shutdown().await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_with_the_database_down_applies_here_and_says_so() {
    let app = TestApp::spawn_with(|s| {
        s.database.connect_timeout = Duration::from_secs(1);
        s.database.acquire_timeout = Duration::from_secs(1);
    })
    .await;
    tokio::task::block_in_place(|| app.node.stop(StopMode::Fast)).expect("stop PostgreSQL");

    let (st, r) = put(
        &app,
        "/admin/maintenance",
        json!({"enabled": true, "reason": "db down"}),
        None,
    )
    .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["cluster_wide"], false, "{r}");
    assert!(r["cluster"].is_null());
    assert!(r["note"]
        .as_str()
        .unwrap()
        .contains("this API process only"));
    let (st, e) = create_swarm(&app).await;
    assert_eq!(
        (st, &e["error"]["code"]),
        (503, &json!("maintenance")),
        "{e}"
    );
    let v = admin_get(&app, "/admin/maintenance").await;
    assert_eq!(
        (v["enabled"].clone(), v["cluster_wide"].clone()),
        (json!(true), json!(false))
    );

    // Once the database answers, the change becomes the cluster's.
    tokio::task::block_in_place(|| app.node.start()).expect("start PostgreSQL again");
    let v = eventually(
        "the change reaches the database",
        || admin_get(&app, "/admin/maintenance"),
        |v| v["cluster_wide"] == true && v["cluster"]["enabled"] == true,
    )
    .await;
    assert_eq!(v["cluster"]["reason"], "db down");
    assert_eq!(create_swarm(&app).await.0, 503, "still stopped");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_rewound_by_a_restore_are_put_back() {
    let app = TestApp::spawn().await;
    let (st, r) = put(&app, "/admin/maintenance", json!({"enabled": true}), None).await;
    assert_eq!(st, 200, "{r}");
    // What restoring an older dump of the settings row does.
    app.pg()
        .await
        .batch_execute("UPDATE dash_control.settings SET maintenance_reason = NULL, version = 0")
        .await
        .unwrap();
    let v = eventually(
        "the row is put back",
        || admin_get(&app, "/admin/maintenance"),
        |v| v["cluster"]["enabled"] == true,
    )
    .await;
    assert_eq!(v["cluster"]["version"], 1, "{v}");
    assert_eq!(create_swarm(&app).await.0, 503, "writes never resumed");
    assert!(b_log(&app).await.iter().any(|e| e.setting == "rewound"));
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_admin_input_is_refused_or_bounded() {
    let app = TestApp::spawn().await;
    for reason in ["x".repeat(501), "line\nbreak".into(), "nul\u{0}".into()] {
        let (st, e) = put(
            &app,
            "/admin/maintenance",
            json!({"enabled": true, "reason": reason}),
            None,
        )
        .await;
        assert_eq!(
            (st, &e["error"]["code"]),
            (422, &json!("validation_failed")),
            "{e}"
        );
        assert!(
            e["error"]["message"].as_str().unwrap().contains("reason"),
            "{e}"
        );
    }
    assert_eq!(create_swarm(&app).await.0, 201, "nothing was applied");
    let actor = "a".repeat(10_000);
    let (st, r) = put(
        &app,
        "/admin/maintenance",
        json!({"enabled": true, "reason": "r".repeat(500)}),
        Some(&actor),
    )
    .await;
    assert_eq!(st, 200, "{r}");
    assert!(r["cluster"]["changed_by"].as_str().unwrap().len() < 300);
    app.shutdown().await;
}
