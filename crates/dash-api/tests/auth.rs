//! Bearer-token auth: mutating calls need a token (401 JSON with
//! `WWW-Authenticate` otherwise), reads are open unless `auth_reads`, probes
//! and metrics never need one, admin calls always do.

mod common;

use common::{assert_error, TestApp, TOKEN};
use reqwest::Method;
use serde_json::json;

fn method(m: &str) -> Method {
    Method::from_bytes(m.to_uppercase().as_bytes()).unwrap()
}

/// Sends `m path` with an optional token and a small JSON body.
async fn call(
    app: &TestApp,
    m: Method,
    path: &str,
    token: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
    let mut rb = app
        .client
        .request(m, app.url(path))
        .json(&json!({"name": "n", "strategy": "tree", "task": "t"}));
    if let Some(t) = token {
        rb = rb.bearer_auth(t);
    }
    let r = rb.send().await.unwrap();
    let h = r.headers().clone();
    let (s, b) = common::split(r).await;
    (s, h, b)
}

/// Probes and metrics never need a token.
async fn assert_probes_and_metrics_open(app: &TestApp) {
    for path in ["/livez", "/health", "/ready"] {
        let (st, _) = app.get_path(path).await;
        assert_eq!(st, 200, "{path}");
    }
    let r = app.client.get(&app.metrics_url).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutations_need_a_valid_token_and_reads_are_open() {
    let app = TestApp::spawn().await;
    let s = app.swarm(json!({"name": "s", "strategy": "tree"})).await;
    let sid = s["id"].as_str().unwrap().to_string();

    // Every mutating operation refuses a missing or wrong token, before doing anything.
    for (m, path) in dash_api::openapi::operations()
        .into_iter()
        .filter(|o| o.0 != "get")
    {
        let (m, path) = (m.as_str(), path.replace("{id}", &sid));
        for token in [None, Some("wrong-token"), Some("")] {
            let (st, h, e) = call(&app, method(m), &path, token).await;
            let msg = assert_error(st, &e, 401, "unauthorized");
            assert!(
                msg.contains("token") || msg.contains("Authorization"),
                "{msg}"
            );
            assert_eq!(h["www-authenticate"], "Bearer", "{m} {path}");
        }
    }
    // A token in another scheme or header is not a bearer token.
    let r = app
        .client
        .post(app.url("/swarms"))
        .header("authorization", format!("Basic {TOKEN}"))
        .json(&json!({"name": "x", "strategy": "tree"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = app
        .client
        .post(app.url("/swarms"))
        .header("x-api-key", TOKEN)
        .json(&json!({"name": "x", "strategy": "tree"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        app.count("swarms").await,
        1,
        "a refused call stored nothing"
    );
    let (_, got) = app.get(&format!("/swarms/{sid}")).await;
    assert_eq!(got, s, "and changed nothing");

    // The right token works, under /api/v1 and /api, whatever the scheme's case.
    let (st, _, b) = call(&app, Method::POST, "/swarms", Some(TOKEN)).await;
    assert_eq!(st, 201, "{b}");
    let r = app
        .client
        .post(format!("{}/api/swarms", app.base))
        .header("authorization", format!("bearer {TOKEN}"))
        .json(&json!({"name": "y", "strategy": "tree"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    // Reads are open.
    for path in [
        "/swarms",
        &format!("/swarms/{sid}"),
        "/agents",
        "/events",
        "/openapi.json",
    ] {
        let (st, _, b) = call(&app, Method::GET, path, None).await;
        assert_eq!(st, 200, "{path}: {b}");
    }
    // Admin calls need a token even to read.
    for (m, path) in [("get", "/admin/pool"), ("get", "/admin/maintenance")] {
        let (st, h, e) = call(&app, method(m), path, None).await;
        assert_error(st, &e, 401, "unauthorized");
        assert_eq!(h["www-authenticate"], "Bearer");
        let (st, _, b) = call(&app, method(m), path, Some(TOKEN)).await;
        assert_eq!(st, 200, "{path}: {b}");
    }
    assert_probes_and_metrics_open(&app).await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_reads_gates_reads_but_not_probes() {
    let app = TestApp::spawn_with(|s| s.auth_reads = true).await;
    for path in [
        "/swarms",
        "/agents",
        "/events",
        "/events/stream",
        "/openapi.json",
        "/admin/pool",
    ] {
        let (st, h, e) = call(&app, Method::GET, path, None).await;
        assert_error(st, &e, 401, "unauthorized");
        assert_eq!(h["www-authenticate"], "Bearer", "{path}");
        let (st, _, e) = call(&app, Method::GET, path, Some("nope")).await;
        assert_error(st, &e, 401, "unauthorized");
    }
    let (st, _, b) = call(&app, Method::GET, "/swarms", Some(TOKEN)).await;
    assert_eq!(st, 200, "{b}");
    assert_probes_and_metrics_open(&app).await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_tokens_refuses_every_change_and_says_why() {
    let app = TestApp::spawn_with(|s| s.tokens.clear()).await;
    let (st, h, e) = call(&app, Method::POST, "/swarms", Some(TOKEN)).await;
    let msg = assert_error(st, &e, 401, "unauthorized");
    assert!(msg.contains("DASH_API_TOKENS"), "{msg}");
    assert_eq!(h["www-authenticate"], "Bearer");
    let (st, _, e) = call(&app, Method::POST, "/swarms", None).await;
    assert_error(st, &e, 401, "unauthorized");
    let (st, _, _) = call(&app, Method::GET, "/swarms", None).await;
    assert_eq!(st, 200);
    assert_eq!(app.count("swarms").await, 0);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_hide_database_addresses_from_anonymous_callers_when_reads_need_a_token() {
    let app = TestApp::spawn_with(|s| s.auth_reads = true).await;
    let port = app.node.port().to_string();
    for path in ["/health", "/ready"] {
        let (st, b) = app.get_path(path).await;
        assert_eq!(st, 200, "{path}: {b}");
        let text = b.to_string();
        assert!(!text.contains(&port), "{path} shows the port: {text}");
        assert!(!text.contains("127.0.0.1"), "{path} shows the host: {text}");
        let r = app.client.get(format!("{}{path}", app.base));
        let (st, b) = common::split(r.bearer_auth(TOKEN).send().await.unwrap()).await;
        assert_eq!(st, 200, "{path}: {b}");
        assert!(b.to_string().contains(&port), "{path} with a token: {b}");
    }
    // Without DASH_AUTH_READS the probes keep their detail for everyone.
    app.shutdown().await;
    let open = TestApp::spawn().await;
    let (_, b) = open.get_path("/health").await;
    assert!(b.to_string().contains(&open.node.port().to_string()), "{b}");
    open.shutdown().await;
}
