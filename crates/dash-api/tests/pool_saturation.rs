//! A saturated pool is load, not an outage: `/ready`, `/health` and `pg_up`
//! keep saying the database is reachable, and a request that finds no free
//! connection answers 503 `pool_exhausted` with `Retry-After`, not
//! `database_unavailable`.

mod common;

use std::time::{Duration, Instant};

use common::{assert_error, metric, TestApp};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saturated_pool_stays_ready_and_answers_pool_exhausted() {
    let app = TestApp::spawn_with(|s| {
        s.database.pool_size = 2;
        s.database.acquire_timeout = Duration::from_millis(500);
        s.database.statement_timeout = Duration::from_secs(30);
        s.database.query_timeout = Duration::from_secs(30);
        s.request_timeout = Duration::from_secs(40);
    })
    .await;
    let s = app.swarm(json!({"name": "held", "strategy": "tree"})).await;
    let sid = s["id"].as_str().unwrap().to_string();

    // Hold the swarm's row from outside, so each update of it holds a pool
    // connection while it waits for the lock.
    let mut holder = app.pg().await;
    let tx = holder.transaction().await.unwrap();
    tx.execute(
        "SELECT 1 FROM swarms WHERE id = $1 FOR UPDATE",
        &[&uuid::Uuid::parse_str(&sid).unwrap()],
    )
    .await
    .unwrap();
    let mut blocked = Vec::new();
    for i in 0..2 {
        let r = app
            .req(reqwest::Method::PATCH, &format!("/swarms/{sid}"))
            .json(&json!({"task": format!("t{i}")}));
        blocked.push(tokio::spawn(r.send()));
    }
    let waiting = app.pg().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let n: i64 = waiting
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'
                 AND application_name = 'dash-api'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if n == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the updates never blocked");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Every pool connection is busy: readiness and health still say the
    // database is there, quickly.
    for path in ["/ready", "/health"] {
        let started = Instant::now();
        let (st, b) = app.get_path(path).await;
        assert_eq!(st, 200, "{path} under a saturated pool: {b}");
        assert!(
            started.elapsed() < Duration::from_millis(450),
            "{path} waited on the pool"
        );
    }
    let r = app
        .req(reqwest::Method::GET, "/swarms")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["retry-after"], "1");
    let (st, b) = common::split(r).await;
    assert_error(st, &b, 503, "pool_exhausted");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(metric(&app.metrics().await, "pg_up"), Some(1.0));

    tx.rollback().await.unwrap();
    drop(holder);
    for b in blocked {
        let r = b.await.unwrap().unwrap();
        assert_eq!(r.status(), 200);
    }
    assert_eq!(app.get("/swarms").await.0, 200);
    app.shutdown().await;
}
