//! End-to-end smoke: the app starts against real PostgreSQL, migrates,
//! reports healthy, and serves a create/read cycle.

mod common;

use common::TestApp;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_health_and_a_create_read_cycle() {
    let app = TestApp::spawn().await;
    let (s, body) = app.get("/../../health").await;
    assert_eq!(s, 200, "{body}");
    let (s, swarm) = app
        .post(
            "/swarms",
            json!({"name": "s1", "strategy": "parallel", "budget": {"allocated": 10.0}}),
        )
        .await;
    assert_eq!(s, 201, "{swarm}");
    let id = swarm["id"].as_str().unwrap();
    let (s, agent) = app
        .post("/agents", json!({"swarm_id": id, "task": "summarize"}))
        .await;
    assert_eq!(s, 201, "{agent}");
    let (s, got) = app
        .get(&format!("/agents/{}", agent["id"].as_str().unwrap()))
        .await;
    assert_eq!(s, 200);
    assert_eq!(got["status"], "pending");
    let m = app.metrics().await;
    assert!(m.contains("pg_pool_max_size 20"), "{m}");
    app.shutdown().await;
}
