//! Budgets: recorded cost reaches the swarm's consumed budget in the same
//! transaction; crossing the warning and critical thresholds writes events;
//! reaching 100 % pauses the swarm and its pending agents cannot start.

mod common;

use common::{assert_error, TestApp};
use serde_json::{json, Value};

async fn running_agent(app: &TestApp, swarm: &str) -> String {
    let a = app.agent(json!({"swarm_id": swarm, "task": "spend"})).await;
    let id = a["id"].as_str().unwrap().to_string();
    let (st, b) = app.act(&format!("/agents/{id}/start")).await;
    assert_eq!(st, 200, "{b}");
    id
}

async fn report(app: &TestApp, agent: &str, cost: f64) -> Value {
    let (st, b) = app
        .post(&format!("/agents/{agent}/progress"), json!({"cost": cost}))
        .await;
    assert_eq!(st, 200, "{b}");
    b
}

fn kinds_for(events: &[Value], swarm: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["swarm_id"] == swarm)
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thresholds_write_events_and_exhaustion_pauses_the_swarm() {
    let app = TestApp::spawn().await;
    let s = app
        .swarm(json!({"name": "b", "strategy": "parallel", "budget": {"allocated": 10.0}}))
        .await;
    let sid = s["id"].as_str().unwrap();
    let worker = running_agent(&app, sid).await;
    let waiting = app.agent(json!({"swarm_id": sid, "task": "later"})).await;
    let waiting = waiting["id"].as_str().unwrap();

    // Below the warning threshold: consumed moves, no alert.
    report(&app, &worker, 7.0).await;
    let (_, b) = app.get(&format!("/swarms/{sid}/budget")).await;
    assert_eq!(b["consumed"], 7.0);
    assert_eq!(b["remaining"], 3.0);
    assert_eq!(b["level"], "normal");
    let kinds = kinds_for(&app.events().await, sid);
    assert!(!kinds.iter().any(|k| k.starts_with("budget.")), "{kinds:?}");

    // Crossing 75 %: one budget.warning.
    report(&app, &worker, 0.6).await;
    let (_, b) = app.get(&format!("/swarms/{sid}/budget")).await;
    assert_eq!(b["level"], "warning");
    let events = app.events().await;
    let warnings: Vec<_> = events
        .iter()
        .filter(|e| e["kind"] == "budget.warning")
        .collect();
    assert_eq!(warnings.len(), 1, "{events:?}");
    assert_eq!(warnings[0]["swarm_id"], sid);
    assert_eq!(warnings[0]["data"]["consumed"], 7.6);
    // Staying in the same band writes nothing new.
    report(&app, &worker, 0.1).await;
    let kinds = kinds_for(&app.events().await, sid);
    assert_eq!(kinds.iter().filter(|k| *k == "budget.warning").count(), 1);

    // Crossing 90 %: budget.critical.
    report(&app, &worker, 1.5).await;
    let (_, b) = app.get(&format!("/swarms/{sid}/budget")).await;
    assert_eq!(b["level"], "critical");
    let kinds = kinds_for(&app.events().await, sid);
    assert_eq!(kinds.iter().filter(|k| *k == "budget.critical").count(), 1);
    let (_, sw) = app.get(&format!("/swarms/{sid}")).await;
    assert_eq!(sw["status"], "active");

    // Reaching 100 % (via complete's final cost): the swarm pauses.
    let (st, done) = app
        .post(&format!("/agents/{worker}/complete"), json!({"cost": 0.8}))
        .await;
    assert_eq!(st, 200, "{done}");
    assert_eq!(done["cost"], 10.0);
    let (_, sw) = app.get(&format!("/swarms/{sid}")).await;
    assert_eq!(sw["status"], "paused");
    assert_eq!(sw["budget"]["level"], "exhausted");
    assert_eq!(sw["budget"]["remaining"], 0.0);
    let events = app.events().await;
    let kinds = kinds_for(&events, sid);
    assert!(kinds.contains(&"budget.exhausted".into()), "{kinds:?}");
    let paused: Vec<_> = events
        .iter()
        .filter(|e| e["kind"] == "swarm.paused" && e["swarm_id"] == sid)
        .collect();
    assert_eq!(paused.len(), 1, "{kinds:?}");
    assert_eq!(paused[0]["data"]["reason"], "budget exhausted");

    // Its pending agents cannot be started; the swarm cannot resume until
    // the budget is raised.
    let (st, e) = app.act(&format!("/agents/{waiting}/start")).await;
    let msg = assert_error(st, &e, 409, "conflict");
    assert!(msg.contains("paused"), "{msg}");
    let (_, w) = app.get(&format!("/agents/{waiting}")).await;
    assert_eq!(w["status"], "pending");
    let (st, e) = app.act(&format!("/swarms/{sid}/resume")).await;
    let msg = assert_error(st, &e, 409, "conflict");
    assert!(msg.contains("budget"), "{msg}");
    let (st, b) = app
        .patch(&format!("/swarms/{sid}/budget"), json!({"allocated": 20.0}))
        .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["level"], "normal");
    let (st, _) = app.act(&format!("/swarms/{sid}/resume")).await;
    assert_eq!(st, 200);
    let (st, r) = app.act(&format!("/agents/{waiting}/start")).await;
    assert_eq!((st, r["status"].as_str()), (200, Some("running")), "{r}");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cost_is_charged_atomically_and_never_lost() {
    let app = TestApp::spawn().await;
    let s = app
        .swarm(json!({"name": "many", "strategy": "parallel",
                      "config": {"max_agents": 20}, "budget": {"allocated": 1000.0}}))
        .await;
    let sid = s["id"].as_str().unwrap().to_string();
    let mut agents = Vec::new();
    for _ in 0..8 {
        agents.push(running_agent(&app, &sid).await);
    }
    // Concurrent reports from every agent: no update is lost.
    let calls = agents
        .iter()
        .flat_map(|a| (0..3).map(move |_| a.clone()))
        .map(|a| {
            let app = &app;
            async move { report(app, &a, 1.25).await }
        });
    futures::future::join_all(calls).await;
    let (_, b) = app.get(&format!("/swarms/{sid}/budget")).await;
    assert_eq!(b["consumed"], 30.0, "{b}");
    let mut sum = 0.0;
    for a in &agents {
        let (_, got) = app.get(&format!("/agents/{a}")).await;
        assert_eq!(got["cost"], 3.75);
        sum += got["cost"].as_f64().unwrap();
    }
    assert_eq!(sum, 30.0);

    // A refused report charges nothing, to the agent or to the swarm.
    let (st, e) = app
        .post(
            &format!("/agents/{}/progress", agents[0]),
            json!({"cost": -1.0}),
        )
        .await;
    assert_error(st, &e, 422, "validation_failed");
    let (st, e) = app
        .post(
            &format!("/agents/{}/progress", agents[0]),
            json!({"cost": 1.0, "progress": 2.0}),
        )
        .await;
    assert_error(st, &e, 422, "validation_failed");
    let (_, b) = app.get(&format!("/swarms/{sid}/budget")).await;
    assert_eq!(b["consumed"], 30.0);
    let (_, got) = app.get(&format!("/agents/{}", agents[0])).await;
    assert_eq!(got["cost"], 3.75);

    // One jump across both thresholds writes both events, in order.
    let s2 = app
        .swarm(json!({"name": "jump", "strategy": "parallel", "budget": {"allocated": 10.0}}))
        .await;
    let sid2 = s2["id"].as_str().unwrap();
    let w = running_agent(&app, sid2).await;
    report(&app, &w, 9.5).await;
    let kinds = kinds_for(&app.events().await, sid2);
    let budget: Vec<_> = kinds.iter().filter(|k| k.starts_with("budget.")).collect();
    assert_eq!(budget, ["budget.warning", "budget.critical"], "{kinds:?}");

    // Unlimited budgets (allocated 0) never alert or pause.
    let s3 = app
        .swarm(json!({"name": "free", "strategy": "parallel"}))
        .await;
    let sid3 = s3["id"].as_str().unwrap();
    let w = running_agent(&app, sid3).await;
    report(&app, &w, 1e6).await;
    let (_, sw) = app.get(&format!("/swarms/{sid3}")).await;
    assert_eq!(sw["status"], "active");
    assert_eq!(sw["budget"]["consumed"], 1e6);
    assert!(sw["budget"]["remaining"].is_null());
    let kinds = kinds_for(&app.events().await, sid3);
    assert!(!kinds.iter().any(|k| k.starts_with("budget.")), "{kinds:?}");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lowering_the_allocation_below_consumed_pauses_the_swarm_at_once() {
    let app = TestApp::spawn().await;
    let s = app
        .swarm(json!({"name": "cut", "strategy": "parallel", "budget": {"allocated": 100.0}}))
        .await;
    let sid = s["id"].as_str().unwrap();
    let worker = running_agent(&app, sid).await;
    report(&app, &worker, 50.0).await;

    // 50 of 80 is below the warning threshold: nothing to do.
    let (st, b) = app
        .patch(&format!("/swarms/{sid}/budget"), json!({"allocated": 80.0}))
        .await;
    assert_eq!((st, &b["level"]), (200, &json!("normal")), "{b}");
    let (st, b) = app
        .patch(&format!("/swarms/{sid}/budget"), json!({"allocated": 40.0}))
        .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["level"], "exhausted");
    let (_, swarm) = app.get(&format!("/swarms/{sid}")).await;
    assert_eq!(swarm["status"], "paused", "{swarm}");
    let kinds = kinds_for(&app.events().await, sid);
    let tail: Vec<&str> = kinds
        .iter()
        .rev()
        .take(5)
        .rev()
        .map(String::as_str)
        .collect();
    assert_eq!(
        tail,
        [
            "budget.updated",
            "budget.warning",
            "budget.critical",
            "budget.exhausted",
            "swarm.paused"
        ],
        "{kinds:?}"
    );
    // The next cost report is still recorded (work already done costs), but the
    // swarm stays paused and cannot be resumed until the budget is raised.
    report(&app, &worker, 1.0).await;
    let (st, e) = app.act(&format!("/swarms/{sid}/resume")).await;
    assert_error(st, &e, 409, "conflict");
    // Raising it again does not resume by itself; the explicit resume works.
    let (st, b) = app
        .patch(&format!("/swarms/{sid}/budget"), json!({"allocated": 0}))
        .await;
    assert_eq!((st, &b["level"]), (200, &json!("normal")), "{b}");
    assert_eq!(
        app.get(&format!("/swarms/{sid}")).await.1["status"],
        "paused"
    );
    assert_eq!(app.act(&format!("/swarms/{sid}/resume")).await.0, 200);
    app.shutdown().await;
}
