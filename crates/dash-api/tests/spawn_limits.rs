//! Agent-storm protection and budget orders at the API: spawns past
//! DASH_SPAWN_RATE answer 429 with Retry-After, and a progress report from
//! an agent whose swarm ran out of budget is recorded and answered `stop`.

use dash_testkit::TestApp;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawns_past_the_rate_are_refused_with_retry_after() {
    let app = TestApp::spawn_with(|s| {
        s.spawn_rate = 0.5;
        s.spawn_burst = 2;
    })
    .await;
    let body = || json!({"task": "t"});
    for _ in 0..2 {
        let (st, _, b) = app.post_with("/agents", body(), &[]).await;
        assert_eq!(st, 201, "{b}");
    }
    let (st, headers, b) = app.post_with("/agents", body(), &[]).await;
    assert_eq!(st, 429, "{b}");
    assert_eq!(b["error"]["code"], "rate_limited", "{b}");
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    assert_eq!(
        app.count("agents").await,
        2,
        "a refused spawn created nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_past_the_budget_is_recorded_and_told_to_stop() {
    let app = TestApp::spawn().await;
    let s = app
        .swarm(json!({"name": "s", "strategy": "parallel", "budget": {"allocated": 1.0}}))
        .await;
    let a = app.agent(json!({"swarm_id": s["id"], "task": "t"})).await;
    let id = a["id"].as_str().unwrap();
    let (st, _) = app.act(&format!("/agents/{id}/start")).await;
    assert_eq!(st, 200);
    let report = |cost: f64| json!({"progress": 0.5, "cost": cost});
    let (st, b) = app
        .post(&format!("/agents/{id}/progress"), report(0.4))
        .await;
    assert_eq!(
        (st, b["directive"].as_str()),
        (200, Some("continue")),
        "{b}"
    );
    assert_eq!(b["id"], id, "the agent is in the answer: {b}");
    let (st, b) = app
        .post(&format!("/agents/{id}/progress"), report(0.9))
        .await;
    assert_eq!((st, b["directive"].as_str()), (200, Some("stop")), "{b}");
    assert!(b["reason"].as_str().unwrap().contains("budget"), "{b}");
    let (_, sw) = app
        .get(&format!("/swarms/{}", s["id"].as_str().unwrap()))
        .await;
    assert_eq!(sw["status"], "paused", "{sw}");
    assert!(
        (sw["budget"]["consumed"].as_f64().unwrap() - 1.3).abs() < 1e-9,
        "recorded: {sw}"
    );
}
