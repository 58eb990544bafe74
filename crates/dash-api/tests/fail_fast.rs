//! Failing fast while the database is down: once the pool found every host
//! gone, each call answers 503 `database_unavailable` with `Retry-After` at
//! once (not after the acquire timeout, 3 s here), under concurrent load
//! too; a background probe lets calls through again soon after the
//! database returns.

use std::time::{Duration, Instant};

use dash_pg::StopMode;
use dash_testkit::TestApp;

/// One `GET /swarms`: its status, error code, Retry-After and how long it took.
async fn call(app: &TestApp) -> (u16, String, bool, Duration) {
    let t = Instant::now();
    let r = app
        .req(reqwest::Method::GET, "/swarms")
        .send()
        .await
        .unwrap();
    let st = r.status().as_u16();
    let retry = r.headers().contains_key("retry-after");
    let body: serde_json::Value = r.json().await.unwrap_or_default();
    let code = body["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    (st, code, retry, t.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_fail_at_once_while_every_host_is_down_and_recover_soon_after() {
    let app = TestApp::spawn().await;
    assert_eq!(call(&app).await.0, 200);
    tokio::task::block_in_place(|| app.node.stop(StopMode::Fast)).expect("stop PostgreSQL");
    // The first call finds every host gone.
    assert_eq!(call(&app).await.0, 503);

    // Then 200 calls, 16 at a time.
    let mut took = Vec::new();
    for _ in 0..25 {
        let batch = futures::future::join_all((0..8).map(|_| call(&app))).await;
        for (st, code, retry, t) in batch {
            assert_eq!(
                (st, code.as_str(), retry),
                (503, "database_unavailable", true)
            );
            took.push(t);
        }
    }
    took.sort();
    let p99 = took[took.len() * 99 / 100 - 1];
    let max = *took.last().unwrap();
    eprintln!(
        "200 calls while down: p50 {:?}, p99 {p99:?}, max {max:?}",
        took[took.len() / 2]
    );
    // Generous against a slow machine, far under the 3 s acquire timeout.
    assert!(max < Duration::from_secs(1), "a call waited {max:?}");

    tokio::task::block_in_place(|| app.node.start()).expect("start PostgreSQL again");
    let back = Instant::now();
    loop {
        if call(&app).await.0 == 200 {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(10),
            "no recovery within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!(
        "first success {:?} after the database was started",
        back.elapsed()
    );
}
