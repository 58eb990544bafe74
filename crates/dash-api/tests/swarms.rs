//! Swarms through the REST API: create with defaults, read, list and
//! filter, update, pause and resume, their agents, budget, delete.

mod common;

use common::{assert_error, items_field, TestApp};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_read_update_and_delete_a_swarm() {
    let app = TestApp::spawn().await;

    // Create: defaults fill every field the caller left out.
    let s = app
        .swarm(json!({"name": "research", "strategy": "map-reduce", "task": "read papers"}))
        .await;
    let id = s["id"].as_str().unwrap().to_string();
    assert_eq!(s["name"], "research");
    assert_eq!(s["task"], "read papers");
    assert_eq!(s["strategy"], "map-reduce");
    assert_eq!(s["status"], "active");
    assert_eq!(s["config"]["max_agents"], 10);
    assert_eq!(s["budget"]["allocated"], 0.0);
    assert_eq!(s["budget"]["consumed"], 0.0);
    assert_eq!(s["budget"]["currency"], "USD");
    assert_eq!(s["budget"]["warning_threshold"], 0.75);
    assert_eq!(s["budget"]["critical_threshold"], 0.9);
    assert!(s["created_at"].is_string() && s["updated_at"].is_string());

    // Every field given explicitly is kept.
    let full = app
        .swarm(json!({"name": "full", "strategy": "tree",
            "config": {"model": "claude-x", "max_agents": 3},
            "budget": {"allocated": 12.5, "currency": "EUR", "warning_threshold": 0.5, "critical_threshold": 0.8}}))
        .await;
    assert_eq!(
        full["config"],
        json!({"model": "claude-x", "max_agents": 3})
    );
    assert_eq!(full["budget"]["allocated"], 12.5);
    assert_eq!(full["budget"]["currency"], "EUR");
    assert_eq!(full["budget"]["warning_threshold"], 0.5);
    assert_eq!(full["budget"]["remaining"], 12.5);

    // Read back: the same object, under /api/v1 and under /api.
    let (st, got) = app.get(&format!("/swarms/{id}")).await;
    assert_eq!(st, 200);
    assert_eq!(got, s);
    let r = app
        .client
        .get(format!("{}/api/swarms/{id}", app.base))
        .send()
        .await
        .unwrap();
    let (st, legacy) = common::split(r).await;
    assert_eq!((st, &legacy), (200, &s));

    // PATCH changes only what it names.
    let (st, up) = app
        .patch(
            &format!("/swarms/{id}"),
            json!({"name": "research-2", "config": {"max_agents": 4}}),
        )
        .await;
    assert_eq!(st, 200, "{up}");
    assert_eq!(up["name"], "research-2");
    assert_eq!(up["task"], "read papers");
    assert_eq!(up["strategy"], "map-reduce");
    assert_eq!(up["config"]["max_agents"], 4);
    let (_, got) = app.get(&format!("/swarms/{id}")).await;
    assert_eq!(got["name"], "research-2");
    assert_eq!(got["config"]["max_agents"], 4);

    // Budget: read and change it through its own resource.
    let (st, b) = app.get(&format!("/swarms/{id}/budget")).await;
    assert_eq!(st, 200);
    assert_eq!(b["allocated"], 0.0);
    let (st, b) = app
        .patch(
            &format!("/swarms/{id}/budget"),
            json!({"allocated": 100.0, "warning_threshold": 0.6}),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["allocated"], 100.0);
    assert_eq!(b["warning_threshold"], 0.6);
    assert_eq!(b["critical_threshold"], 0.9);
    assert_eq!(b["remaining"], 100.0);
    let (_, got) = app.get(&format!("/swarms/{id}")).await;
    assert_eq!(got["budget"]["allocated"], 100.0);
    // Thresholds that contradict each other are refused, and nothing changes.
    let (st, e) = app
        .patch(
            &format!("/swarms/{id}/budget"),
            json!({"warning_threshold": 0.95}),
        )
        .await;
    assert_error(st, &e, 422, "validation_failed");
    let (_, b) = app.get(&format!("/swarms/{id}/budget")).await;
    assert_eq!(b["warning_threshold"], 0.6);

    // Delete: 204, then it is gone (404 in the API's shape), and so is its row.
    let (st, body) = app.delete(&format!("/swarms/{id}")).await;
    assert_eq!(st, 204, "{body}");
    let (st, e) = app.get(&format!("/swarms/{id}")).await;
    let msg = assert_error(st, &e, 404, "not_found");
    assert!(msg.contains(&id), "{msg}");
    let (st, e) = app.delete(&format!("/swarms/{id}")).await;
    assert_error(st, &e, 404, "not_found");
    assert_eq!(app.count("swarms").await, 1);

    // Each change left an event.
    let kinds = app.event_kinds().await;
    for k in [
        "swarm.created",
        "swarm.updated",
        "budget.updated",
        "swarm.deleted",
    ] {
        assert!(kinds.iter().any(|x| x == k), "{k} missing from {kinds:?}");
    }
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_filter_lifecycle_and_agents_of_a_swarm() {
    let app = TestApp::spawn().await;
    let a = app
        .swarm(json!({"name": "a", "strategy": "parallel", "config": {"model": "m-a"}}))
        .await;
    let b = app
        .swarm(json!({"name": "b", "strategy": "pipeline"}))
        .await;
    let (aid, bid) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());

    // Pause and resume.
    let (st, p) = app.act(&format!("/swarms/{bid}/pause")).await;
    assert_eq!(st, 200, "{p}");
    assert_eq!(p["status"], "paused");
    let (_, list) = app.get("/swarms?status=paused").await;
    let ids = items_field(&list, "id");
    assert_eq!(ids, vec![json!(bid)]);
    let (_, list) = app.get("/swarms?status=active").await;
    let ids = items_field(&list, "id");
    assert_eq!(ids, vec![json!(aid)]);
    let (_, list) = app.get("/swarms").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    assert!(list["next_cursor"].is_null());
    let (st, e) = app.get("/swarms?status=sleeping").await;
    let msg = assert_error(st, &e, 400, "invalid_query");
    assert!(msg.contains("sleeping"), "{msg}");
    let (st, r) = app.act(&format!("/swarms/{bid}/resume")).await;
    assert_eq!((st, r["status"].as_str()), (200, Some("active")));

    // Agents of a swarm: only its own, and they inherit its model.
    let x = app.agent(json!({"swarm_id": aid, "task": "x"})).await;
    assert_eq!(x["model"], "m-a");
    let y = app
        .agent(json!({"swarm_id": aid, "task": "y", "model": "own"}))
        .await;
    assert_eq!(y["model"], "own");
    app.agent(json!({"swarm_id": bid, "task": "z"})).await;
    app.agent(json!({"task": "loose"})).await;
    let (st, list) = app.get(&format!("/swarms/{aid}/agents")).await;
    assert_eq!(st, 200, "{list}");
    let tasks = items_field(&list, "task");
    assert_eq!(tasks, vec![json!("x"), json!("y")]);
    let (st, e) = app
        .get("/swarms/0190a0a0-0000-7000-8000-000000000000/agents")
        .await;
    assert_error(st, &e, 404, "not_found");

    // A swarm with live agents cannot be deleted; destroying it kills them.
    let (st, e) = app.delete(&format!("/swarms/{aid}")).await;
    let msg = assert_error(st, &e, 409, "conflict");
    assert!(msg.contains("live agent"), "{msg}");
    let (st, d) = app.act(&format!("/swarms/{aid}/destroy")).await;
    assert_eq!((st, d["status"].as_str()), (200, Some("destroyed")), "{d}");
    let (_, list) = app
        .get(&format!("/swarms/{aid}/agents?status=killed"))
        .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2, "{list}");
    // A destroyed swarm takes no new agents and no updates.
    let (st, e) = app
        .post("/agents", json!({"swarm_id": aid, "task": "late"}))
        .await;
    assert_error(st, &e, 409, "conflict");
    let (st, e) = app
        .patch(&format!("/swarms/{aid}"), json!({"name": "again"}))
        .await;
    assert_error(st, &e, 409, "conflict");
    // Once nothing is live, it can be deleted, and its agents go with it.
    let (st, _) = app.delete(&format!("/swarms/{aid}")).await;
    assert_eq!(st, 204);
    assert_eq!(app.count("agents").await, 2);

    // Completing a swarm is final.
    let (st, c) = app.act(&format!("/swarms/{bid}/complete")).await;
    assert_eq!((st, c["status"].as_str()), (200, Some("completed")));
    app.shutdown().await;
}
