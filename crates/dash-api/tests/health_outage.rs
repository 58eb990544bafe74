//! The outage cycle: with PostgreSQL stopped every API call answers 503
//! `database_unavailable` with `Retry-After` promptly, `/health` and `/ready`
//! say so, `/livez` does not, `pg_up` drops to 0; started again on the same
//! port, the API recovers by itself without a restart.

mod common;

use std::time::{Duration, Instant};

use common::{items_field, metric, metric_sum, TestApp, TOKEN};
use dash_api::ApiSettings;
use dash_pg::StopMode;
use reqwest::Method;
use serde_json::{json, Value};

/// Generous bound on one answer while the database is down.
const PROMPT: Duration = Duration::from_secs(5);
/// Generous bound on recovery after the database returns.
const RECOVERY: Duration = Duration::from_secs(10);

async fn wait_for<F: std::future::Future<Output = bool>>(
    what: &str,
    bound: Duration,
    mut check: impl FnMut() -> F,
) {
    let deadline = Instant::now() + bound;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {bound:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Production timeouts, not the harness's roomier ones.
fn production_timeouts(s: &mut ApiSettings) {
    s.database.connect_timeout = Duration::from_secs(1);
    s.database.acquire_timeout = Duration::from_secs(1);
}

/// Creates a swarm named `name` and returns its id.
async fn swarm_id(app: &TestApp, name: &str) -> String {
    let s = app.swarm(json!({"name": name, "strategy": "tree"})).await;
    s["id"].as_str().unwrap().to_string()
}

/// `PUT /admin/maintenance` with `body`, asserting 200.
async fn set_maintenance(app: &TestApp, body: Value) {
    let r = app
        .req(Method::PUT, "/admin/maintenance")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_answers_503_promptly_and_recovers_without_restart() {
    let mut app = TestApp::spawn_with(production_timeouts).await;
    let sid = swarm_id(&app, "before").await;
    let agent = app.agent(json!({"swarm_id": sid, "task": "t"})).await;
    let aid = agent["id"].as_str().unwrap().to_string();
    let (st, _) = app.get_path("/health").await;
    assert_eq!(st, 200);

    tokio::task::block_in_place(|| app.node.stop(StopMode::Fast)).expect("stop PostgreSQL");

    // Every call that needs the database: 503, Retry-After, the JSON code,
    // promptly. `{sid}` and `{aid}` stand for the swarm's and the agent's ids.
    let calls = [
        ("GET /swarms", None),
        ("GET /swarms/{sid}", None),
        (
            "POST /swarms",
            Some(json!({"name": "during", "strategy": "tree"})),
        ),
        ("PATCH /swarms/{sid}", Some(json!({"task": "x"}))),
        ("DELETE /swarms/{sid}", None),
        ("POST /swarms/{sid}/pause", None),
        ("GET /swarms/{sid}/agents", None),
        ("GET /swarms/{sid}/budget", None),
        (
            "PATCH /swarms/{sid}/budget",
            Some(json!({"allocated": 3.0})),
        ),
        ("POST /agents", Some(json!({"task": "during"}))),
        ("GET /agents", None),
        ("GET /agents/{aid}", None),
        ("POST /agents/{aid}/start", None),
        ("POST /agents/{aid}/kill", None),
        (
            "POST /agents/{aid}/progress",
            Some(json!({"progress": 0.1})),
        ),
        ("POST /agents/{aid}/complete", None),
        ("DELETE /agents/{aid}", None),
        ("GET /events", None),
        ("GET /events/stream", None),
    ];
    let checks = calls.iter().map(|(call, body)| {
        let app = &app;
        let call = call.replace("{sid}", &sid).replace("{aid}", &aid);
        async move {
            let (m, path) = call.split_once(' ').unwrap();
            let m: Method = m.parse().unwrap();
            let mut rb = app
                .client
                .request(m.clone(), app.url(path))
                .bearer_auth(TOKEN);
            if let Some(b) = body {
                rb = rb.json(b);
            }
            let started = Instant::now();
            let r = rb.send().await.unwrap();
            let took = started.elapsed();
            let retry_after = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string());
            let (st, b) = common::split(r).await;
            (format!("{m} {path}"), st, retry_after, b, took)
        }
    });
    for (call, st, retry_after, b, took) in futures::future::join_all(checks).await {
        assert_eq!(st, 503, "{call}: {b}");
        assert_eq!(b["error"]["code"], "database_unavailable", "{call}: {b}");
        let secs: u64 = retry_after
            .unwrap_or_else(|| panic!("{call}: no Retry-After"))
            .parse()
            .unwrap();
        assert!((1..=60).contains(&secs), "{call}: Retry-After {secs}");
        assert!(took < PROMPT, "{call} took {took:?}");
    }

    // Probes: /health and /ready say why, /livez stays up.
    let started = Instant::now();
    let (st, h) = app.get_path("/health").await;
    assert_eq!(st, 503, "{h}");
    assert_eq!(h["database"]["status"], "down");
    assert!(
        h["database"]["reason"]
            .as_str()
            .is_some_and(|r| !r.is_empty()),
        "{h}"
    );
    let (st, r) = app.get_path("/ready").await;
    assert_eq!(st, 503, "{r}");
    assert_eq!(r["blocking"], "database");
    assert!(started.elapsed() < PROMPT * 2);
    let (st, _) = app.get_path("/livez").await;
    assert_eq!(st, 200);
    // Calls that need no database keep working.
    let (st, _) = app.get("/openapi.json").await;
    assert_eq!(st, 200);
    let app_ref = &app;
    wait_for("pg_up 0", PROMPT, move || async move {
        metric(&app_ref.metrics().await, "pg_up") == Some(0.0)
    })
    .await;
    let text = app.metrics().await;
    assert!(
        metric_sum(
            &text,
            "pg_connection_errors_total",
            &[r#"reason="refused""#]
        )
        .unwrap()
            > 0.0,
        "{text}"
    );
    // Nothing piles up: no caller is left waiting for a connection.
    wait_for("no waiters", PROMPT, move || async move {
        metric(&app_ref.metrics().await, "pg_pool_waiting") == Some(0.0)
    })
    .await;

    // Back on the same port: the API recovers by itself.
    let port = app.node.port();
    tokio::task::block_in_place(|| app.node.start()).expect("start PostgreSQL again");
    assert_eq!(app.node.port(), port);
    wait_for("/ready 200", RECOVERY, move || async move {
        app_ref.get_path("/ready").await.0 == 200
    })
    .await;
    let (st, h) = app.get_path("/health").await;
    assert_eq!(st, 200, "{h}");
    let (st, got) = app.get(&format!("/swarms/{sid}")).await;
    assert_eq!((st, &got["name"]), (200, &json!("before")));
    let (st, b) = app
        .post("/swarms", json!({"name": "after", "strategy": "tree"}))
        .await;
    assert_eq!(st, 201, "{b}");
    wait_for("pg_up 1", RECOVERY, move || async move {
        metric(&app_ref.metrics().await, "pg_up") == Some(1.0)
    })
    .await;
    // Nothing written during the outage exists.
    let (_, list) = app.get("/swarms").await;
    let names = items_field(&list, "name");
    assert_eq!(names, [json!("before"), json!("after")]);
    let server = app.begin_shutdown();
    tokio::time::timeout(Duration::from_secs(15), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_stream_survives_an_outage() {
    let app = TestApp::spawn_with(production_timeouts).await;
    let r = app
        .client
        .get(app.url("/events/stream"))
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut body = futures::StreamExt::boxed(r.bytes_stream());
    tokio::task::block_in_place(|| app.node.stop(StopMode::Fast)).unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    tokio::task::block_in_place(|| app.node.start()).unwrap();
    app.wait_ready().await;
    let id = swarm_id(&app, "after the outage").await;
    // The same connection delivers the new event (error notices may come first).
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + RECOVERY;
    while !seen.contains(&id) {
        match tokio::time::timeout_at(deadline, futures::StreamExt::next(&mut body)).await {
            Ok(Some(Ok(chunk))) => seen.push_str(&String::from_utf8_lossy(&chunk)),
            other => panic!(
                "stream ended or stalled: {:?}; got so far:\n{seen}",
                other.map(|o| o.map(|r| r.map(|_| ())))
            ),
        }
    }
    assert!(seen.contains("event: swarm.created"), "{seen}");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_started_without_its_database_waits_for_it() {
    let app = TestApp::spawn_with_database_down(production_timeouts).await;
    let (st, _) = app.get_path("/livez").await;
    assert_eq!(st, 200);
    let started = Instant::now();
    let (st, r) = app.get_path("/ready").await;
    assert_eq!((st, &r["blocking"]), (503, &json!("database")), "{r}");
    let (st, h) = app.get_path("/health").await;
    assert_eq!(st, 503, "{h}");
    let (st, e) = app
        .post("/swarms", json!({"name": "early", "strategy": "tree"}))
        .await;
    assert_eq!(
        (st, &e["error"]["code"]),
        (503, &json!("database_unavailable")),
        "{e}"
    );
    assert!(started.elapsed() < PROMPT * 3);

    tokio::task::block_in_place(|| app.node.start()).expect("start PostgreSQL");
    // It connects, migrates and serves, without a restart.
    let app_ref = &app;
    wait_for("/ready 200", RECOVERY, move || async move {
        app_ref.get_path("/ready").await.0 == 200
    })
    .await;
    let id = swarm_id(&app, "late").await;
    let (st, _) = app.get(&format!("/swarms/{id}")).await;
    assert_eq!(st, 200);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_requests_and_maintenance_answer_503_in_the_api_shape() {
    let app = TestApp::spawn_with(|s| {
        s.request_timeout = Duration::from_millis(500);
        s.database.pool_size = 1;
        s.database.statement_timeout = Duration::from_secs(30);
        s.database.query_timeout = Duration::from_secs(30);
    })
    .await;
    let sid = swarm_id(&app, "locked").await;
    // A request stuck behind a lock: cut at request_timeout, in the API's shape.
    let pg = app.pg().await;
    pg.batch_execute(&format!(
        "BEGIN; SELECT 1 FROM swarms WHERE id = '{sid}' FOR UPDATE"
    ))
    .await
    .unwrap();
    let started = Instant::now();
    let r = app
        .req(Method::PATCH, &format!("/swarms/{sid}"))
        .json(&json!({"task": "x"}))
        .send()
        .await
        .unwrap();
    assert!(started.elapsed() < PROMPT);
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    let (_, e) = common::split(r).await;
    assert_eq!(e["error"]["code"], "timeout", "{e}");
    // The abandoned call does not leave its connection busy for the next
    // caller (the pool has one connection): other work goes on meanwhile.
    let other = swarm_id(&app, "free").await;
    let (st, _) = app.get(&format!("/swarms/{other}")).await;
    assert_eq!(st, 200);
    pg.batch_execute("ROLLBACK").await.unwrap();
    let (_, got) = app.get(&format!("/swarms/{sid}")).await;
    assert_eq!(
        got["task"], "",
        "the timed-out change was not applied later"
    );

    // Maintenance mode: writes answer 503 `maintenance`, reads keep working.
    set_maintenance(
        &app,
        json!({"enabled": true, "reason": "restoring a backup"}),
    )
    .await;
    let r = app
        .req(Method::POST, "/swarms")
        .json(&json!({"name": "n", "strategy": "tree"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    let (_, e) = common::split(r).await;
    assert_eq!(e["error"]["code"], "maintenance");
    assert!(e["error"]["message"]
        .as_str()
        .unwrap()
        .contains("restoring a backup"));
    let (st, _) = app.act(&format!("/swarms/{sid}/pause")).await;
    assert_eq!(st, 503);
    let (st, _) = app.get(&format!("/swarms/{sid}")).await;
    assert_eq!(st, 200);
    let (_, h) = app.get_path("/health").await;
    assert_eq!(h["maintenance"], "restoring a backup");
    set_maintenance(&app, json!({"enabled": false})).await;
    let (st, _) = app.act(&format!("/swarms/{sid}/pause")).await;
    assert_eq!(st, 200);
    assert_eq!(app.count("swarms").await, 2);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_refuses_every_write_route_and_no_read() {
    let app = TestApp::spawn().await;
    let sid = &swarm_id(&app, "m").await;
    let a = app.agent(json!({"swarm_id": sid, "task": "t"})).await;
    let aid = a["id"].as_str().unwrap();
    set_maintenance(
        &app,
        json!({"enabled": true, "reason": "restoring a backup"}),
    )
    .await;
    let events = app.count("events").await;

    let writes = [
        (
            Method::POST,
            "/swarms".to_string(),
            json!({"name": "n", "strategy": "tree"}),
        ),
        (
            Method::PATCH,
            format!("/swarms/{sid}"),
            json!({"task": "x"}),
        ),
        (Method::DELETE, format!("/swarms/{sid}"), Value::Null),
        (
            Method::PATCH,
            format!("/swarms/{sid}/budget"),
            json!({"allocated": 5}),
        ),
        (
            Method::POST,
            "/agents".to_string(),
            json!({"swarm_id": sid, "task": "u"}),
        ),
        (Method::DELETE, format!("/agents/{aid}"), Value::Null),
        (
            Method::POST,
            format!("/agents/{aid}/progress"),
            json!({"progress": 0.5}),
        ),
    ];
    // And every lifecycle action, which takes no body.
    let actions = [
        (
            "swarms",
            sid.as_str(),
            &["pause", "resume", "complete", "destroy"][..],
        ),
        (
            "agents",
            aid,
            &["kill", "pause", "resume", "start", "complete", "fail"],
        ),
    ];
    let actions = actions.iter().flat_map(|(kind, id, names)| {
        names
            .iter()
            .map(move |name| (Method::POST, format!("/{kind}/{id}/{name}"), Value::Null))
    });
    for (method, path, body) in writes.into_iter().chain(actions) {
        let mut rb = app.req(method.clone(), &path);
        if !body.is_null() {
            rb = rb.json(&body);
        }
        let r = rb.send().await.unwrap();
        assert!(r.headers().contains_key("retry-after"), "{method} {path}");
        let (st, e) = common::split(r).await;
        let msg = common::assert_error(st, &e, 503, "maintenance");
        assert_eq!(
            msg, "writes are paused for maintenance: restoring a backup",
            "{method} {path}"
        );
    }
    for path in [
        "/swarms".to_string(),
        format!("/swarms/{sid}"),
        format!("/swarms/{sid}/agents"),
        format!("/swarms/{sid}/budget"),
        "/agents".to_string(),
        format!("/agents/{aid}"),
        "/events".to_string(),
    ] {
        let (st, body) = app.get(&path).await;
        assert_eq!(st, 200, "GET {path}: {body}");
    }
    assert_eq!(app.count("swarms").await, 1);
    assert_eq!(app.count("agents").await, 1);
    assert_eq!(app.count("events").await, events, "nothing was written");
    app.shutdown().await;
}
