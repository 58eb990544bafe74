//! Every route's real answers match the generated OpenAPI document: each
//! route of the router is documented (and nothing else is), and real
//! requests that succeed, name an unknown id, send bad input, lack the
//! token or meet maintenance mode get a status the document lists for that
//! operation, with a body valid against the schema it declares.

#[path = "../common/mod.rs"]
mod common;

mod check;

use std::collections::BTreeSet;

use check::{j, Body, Conformance, ROOT_ROUTES};
use common::TestApp;
use serde_json::{json, Value};

/// Every route the API router serves under `/api/v1` (and `/api`).
const API_ROUTES: [&str; 32] = [
    "post /swarms",
    "get /swarms",
    "get /swarms/{id}",
    "patch /swarms/{id}",
    "delete /swarms/{id}",
    "post /swarms/{id}/pause",
    "post /swarms/{id}/resume",
    "post /swarms/{id}/complete",
    "post /swarms/{id}/destroy",
    "get /swarms/{id}/agents",
    "get /swarms/{id}/budget",
    "patch /swarms/{id}/budget",
    "post /agents",
    "get /agents",
    "get /agents/{id}",
    "delete /agents/{id}",
    "post /agents/{id}/kill",
    "post /agents/{id}/pause",
    "post /agents/{id}/resume",
    "post /agents/{id}/start",
    "post /agents/{id}/progress",
    "post /agents/{id}/complete",
    "post /agents/{id}/fail",
    "get /events",
    "get /events/stream",
    "get /dashboard",
    "get /dashboard/stream",
    "get /admin/pool",
    "put /admin/pool",
    "get /admin/maintenance",
    "put /admin/maintenance",
    "get /openapi.json",
];

const UNKNOWN: &str = "00000000-0000-4000-8000-000000000000";

/// Answers of the swarm routes.
async fn swarms(c: &mut Conformance<'_>) {
    let body = || json!({"name": "s", "strategy": "parallel"});
    let s = c.swarm().await;
    c.replayed("post /swarms", body()).await;
    c.twice("post /swarms", body()).await;
    let raw = |ct, text: String| Body::Raw(ct, text.into_bytes());
    c.expect(400, "post /swarms", "", raw("application/json", "{".into()))
        .await;
    c.expect(415, "post /swarms", "", raw("text/plain", "{}".into()))
        .await;
    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(1 << 21));
    c.expect(413, "post /swarms", "", raw("application/json", big))
        .await;
    let blank = json!({"name": " ", "strategy": "tree"});
    c.expect(422, "post /swarms", "", j(blank)).await;
    let (st, _) = c.call("post /swarms", "", j(body()), false).await;
    assert_eq!(st, 401);

    c.plain(200, "get /swarms", "").await;
    c.plain(
        200,
        "get /swarms?status=active&limit=1&sort=-created_at",
        "",
    )
    .await;
    c.plain(400, "get /swarms?colour=red", "").await;
    c.plain(422, "get /swarms?limit=0", "").await;
    for route in [
        "get /swarms/{id}",
        "get /swarms/{id}/agents",
        "get /swarms/{id}/budget",
    ] {
        c.plain(200, route, &s).await;
        c.plain(404, route, UNKNOWN).await;
    }
    c.plain(400, "get /swarms/{id}", "not-a-uuid").await;
    let patch = || j(json!({"task": "changed", "config": {"max_agents": 5}}));
    c.expect(200, "patch /swarms/{id}", &s, patch()).await;
    c.expect(404, "patch /swarms/{id}", UNKNOWN, patch()).await;
    c.expect(422, "patch /swarms/{id}", &s, j(json!({"name": ""})))
        .await;
    c.expect(400, "patch /swarms/{id}", &s, j(json!({"colour": "red"})))
        .await;
    let budget = |v: f64| j(json!({"allocated": v, "warning_threshold": 0.5}));
    c.expect(200, "patch /swarms/{id}/budget", &s, budget(20.0))
        .await;
    c.expect(404, "patch /swarms/{id}/budget", UNKNOWN, budget(20.0))
        .await;
    c.expect(422, "patch /swarms/{id}/budget", &s, budget(-1.0))
        .await;

    // Lifecycle: each action from a status that allows it, then again.
    for action in ["pause", "resume"] {
        let route = format!("post /swarms/{{id}}/{action}");
        c.plain(200, &route, &s).await;
        c.plain(409, &route, &s).await;
    }
    let live = c.swarm().await;
    c.agent(&live).await;
    c.plain(409, "delete /swarms/{id}", &live).await;
    for (action, id) in [("destroy", &live), ("complete", &s)] {
        let route = format!("post /swarms/{{id}}/{action}");
        c.plain(200, &route, id).await;
        c.plain(409, &route, id).await;
    }
    for action in ["pause", "resume", "complete", "destroy"] {
        c.plain(404, &format!("post /swarms/{{id}}/{action}"), UNKNOWN)
            .await;
    }
    c.plain(204, "delete /swarms/{id}", &s).await;
    c.plain(404, "delete /swarms/{id}", &s).await;
}

/// Answers of the event, admin and document routes.
async fn events_and_admin(c: &mut Conformance<'_>) {
    c.plain(200, "get /events", "").await;
    c.plain(200, "get /events?newest=true&limit=2", "").await;
    c.plain(400, "get /events?newest=true&after=0", "").await;
    c.plain(422, "get /events?limit=501", "").await;
    c.plain(200, "get /events/stream", "").await;
    let (st, b) = c
        .call("get /events/stream?after=garbage", "", Body::Empty, true)
        .await;
    assert!((400..500).contains(&st), "{st} {b}");
    c.plain(200, "get /openapi.json", "").await;
    c.plain(200, "get /dashboard", "").await;
    c.plain(200, "get /dashboard/stream", "").await;

    for path in ["/admin/pool", "/admin/maintenance"] {
        c.plain(200, &format!("get {path}"), "").await;
        let (get, _) = c.call(&format!("get {path}"), "", Body::Empty, false).await;
        let (put, _) = c
            .call(&format!("put {path}"), "", j(json!({})), false)
            .await;
        assert_eq!((get, put), (401, 401), "{path}");
        c.expect(400, &format!("put {path}"), "", j(json!({"colour": "red"})))
            .await;
    }
    c.expect(200, "put /admin/pool", "", j(json!({"size": 20})))
        .await;
    c.expect(422, "put /admin/pool", "", j(json!({"size": 0})))
        .await;
    let on = json!({"enabled": true, "reason": "checking the document"});
    c.expect(200, "put /admin/maintenance", "", j(on)).await;
    // A change while maintenance is on: 503, in the error shape.
    let swarm = json!({"name": "s", "strategy": "tree"});
    c.expect(503, "post /swarms", "", j(swarm)).await;
    c.plain(200, "get /admin/maintenance", "").await;
    let off = json!({"enabled": false});
    c.expect(200, "put /admin/maintenance", "", j(off)).await;
    let bad = json!({"enabled": true, "reason": "a\nb"});
    c.expect(422, "put /admin/maintenance", "", j(bad)).await;
}

/// Answers of the agent routes.
async fn agents(c: &mut Conformance<'_>) {
    let s = c.swarm().await;
    let a = c.agent(&s).await;
    c.replayed("post /agents", json!({"task": "t"})).await;
    c.twice("post /agents", json!({"task": "t"})).await;
    let orphan = json!({"task": "t", "swarm_id": UNKNOWN});
    c.expect(404, "post /agents", "", j(orphan)).await;
    c.expect(422, "post /agents", "", j(json!({"task": ""})))
        .await;
    c.expect(400, "post /agents", "", j(json!({"task": 5})))
        .await;
    let (st, _) = c
        .call("post /agents", "", j(json!({"task": "t"})), false)
        .await;
    assert_eq!(st, 401);

    c.plain(200, &format!("get /agents?swarm_id={s}&status=pending"), "")
        .await;
    c.plain(400, "get /agents?status=asleep", "").await;
    c.plain(422, "get /agents?cursor=garbage", "").await;
    c.plain(200, "get /agents/{id}", &a).await;
    c.plain(404, "get /agents/{id}", UNKNOWN).await;
    c.plain(400, "get /agents/{id}", "7").await;

    c.plain(409, "post /agents/{id}/pause", &a).await;
    c.plain(200, "post /agents/{id}/start", &a).await;
    c.plain(409, "post /agents/{id}/start", &a).await;
    c.plain(409, "delete /agents/{id}", &a).await;
    let report = |p: f64| j(json!({"progress": p, "cost": 1.5, "message": "half"}));
    c.expect(200, "post /agents/{id}/progress", &a, report(0.5))
        .await;
    c.expect(422, "post /agents/{id}/progress", &a, report(2.0))
        .await;
    c.expect(404, "post /agents/{id}/progress", UNKNOWN, report(0.5))
        .await;
    c.plain(200, "post /agents/{id}/pause", &a).await;
    c.plain(200, "post /agents/{id}/resume", &a).await;
    c.plain(409, "post /agents/{id}/resume", &a).await;
    let text = Body::Raw("text/plain", b"oops".to_vec());
    c.expect(415, "post /agents/{id}/fail", &a, text).await;
    let crashed = json!({"error": "crashed"});
    c.expect(200, "post /agents/{id}/fail", &a, j(crashed))
        .await;
    c.plain(409, "post /agents/{id}/complete", &a).await;
    c.plain(200, "post /agents/{id}/start", &a).await;
    let done = json!({"cost": 2, "result": {"answer": 42}});
    c.expect(200, "post /agents/{id}/complete", &a, j(done))
        .await;
    c.plain(409, "post /agents/{id}/kill", &a).await;
    c.plain(204, "delete /agents/{id}", &a).await;

    let b = c.agent(&s).await;
    c.plain(200, "post /agents/{id}/kill", &b).await;
    c.plain(409, "post /agents/{id}/fail", &b).await;
    for action in ["kill", "pause", "resume", "start", "complete", "fail"] {
        c.plain(404, &format!("post /agents/{{id}}/{action}"), UNKNOWN)
            .await;
    }
    c.plain(404, "delete /agents/{id}", UNKNOWN).await;
}

/// The documented operations as "method path", root paths included.
fn documented(doc: &Value) -> BTreeSet<String> {
    let paths = doc["paths"].as_object().unwrap();
    let ops = paths.iter().flat_map(|(p, item)| {
        let methods = item.as_object().unwrap().keys().filter(|k| *k != "servers");
        methods.map(move |m| format!("{m} {p}"))
    });
    ops.collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_as_the_document_says() {
    let app = TestApp::spawn().await;
    let mut c = Conformance::new(&app).await;
    let root = ROOT_ROUTES.map(|p| format!("get {p}"));
    let routes: BTreeSet<String> = API_ROUTES
        .map(String::from)
        .into_iter()
        .chain(root)
        .collect();
    assert_eq!(
        documented(&c.doc),
        routes,
        "the document lists the router's routes"
    );

    for path in ROOT_ROUTES {
        c.plain(200, &format!("get {path}"), "").await;
    }
    swarms(&mut c).await;
    events_and_admin(&mut c).await;
    agents(&mut c).await;

    // Every route was exercised: a success, and an error but for the
    // root paths and this document.
    for route in &routes {
        let (m, path) = route.split_once(' ').unwrap();
        let statuses: Vec<u16> = (c.seen.iter())
            .filter(|(sm, sp, _)| sm == m && sp == path)
            .map(|s| s.2)
            .collect();
        assert!(statuses.iter().any(|s| *s < 300), "{route}: {statuses:?}");
        // The dashboard's reads fail only without a token under
        // DASH_AUTH_READS, or (the stream) past the stream cap.
        let quiet = ["/openapi.json", "/dashboard", "/dashboard/stream"].contains(&path)
            || ROOT_ROUTES.contains(&path);
        assert!(
            quiet || statuses.iter().any(|s| *s >= 400),
            "{route}: {statuses:?}"
        );
    }

    // The check itself refuses a body off its schema and an unlisted status.
    for (st, body) in [(200, json!({"id": 5})), (418, json!({}))] {
        let mut check = || c.check("get", "/swarms/{id}", st, "application/json", &body);
        let refused = std::panic::catch_unwind(std::panic::AssertUnwindSafe(&mut check));
        assert!(refused.is_err(), "{st} {body} passed the check");
    }
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_without_a_database_are_documented() {
    let app = TestApp::spawn_with_database_down(|_| {}).await;
    let mut c = Conformance::new(&app).await;
    c.plain(200, "get /livez", "").await;
    c.plain(503, "get /health", "").await;
    c.plain(503, "get /ready", "").await;
    c.plain(503, "get /swarms", "").await;
    c.plain(503, "get /agents/{id}", UNKNOWN).await;
    let swarm = json!({"name": "s", "strategy": "tree"});
    c.expect(503, "post /swarms", "", j(swarm)).await;
    app.shutdown().await;
}
