//! Graceful shutdown: in-flight requests are drained (answered, not cut),
//! the drain is bounded by `shutdown_timeout`, and live event streams end.

mod common;

use std::time::{Duration, Instant};

use common::TestApp;
use futures::StreamExt;
use serde_json::json;

/// Holds a row lock on a swarm from outside the API, so a PATCH of it waits.
async fn lock_swarm(app: &TestApp, id: &str) -> tokio_postgres::Client {
    let pg = app.pg().await;
    pg.batch_execute(&format!(
        "BEGIN; SELECT 1 FROM swarms WHERE id = '{id}' FOR UPDATE"
    ))
    .await
    .unwrap();
    pg
}

/// Waits (bounded) until a statement of the API is waiting on a lock.
async fn wait_until_blocked(pg: &tokio_postgres::Client) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n: i64 = pg
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND application_name = 'dash-api'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if n > 0 {
            return;
        }
        assert!(Instant::now() < deadline, "the request never blocked");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_in_flight_requests_and_ends_streams() {
    let mut app = TestApp::spawn_with(|s| s.shutdown_timeout = Duration::from_secs(8)).await;
    let s = app.swarm(json!({"name": "slow", "strategy": "tree"})).await;
    let sid = s["id"].as_str().unwrap().to_string();

    // A live stream, and a request that is slow because a row is locked.
    let stream = app
        .client
        .get(app.url("/events/stream"))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let mut stream = stream.bytes_stream();
    let holder = lock_swarm(&app, &sid).await;
    let slow = {
        let req = app
            .req(reqwest::Method::PATCH, &format!("/swarms/{sid}"))
            .json(&json!({"task": "finished during shutdown"}));
        tokio::spawn(async move { req.send().await })
    };
    wait_until_blocked(&holder).await;

    let started = Instant::now();
    let server = app.begin_shutdown();
    // The stream ends promptly.
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(chunk) = stream.next().await {
            if chunk.is_err() {
                break;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the event stream did not end on shutdown");
    // New connections are refused while draining (bounded wait for the
    // listener to close).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let fresh = reqwest::Client::new()
            .get(format!("{}/livez", app.base))
            .timeout(Duration::from_secs(2))
            .send()
            .await;
        if fresh.is_err() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "new connections were still accepted while draining"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The in-flight request is still being served: release its lock and it completes.
    holder.batch_execute("ROLLBACK").await.unwrap();
    let r = slow
        .await
        .unwrap()
        .expect("the in-flight request was answered");
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["task"], "finished during shutdown");
    tokio::time::timeout(Duration::from_secs(8), server)
        .await
        .expect("the server stops once drained")
        .unwrap()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(8));
    // It was really written.
    let task: String = holder
        .query_one("SELECT task FROM swarms WHERE id = $1::text::uuid", &[&sid])
        .await
        .unwrap()
        .get(0);
    assert_eq!(task, "finished during shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drain_is_bounded_by_the_shutdown_timeout() {
    let mut app = TestApp::spawn_with(|s| {
        s.shutdown_timeout = Duration::from_secs(1);
        s.database.statement_timeout = Duration::from_secs(30);
        s.database.query_timeout = Duration::from_secs(30);
    })
    .await;
    let s = app
        .swarm(json!({"name": "stuck", "strategy": "tree"}))
        .await;
    let sid = s["id"].as_str().unwrap().to_string();
    let holder = lock_swarm(&app, &sid).await;
    let stuck = {
        let req = app
            .req(reqwest::Method::PATCH, &format!("/swarms/{sid}"))
            .json(&json!({"task": "never"}));
        tokio::spawn(async move { req.send().await })
    };
    wait_until_blocked(&holder).await;
    let started = Instant::now();
    let server = app.begin_shutdown();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the server stops even though a request never finishes")
        .unwrap()
        .unwrap();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "it did not wait for the drain: {took:?}"
    );
    assert!(
        took < Duration::from_secs(6),
        "the drain was not bounded: {took:?}"
    );
    holder.batch_execute("ROLLBACK").await.unwrap();
    drop(stuck);
}
