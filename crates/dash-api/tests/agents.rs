//! Agents through the REST API: spawn with defaults, read, list and filter,
//! the swarm's limits, metadata, and the events each call records.

mod common;

use common::{assert_error, TestApp};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_read_list_and_filter_agents() {
    let app = TestApp::spawn().await;
    let s = app
        .swarm(json!({"name": "s", "strategy": "parallel"}))
        .await;
    let sid = s["id"].as_str().unwrap();

    // Spawn with defaults.
    let a = app
        .agent(json!({"swarm_id": sid, "task": "summarize"}))
        .await;
    let id = a["id"].as_str().unwrap().to_string();
    assert_eq!(a["status"], "pending");
    assert_eq!(a["swarm_id"], sid);
    assert_eq!(a["retry_count"], 0);
    assert_eq!(a["max_retries"], 3);
    assert_eq!(a["cost"], 0.0);
    assert_eq!(a["progress"], 0.0);
    assert_eq!(a["metadata"], json!({}));
    assert!(a["last_error"].is_null());
    assert!(a["spawned_at"].is_string());
    assert!(a["started_at"].is_null() && a["completed_at"].is_null());

    // Spawn with every field, no swarm.
    let b = app
        .agent(json!({"task": "solo", "model": "m1", "max_retries": 0,
                      "metadata": {"owner": "ops", "tags": ["a", "b"], "n": 1}}))
        .await;
    assert!(b["swarm_id"].is_null());
    assert_eq!(b["model"], "m1");
    assert_eq!(b["max_retries"], 0);
    assert_eq!(
        b["metadata"],
        json!({"owner": "ops", "tags": ["a", "b"], "n": 1})
    );

    // Read back: the same object.
    let (st, got) = app.get(&format!("/agents/{id}")).await;
    assert_eq!((st, &got), (200, &a));
    let (st, e) = app
        .get("/agents/0190a0a0-0000-7000-8000-000000000000")
        .await;
    assert_error(st, &e, 404, "not_found");

    // Start one so the status filter has something to tell apart.
    let (st, r) = app.act(&format!("/agents/{id}/start")).await;
    assert_eq!((st, r["status"].as_str()), (200, Some("running")), "{r}");
    assert!(r["started_at"].is_string());

    let ids = |v: &serde_json::Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].as_str().unwrap().to_string())
            .collect()
    };
    let (st, all) = app.get("/agents").await;
    assert_eq!(st, 200);
    assert_eq!(
        ids(&all),
        vec![id.clone(), b["id"].as_str().unwrap().to_string()]
    );
    let (_, running) = app.get("/agents?status=running").await;
    assert_eq!(ids(&running), vec![id.clone()]);
    let (_, pending) = app.get("/agents?status=pending").await;
    assert_eq!(ids(&pending), vec![b["id"].as_str().unwrap().to_string()]);
    let (_, of_swarm) = app.get(&format!("/agents?swarm_id={sid}")).await;
    assert_eq!(ids(&of_swarm), vec![id.clone()]);
    let (_, both) = app
        .get(&format!("/agents?swarm_id={sid}&status=pending"))
        .await;
    assert!(ids(&both).is_empty());
    let (st, e) = app.get("/agents?status=zombie").await;
    assert_error(st, &e, 400, "invalid_query");
    let (st, e) = app.get("/agents?swarm_id=not-a-uuid").await;
    assert_error(st, &e, 400, "invalid_query");

    let kinds = app.event_kinds().await;
    assert_eq!(
        kinds.iter().filter(|k| *k == "agent.spawned").count(),
        2,
        "{kinds:?}"
    );
    assert!(kinds.contains(&"agent.started".to_string()), "{kinds:?}");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swarm_bounds_where_and_how_many_agents_spawn() {
    let app = TestApp::spawn().await;
    let s = app
        .swarm(json!({"name": "small", "strategy": "tree", "config": {"max_agents": 2}}))
        .await;
    let sid = s["id"].as_str().unwrap();

    // Unknown swarm: 404, nothing stored.
    let (st, e) = app
        .post(
            "/agents",
            json!({"swarm_id": "0190a0a0-0000-7000-8000-000000000000", "task": "t"}),
        )
        .await;
    assert_error(st, &e, 404, "not_found");
    assert_eq!(app.count("agents").await, 0);

    // max_agents caps live agents; a finished one frees its place.
    let first = app.agent(json!({"swarm_id": sid, "task": "1"})).await;
    app.agent(json!({"swarm_id": sid, "task": "2"})).await;
    let (st, e) = app
        .post("/agents", json!({"swarm_id": sid, "task": "3"}))
        .await;
    let msg = assert_error(st, &e, 409, "conflict");
    assert!(msg.contains("max_agents"), "{msg}");
    assert_eq!(app.count("agents").await, 2);
    let (st, _) = app
        .act(&format!("/agents/{}/kill", first["id"].as_str().unwrap()))
        .await;
    assert_eq!(st, 200);
    app.agent(json!({"swarm_id": sid, "task": "3"})).await;

    // A paused swarm still takes agents (they wait); a finished one does not.
    let (st, _) = app.act(&format!("/swarms/{sid}/pause")).await;
    assert_eq!(st, 200);
    let (st, e) = app
        .post("/agents", json!({"swarm_id": sid, "task": "4"}))
        .await;
    // Still capped by max_agents while paused.
    assert_error(st, &e, 409, "conflict");
    let other = app
        .swarm(json!({"name": "done", "strategy": "parallel"}))
        .await;
    let oid = other["id"].as_str().unwrap();
    let (st, _) = app.act(&format!("/swarms/{oid}/complete")).await;
    assert_eq!(st, 200);
    let (st, e) = app
        .post("/agents", json!({"swarm_id": oid, "task": "late"}))
        .await;
    let msg = assert_error(st, &e, 409, "conflict");
    assert!(msg.contains("completed"), "{msg}");
    assert_eq!(app.count("agents").await, 3);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_spawns_never_exceed_max_agents() {
    let app = TestApp::spawn().await;
    let s = app
        .swarm(json!({"name": "capped", "strategy": "parallel", "config": {"max_agents": 3}}))
        .await;
    let sid = s["id"].as_str().unwrap().to_string();
    let calls = (0..16).map(|i| {
        let app = &app;
        let sid = sid.clone();
        async move {
            app.post("/agents", json!({"swarm_id": sid, "task": format!("t{i}")}))
                .await
                .0
        }
    });
    let statuses = futures::future::join_all(calls).await;
    let created = statuses.iter().filter(|s| **s == 201).count();
    let refused = statuses.iter().filter(|s| **s == 409).count();
    assert_eq!((created, refused), (3, 13), "{statuses:?}");
    assert_eq!(app.count("agents").await, 3);
    app.shutdown().await;
}
