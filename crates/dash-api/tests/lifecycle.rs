//! State machines through the API: every illegal transition is refused with
//! 409 `invalid_transition` naming the current state; the worker's flow,
//! retries, kill and delete rules do what they say.

mod common;

use common::{assert_error, TestApp};
use serde_json::{json, Value};

/// Spawns an agent (no retries) and drives it into `status`; returns its id.
async fn agent_in(app: &TestApp, status: &str) -> String {
    let a = app
        .agent(json!({"task": format!("to be {status}"), "max_retries": 0}))
        .await;
    let id = a["id"].as_str().unwrap().to_string();
    let steps: &[&str] = match status {
        "pending" => &[],
        "running" => &["start"],
        "paused" => &["start", "pause"],
        "completed" => &["start", "complete"],
        "failed" => &["start", "fail"],
        "killed" => &["kill"],
        other => panic!("no recipe for {other}"),
    };
    for step in steps {
        let (st, b) = app.act(&format!("/agents/{id}/{step}")).await;
        assert_eq!(st, 200, "{step}: {b}");
    }
    let (_, got) = app.get(&format!("/agents/{id}")).await;
    assert_eq!(got["status"], status);
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_illegal_agent_transition_is_409_naming_the_state() {
    let app = TestApp::spawn().await;
    let actions = ["start", "pause", "resume", "complete", "fail", "kill"];
    let legal: &[(&str, &[&str])] = &[
        ("pending", &["start", "kill"]),
        ("running", &["pause", "complete", "fail", "kill"]),
        ("paused", &["resume", "kill"]),
        ("completed", &[]),
        ("failed", &[]),
        ("killed", &[]),
    ];
    for (status, allowed) in legal {
        let id = agent_in(&app, status).await;
        let events_before = app.events().await.len();
        for action in actions.iter().filter(|a| !allowed.contains(a)) {
            let (st, e) = app.act(&format!("/agents/{id}/{action}")).await;
            let msg = assert_error(st, &e, 409, "invalid_transition");
            assert!(
                msg.contains(status) && msg.contains(action),
                "{action} on {status}: {msg}"
            );
        }
        // Refusals change nothing.
        let (_, got) = app.get(&format!("/agents/{id}")).await;
        assert_eq!(got["status"], *status);
        assert_eq!(app.events().await.len(), events_before);
        // Every allowed action is accepted (each on a fresh agent in that state).
        for action in *allowed {
            let id = agent_in(&app, status).await;
            let (st, b) = app.act(&format!("/agents/{id}/{action}")).await;
            assert_eq!(st, 200, "{action} on {status}: {b}");
        }
    }
    // Progress is only for a running agent.
    let id = agent_in(&app, "pending").await;
    let (st, e) = app
        .post(&format!("/agents/{id}/progress"), json!({"progress": 0.1}))
        .await;
    let msg = assert_error(st, &e, 409, "conflict");
    assert!(msg.contains("pending"), "{msg}");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_illegal_swarm_transition_is_409_naming_the_state() {
    let app = TestApp::spawn().await;
    let actions = ["pause", "resume", "complete", "destroy"];
    let legal: &[(&str, &[&str], &[&str])] = &[
        // (status, how to get there, allowed actions)
        ("active", &[], &["pause", "complete", "destroy"]),
        ("paused", &["pause"], &["resume", "complete", "destroy"]),
        ("completed", &["complete"], &["destroy"]),
        ("destroyed", &["destroy"], &[]),
    ];
    for (status, path, allowed) in legal {
        let make = || async {
            let s = app
                .swarm(json!({"name": format!("to be {status}"), "strategy": "parallel"}))
                .await;
            let id = s["id"].as_str().unwrap().to_string();
            for step in *path {
                let (st, b) = app.act(&format!("/swarms/{id}/{step}")).await;
                assert_eq!(st, 200, "{step}: {b}");
            }
            id
        };
        let id = make().await;
        for action in actions.iter().filter(|a| !allowed.contains(a)) {
            let (st, e) = app.act(&format!("/swarms/{id}/{action}")).await;
            let msg = assert_error(st, &e, 409, "invalid_transition");
            assert!(
                msg.contains(status) && msg.contains(action),
                "{action} on {status}: {msg}"
            );
        }
        let (_, got) = app.get(&format!("/swarms/{id}")).await;
        assert_eq!(got["status"], *status);
        for action in *allowed {
            let id = make().await;
            let (st, b) = app.act(&format!("/swarms/{id}/{action}")).await;
            assert_eq!(st, 200, "{action} on {status}: {b}");
        }
    }
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_flow_retries_kill_and_delete_rules() {
    let app = TestApp::spawn().await;

    // start -> progress -> complete.
    let a = app.agent(json!({"task": "work"})).await;
    let id = a["id"].as_str().unwrap();
    let (st, r) = app.act(&format!("/agents/{id}/start")).await;
    assert_eq!((st, r["status"].as_str()), (200, Some("running")));
    let (st, r) = app
        .post(
            &format!("/agents/{id}/progress"),
            json!({"progress": 0.5, "cost": 0.25, "message": "halfway"}),
        )
        .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["progress"], 0.5);
    assert_eq!(r["cost"], 0.25);
    let (st, r) = app
        .post(
            &format!("/agents/{id}/complete"),
            json!({"cost": 0.5, "result": {"summary": "done"}}),
        )
        .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["status"], "completed");
    assert_eq!(r["progress"], 1.0);
    assert_eq!(r["cost"], 0.75);
    assert_eq!(r["metadata"]["result"], json!({"summary": "done"}));
    assert!(r["completed_at"].is_string());
    let (_, got) = app.get(&format!("/agents/{id}")).await;
    assert_eq!(got, r);
    let mine: Vec<Value> = app
        .events()
        .await
        .into_iter()
        .filter(|e| e["agent_id"] == id)
        .collect();
    let kinds: Vec<_> = mine.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "agent.spawned",
            "agent.started",
            "agent.progress",
            "agent.cost",
            "agent.completed",
            "agent.cost"
        ]
    );

    // fail with retries: back to pending until max_retries, then failed.
    let a = app.agent(json!({"task": "flaky", "max_retries": 2})).await;
    let id = a["id"].as_str().unwrap();
    for attempt in 1..=3 {
        let (st, r) = app.act(&format!("/agents/{id}/start")).await;
        assert_eq!(st, 200, "{r}");
        let (st, r) = app
            .post(
                &format!("/agents/{id}/fail"),
                json!({"error": format!("boom {attempt}")}),
            )
            .await;
        assert_eq!(st, 200, "{r}");
        assert_eq!(r["last_error"], format!("boom {attempt}"));
        if attempt < 3 {
            assert_eq!(r["status"], "pending", "attempt {attempt}");
            assert_eq!(r["retry_count"], attempt);
            assert!(r["completed_at"].is_null());
        } else {
            assert_eq!(r["status"], "failed");
            assert_eq!(r["retry_count"], 2);
            assert!(r["completed_at"].is_string());
        }
    }
    let kinds = app.event_kinds().await;
    assert_eq!(kinds.iter().filter(|k| *k == "agent.retried").count(), 2);
    assert_eq!(kinds.iter().filter(|k| *k == "agent.failed").count(), 1);
    // An empty body is a failure with no details.
    let b = app.agent(json!({"task": "quiet", "max_retries": 0})).await;
    let bid = b["id"].as_str().unwrap();
    app.act(&format!("/agents/{bid}/start")).await;
    let (st, r) = app.act(&format!("/agents/{bid}/fail")).await;
    assert_eq!((st, r["status"].as_str()), (200, Some("failed")), "{r}");

    // kill from running; killed is final.
    let k = agent_in(&app, "running").await;
    let (st, r) = app.act(&format!("/agents/{k}/kill")).await;
    assert_eq!((st, r["status"].as_str()), (200, Some("killed")));
    assert!(r["completed_at"].is_string());
    assert!(app.event_kinds().await.contains(&"agent.killed".into()));

    // delete: refused while running or paused, allowed otherwise.
    for (status, ok) in [
        ("pending", true),
        ("running", false),
        ("paused", false),
        ("completed", true),
        ("failed", true),
        ("killed", true),
    ] {
        let id = agent_in(&app, status).await;
        let (st, e) = app.delete(&format!("/agents/{id}")).await;
        if ok {
            assert_eq!(st, 204, "delete {status}: {e}");
            let (st, _) = app.get(&format!("/agents/{id}")).await;
            assert_eq!(st, 404);
        } else {
            let msg = assert_error(st, &e, 409, "conflict");
            assert!(msg.contains(status), "{msg}");
            let (st, _) = app.get(&format!("/agents/{id}")).await;
            assert_eq!(st, 200);
        }
    }
    assert!(app.event_kinds().await.contains(&"agent.deleted".into()));
    app.shutdown().await;
}
