//! The OpenAPI document matches the live router: every documented
//! operation exists (under `/api/v1` and, identically, under `/api`), every
//! other method on a documented path is 405, and each operation answers a
//! success status it documents.

mod common;

use common::{TestApp, TOKEN};
use dash_api::openapi::operations;
use reqwest::Method;
use serde_json::{json, Value};

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

fn method(m: &str) -> Method {
    Method::from_bytes(m.to_uppercase().as_bytes()).unwrap()
}

/// Sends one request under `prefix` and returns (status, body). The body of
/// a stream is not read.
async fn send(
    app: &TestApp,
    prefix: &str,
    m: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut rb = app
        .client
        .request(method(m), format!("{}{prefix}{path}", app.base))
        .bearer_auth(TOKEN);
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let r = rb.send().await.unwrap();
    if path.ends_with("/stream") && m == "get" {
        return (r.status().as_u16(), Value::Null);
    }
    common::split(r).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_is_routed_under_both_prefixes() {
    let app = TestApp::spawn().await;
    let random = uuid::Uuid::new_v4().to_string();
    let (_, doc) = app.get("/openapi.json").await;
    let ops = operations();
    for (m, path) in &ops {
        let (m, path) = (m.as_str(), path.as_str());
        let concrete = path.replace("{id}", &random);
        // A body that is valid JSON but wrong for every schema: nothing is created.
        let request = doc["paths"][path][m].get("requestBody");
        let body = request.map(|_| json!({"__not_a_field": true}));
        let mut answers = Vec::new();
        for prefix in ["/api/v1", "/api"] {
            let (st, b) = send(&app, prefix, m, &concrete, body.clone()).await;
            assert_ne!(
                b["error"]["code"], "route_not_found",
                "{m} {prefix}{path}: {b}"
            );
            if st == 404 {
                // Only "that object does not exist", never "no such route".
                assert_eq!(b["error"]["code"], "not_found", "{m} {prefix}{path}");
            }
            assert_ne!(st, 405, "{m} {prefix}{path}: {b}");
            assert!(st < 500, "{m} {prefix}{path}: {st} {b}");
            answers.push((st, b["error"]["code"].clone()));
        }
        assert_eq!(
            answers[0], answers[1],
            "{m} {path}: /api differs from /api/v1"
        );
        // Methods the document does not list for this path are 405.
        for other in METHODS {
            if ops.iter().any(|o| o.1 == path && o.0 == other) {
                continue;
            }
            let (st, b) = send(&app, "/api/v1", other, &concrete, None).await;
            assert_eq!(
                st, 405,
                "{other} {path} is not documented but answered {st}: {b}"
            );
            assert_eq!(b["error"]["code"], "method_not_allowed", "{other} {path}");
        }
    }
    assert_eq!(app.count("swarms").await, 0);
    assert_eq!(app.count("agents").await, 0);

    // The served document lists exactly these operations, plus the root
    // paths (served outside /api/v1); each request body is a component.
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    let mut listed = 0;
    for (p, item) in paths {
        if dash_api::openapi::ROOT_PATHS.contains(&p.as_str()) {
            continue;
        }
        for (m, op) in item.as_object().unwrap() {
            listed += 1;
            assert!(ops.iter().any(|o| o.1 == *p && o.0 == *m), "{m} {p}");
            let ok = (op["responses"].as_object().unwrap().keys()).any(|s| s.starts_with('2'));
            assert!(ok, "{m} {p}: no success documented");
            let schema = &op["requestBody"]["content"]["application/json"]["schema"];
            let named = (schema.get("$ref").into_iter())
                .chain(
                    schema["oneOf"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|s| s.get("$ref")),
                )
                .filter_map(Value::as_str)
                .collect::<Vec<_>>();
            for r in named {
                let name = r.trim_start_matches("#/components/schemas/");
                assert!(doc["components"]["schemas"].get(name).is_some(), "{name}");
            }
        }
    }
    assert_eq!(listed, ops.len());
    app.shutdown().await;
}

/// Creates what `op` needs and returns (path with ids, body).
async fn prepare(app: &TestApp, m: &str, path: &str) -> (String, Option<Value>) {
    let swarm = |status: &'static str| async move {
        let s = app.swarm(json!({"name": "s", "strategy": "tree"})).await;
        let id = s["id"].as_str().unwrap().to_string();
        if status == "paused" {
            app.act(&format!("/swarms/{id}/pause")).await;
        }
        id
    };
    let agent = |steps: &'static [&'static str]| async move {
        let a = app.agent(json!({"task": "t"})).await;
        let id = a["id"].as_str().unwrap().to_string();
        for s in steps {
            app.act(&format!("/agents/{id}/{s}")).await;
        }
        id
    };
    let id = match (m, path) {
        (_, p) if !p.contains("{id}") => String::new(),
        ("post", "/swarms/{id}/resume") => swarm("paused").await,
        (_, p) if p.starts_with("/swarms/") => swarm("active").await,
        ("post", "/agents/{id}/resume") => agent(&["start", "pause"]).await,
        ("post", p)
            if ["/progress", "/complete", "/fail", "/pause"]
                .iter()
                .any(|s| p.ends_with(s)) =>
        {
            agent(&["start"]).await
        }
        _ => agent(&[]).await,
    };
    let body = match (m, path) {
        ("post", "/swarms") => Some(json!({"name": "new", "strategy": "parallel"})),
        ("patch", "/swarms/{id}") => Some(json!({"task": "changed"})),
        ("patch", "/swarms/{id}/budget") => Some(json!({"allocated": 5.0})),
        ("post", "/agents") => Some(json!({"task": "new"})),
        ("post", "/agents/{id}/progress") => Some(json!({"progress": 0.5})),
        ("put", "/admin/pool") => Some(json!({"size": 20})),
        ("put", "/admin/maintenance") => Some(json!({"enabled": false})),
        _ => None,
    };
    (path.replace("{id}", &id), body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_answers_its_documented_success_status() {
    let app = TestApp::spawn().await;
    let (_, doc) = app.get("/openapi.json").await;
    for (m, path) in operations() {
        let (m, path) = (m.as_str(), path.as_str());
        let (concrete, body) = prepare(&app, m, path).await;
        let (st, b) = send(&app, "/api/v1", m, &concrete, body).await;
        assert!(st < 300, "{m} {path}: {st} {b}");
        let documented = &doc["paths"][path][m]["responses"][st.to_string()];
        assert!(!documented.is_null(), "{m} {path}: {st} is not documented");
    }
    app.shutdown().await;
}
