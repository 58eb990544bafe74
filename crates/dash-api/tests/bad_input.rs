//! Bad input gets a 4xx with a JSON error that says what is wrong, and
//! nothing is stored; hostile-looking text is stored and returned verbatim.

mod common;

use common::{assert_error, items_field, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

/// Sends a raw body with a content type; returns status and JSON body.
async fn raw(
    app: &TestApp,
    method: Method,
    path: &str,
    ctype: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let r = app
        .req(method, path)
        .header("content-type", ctype)
        .body(body)
        .send()
        .await
        .unwrap();
    common::split(r).await
}

async fn stored(app: &TestApp) -> (i64, i64, i64) {
    (
        app.count("swarms").await,
        app.count("agents").await,
        app.count("events").await,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_are_refused_and_store_nothing() {
    let app = TestApp::spawn().await;
    let s = app
        .swarm(json!({"name": "keep", "strategy": "parallel"}))
        .await;
    let sid = s["id"].as_str().unwrap().to_string();
    let a = app.agent(json!({"task": "keep"})).await;
    let aid = a["id"].as_str().unwrap().to_string();
    app.act(&format!("/agents/{aid}/start")).await;
    let before = stored(&app).await;
    let json_ct = "application/json";

    // (method, path, body, status, code, a word the message must contain)
    type Case = (Method, String, Vec<u8>, u16, &'static str, &'static str);
    let cases: Vec<Case> = vec![
        (Method::POST, "/swarms".into(), b"{\"name\": ".to_vec(), 400, "malformed_json", "EOF"),
        (Method::POST, "/swarms".into(), b"not json".to_vec(), 400, "malformed_json", "expected"),
        (Method::POST, "/swarms".into(), b"".to_vec(), 400, "malformed_json", ""),
        (Method::POST, "/swarms".into(), b"[1,2]".to_vec(), 400, "invalid_body", ""),
        (Method::POST, "/swarms".into(), br#"{"name": 5, "strategy": "tree"}"#.to_vec(), 400, "invalid_body", "name"),
        (Method::POST, "/swarms".into(), br#"{"strategy": "tree"}"#.to_vec(), 400, "invalid_body", "name"),
        (Method::POST, "/swarms".into(), br#"{"name": "x", "strategy": "star"}"#.to_vec(), 400, "invalid_body", "star"),
        (Method::POST, "/swarms".into(), br#"{"name": "x", "strategy": "tree", "colour": "red"}"#.to_vec(), 400, "invalid_body", "colour"),
        (Method::POST, "/swarms".into(), br#"{"name": "x", "strategy": "tree", "budget": {"allocated": "10"}}"#.to_vec(), 400, "invalid_body", "allocated"),
        (Method::POST, "/swarms".into(), br#"{"name": "x", "strategy": "tree", "budget": {"allocated": -1}}"#.to_vec(), 422, "validation_failed", "negative"),
        (Method::POST, "/swarms".into(), br#"{"name": "x", "strategy": "tree", "budget": {"allocated": 1e13}}"#.to_vec(), 422, "validation_failed", "allocated"),
        (Method::POST, "/swarms".into(), br#"{"name": "x", "strategy": "tree", "budget": {"allocated": 1, "currency": "dollars"}}"#.to_vec(), 422, "validation_failed", "currency"),
        (Method::POST, "/swarms".into(), br#"{"name": "x", "strategy": "tree", "budget": {"allocated": 1, "warning_threshold": 1.5}}"#.to_vec(), 422, "validation_failed", "threshold"),
        (Method::POST, "/swarms".into(), br#"{"name": "x", "strategy": "tree", "config": {"max_agents": 0}}"#.to_vec(), 422, "validation_failed", "max_agents"),
        (Method::POST, "/swarms".into(), br#"{"name": "  ", "strategy": "tree"}"#.to_vec(), 422, "validation_failed", "name"),
        (Method::POST, "/swarms".into(), format!(r#"{{"name": "{}", "strategy": "tree"}}"#, "n".repeat(201)).into_bytes(), 422, "validation_failed", "name"),
        (Method::POST, "/swarms".into(), br#"{"name": "a\u0000b", "strategy": "tree"}"#.to_vec(), 422, "validation_failed", "name"),
        (Method::POST, "/swarms".into(), br#"{"name": "ok", "task": "a\u0000b", "strategy": "tree"}"#.to_vec(), 422, "validation_failed", "task"),
        (Method::POST, "/swarms".into(), br#"{"name": "x", "strategy": "tree", "id": "nope"}"#.to_vec(), 400, "invalid_body", "id"),
        (Method::PATCH, format!("/swarms/{sid}"), br#"{"status": "active"}"#.to_vec(), 400, "invalid_body", "status"),
        (Method::PATCH, format!("/swarms/{sid}"), br#"{"name": ""}"#.to_vec(), 422, "validation_failed", "name"),
        (Method::PATCH, format!("/swarms/{sid}/budget"), br#"{"allocated": -5}"#.to_vec(), 422, "validation_failed", "allocated"),
        (Method::PATCH, format!("/swarms/{sid}/budget"), br#"{"consumed": 0}"#.to_vec(), 400, "invalid_body", "consumed"),
        (Method::POST, "/agents".into(), br#"{"task": ""}"#.to_vec(), 422, "validation_failed", "task"),
        (Method::POST, "/agents".into(), br#"{"task": "t", "max_retries": -1}"#.to_vec(), 422, "validation_failed", "max_retries"),
        (Method::POST, "/agents".into(), br#"{"task": "t", "max_retries": 1.5}"#.to_vec(), 400, "invalid_body", "max_retries"),
        (Method::POST, "/agents".into(), br#"{"task": "t", "metadata": [1]}"#.to_vec(), 422, "validation_failed", "metadata"),
        (Method::POST, "/agents".into(), br#"{"task": "t\u0000"}"#.to_vec(), 422, "validation_failed", "task"),
        (Method::POST, "/agents".into(), br#"{"task": "t", "metadata": {"k": "a\u0000b"}}"#.to_vec(), 422, "validation_failed", "metadata"),
        (Method::POST, "/agents".into(), br#"{"task": "t", "metadata": {"a\u0000": 1}}"#.to_vec(), 422, "validation_failed", "metadata"),
        (Method::POST, "/agents".into(), br#"{"task": "t", "swarm_id": 7}"#.to_vec(), 400, "invalid_body", "swarm_id"),
        (Method::POST, format!("/agents/{aid}/progress"), br#"{"cost": -0.5}"#.to_vec(), 422, "validation_failed", "cost"),
        (Method::POST, format!("/agents/{aid}/progress"), br#"{"progress": 1.5}"#.to_vec(), 422, "validation_failed", "progress"),
        (Method::POST, format!("/agents/{aid}/progress"), br#"{"message": "m\u0000"}"#.to_vec(), 422, "validation_failed", "message"),
        (Method::POST, format!("/agents/{aid}/complete"), br#"{"cost": -1}"#.to_vec(), 422, "validation_failed", "cost"),
        (Method::POST, format!("/agents/{aid}/complete"), br#"{"result": {"x": "\u0000"}}"#.to_vec(), 422, "validation_failed", "result"),
        (Method::POST, format!("/agents/{aid}/complete"), b"{oops".to_vec(), 400, "malformed_json", ""),
        (Method::POST, format!("/agents/{aid}/fail"), br#"{"reason": "x"}"#.to_vec(), 400, "invalid_body", "reason"),
        (Method::PUT, "/admin/pool".into(), br#"{"size": 0}"#.to_vec(), 422, "validation_failed", "size"),
        (Method::PUT, "/admin/pool".into(), br#"{"size": -3}"#.to_vec(), 422, "validation_failed", "size"),
    ];
    let mut wrong = Vec::new();
    for (method, path, body, status, code, word) in cases {
        let shown = String::from_utf8_lossy(&body)
            .chars()
            .take(80)
            .collect::<String>();
        let (st, e) = raw(&app, method.clone(), &path, json_ct, body).await;
        let msg = e["error"]["message"].as_str().unwrap_or_default();
        if st != status || e["error"]["code"] != code || msg.is_empty() || !msg.contains(word) {
            wrong.push(format!(
                "{method} {path} {shown}\n  want {status} {code} ~{word:?}\n  got  {st} {e}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // A body that is not JSON at all.
    let (st, e) = raw(
        &app,
        Method::POST,
        "/swarms",
        "text/plain",
        b"name=x".to_vec(),
    )
    .await;
    assert_error(st, &e, 415, "unsupported_media_type");

    // Nothing was stored or changed by any of it.
    assert_eq!(stored(&app).await, before);
    let (_, got) = app.get(&format!("/agents/{aid}")).await;
    assert_eq!(
        (got["status"].as_str(), got["cost"].as_f64()),
        (Some("running"), Some(0.0))
    );
    let (_, got) = app.get(&format!("/swarms/{sid}")).await;
    assert_eq!(got, s);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_bad_ids_and_unknown_routes() {
    let app = TestApp::spawn().await;
    // > 1 MiB: 413 in the API's shape, with or without a Content-Length.
    let big = json!({"task": "x".repeat(1 << 20), "metadata": {}});
    let (st, e) = app.post("/agents", big.clone()).await;
    let msg = assert_error(st, &e, 413, "payload_too_large");
    assert!(msg.contains("1 MiB"), "{msg}");
    let bytes = serde_json::to_vec(&big).unwrap();
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        bytes.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    let r = app
        .req(Method::POST, "/agents")
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    let (st, e) = common::split(r).await;
    assert_error(st, &e, 413, "payload_too_large");
    let s = app.swarm(json!({"name": "s", "strategy": "tree"})).await;
    let sid = s["id"].as_str().unwrap();
    let (st, e) = app
        .patch(
            &format!("/swarms/{sid}"),
            json!({"task": "y".repeat(1 << 20)}),
        )
        .await;
    assert_error(st, &e, 413, "payload_too_large");
    // Just under the limit is fine (the field limit then speaks).
    let (st, e) = app
        .post("/agents", json!({"task": "z".repeat(100_001)}))
        .await;
    let msg = assert_error(st, &e, 422, "validation_failed");
    assert!(msg.contains("task"), "{msg}");

    // Invalid ids in the path: 400 naming the problem, for every verb.
    for (m, path) in [
        (Method::GET, "/swarms/not-a-uuid"),
        (Method::PATCH, "/swarms/1234"),
        (Method::DELETE, "/swarms/zzz"),
        (Method::POST, "/swarms/abc/pause"),
        (Method::GET, "/agents/0190a0a0-0000-7000-8000-00000000000"),
        (Method::POST, "/agents/%27%20OR%201=1/kill"),
        (Method::DELETE, "/agents/..."),
    ] {
        let r = app
            .req(m.clone(), path)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        let (st, e) = common::split(r).await;
        let msg = assert_error(st, &e, 400, "invalid_path");
        assert!(
            msg.to_lowercase().contains("uuid") || msg.contains("id"),
            "{m} {path}: {msg}"
        );
    }
    // Out-of-range and malformed query values.
    for q in ["/agents?limit=1000", "/swarms?limit=0", "/events?limit=-2"] {
        let (st, e) = app.get(q).await;
        let msg = assert_error(st, &e, 422, "validation_failed");
        assert!(msg.contains("limit"), "{q}: {msg}");
    }
    let (st, e) = app.get("/agents?swarm_id=%00").await;
    assert_error(st, &e, 400, "invalid_query");
    let (st, e) = app.get("/agents?status=%00").await;
    assert_error(st, &e, 400, "invalid_query");
    // Unknown routes and methods: JSON errors too.
    let (st, e) = app.get("/nothing-here").await;
    assert_error(st, &e, 404, "route_not_found");
    let r = app.req(Method::PUT, "/swarms").send().await.unwrap();
    let (st, e) = common::split(r).await;
    assert_error(st, &e, 405, "method_not_allowed");
    assert_eq!(app.count("agents").await, 0);
    assert_eq!(app.count("swarms").await, 1);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_and_html_text_is_stored_and_returned_verbatim() {
    let app = TestApp::spawn().await;
    let nasty = [
        "Robert'); DROP TABLE swarms;--",
        "<script>alert('x')</script>",
        "\" OR 1=1 -- ",
        "$1 $$ \\x00 %s {{7*7}}",
        "名前 🐝 ünïcödé",
    ];
    for text in nasty {
        let s = app
            .swarm(json!({"name": text, "task": text, "strategy": "parallel",
                          "config": {"model": text}}))
            .await;
        assert_eq!(s["name"], text);
        assert_eq!(s["task"], text);
        assert_eq!(s["config"]["model"], text);
        let sid = s["id"].as_str().unwrap();
        let a = app
            .agent(json!({"swarm_id": sid, "task": text, "model": text,
                          "metadata": {text: text, "nested": [text]}}))
            .await;
        let (_, got) = app
            .get(&format!("/agents/{}", a["id"].as_str().unwrap()))
            .await;
        assert_eq!(got["task"], text);
        assert_eq!(got["model"], text);
        assert_eq!(got["metadata"], json!({text: text, "nested": [text]}));
        let aid = a["id"].as_str().unwrap();
        app.act(&format!("/agents/{aid}/start")).await;
        let (st, f) = app
            .post(&format!("/agents/{aid}/fail"), json!({"error": text}))
            .await;
        assert_eq!(st, 200, "{f}");
        assert_eq!(f["last_error"], text);
        let (_, got) = app.get(&format!("/swarms/{sid}")).await;
        assert_eq!(got["name"], text);
    }
    let (_, list) = app.get("/swarms").await;
    let names = items_field(&list, "name");
    assert_eq!(names, nasty.iter().map(|t| json!(t)).collect::<Vec<_>>());
    // The tables are all still there.
    assert_eq!(app.count("swarms").await, nasty.len() as i64);
    // JSON responses are never served as HTML.
    let r = app.client.get(app.url("/swarms")).send().await.unwrap();
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    app.shutdown().await;
}
