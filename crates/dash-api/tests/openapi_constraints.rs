//! The constraints the served OpenAPI document states are the ones the
//! server enforces: a sample of lengths, ranges and patterns is read from
//! the document and tried at and just past its edge; integral numbers are
//! integers; `null` is accepted exactly where the document allows it; reads
//! under `/api/v1` are documented as open; a replayed create's 200 is documented.

mod common;

use common::{TestApp, TOKEN};
use serde_json::{json, Value};

/// `s`, or the schema it names: through a `$ref` and past the `null` of a
/// nullable `oneOf`.
fn resolve<'a>(doc: &'a Value, s: &'a Value) -> &'a Value {
    if let Some(r) = s["$ref"].as_str() {
        let name = r.trim_start_matches("#/components/schemas/");
        return resolve(doc, &doc["components"]["schemas"][name]);
    }
    match s["oneOf"].as_array().map(|o| o.as_slice()) {
        Some([null, other]) if null["type"] == "null" => resolve(doc, other),
        _ => s,
    }
}

/// Whether `s` accepts `null`.
fn nullable(s: &Value) -> bool {
    let listed = |key: &str, v: &Value| s[key].as_array().is_some_and(|t| t.contains(v));
    listed("type", &json!("null"))
        || listed("enum", &Value::Null)
        || listed("oneOf", &json!({"type": "null"}))
}

/// The schema of `prop` in component `schema` (a dotted path for nesting).
fn prop<'a>(doc: &'a Value, schema: &str, path: &str) -> &'a Value {
    let mut s = &doc["components"]["schemas"][schema];
    for p in path.split('.') {
        s = resolve(doc, &resolve(doc, s)["properties"][p]);
    }
    assert!(!s.is_null(), "{schema}.{path} is not documented");
    s
}

fn num(s: &Value, key: &str) -> i64 {
    s[key].as_f64().unwrap_or_else(|| panic!("no {key} in {s}")) as i64
}

fn swarm_with(field: &str, value: Value) -> Value {
    let mut body = json!({"name": "edge", "strategy": "tree"});
    match field.split_once('.') {
        Some((outer, inner)) => body[outer] = json!({ inner: value }),
        None => body[field] = value,
    }
    if field.starts_with("budget.") && field != "budget.allocated" {
        body["budget"]["allocated"] = json!(10);
    }
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documented_constraints_match_what_the_server_enforces() {
    let app = TestApp::spawn().await;
    let (_, doc) = app.get("/openapi.json").await;

    // Lengths.
    let name = prop(&doc, "NewSwarm", "name");
    let (min, max) = (num(name, "minLength"), num(name, "maxLength"));
    for (len, ok) in [(max, true), (max + 1, false), (min, true), (min - 1, false)] {
        let (st, b) = app
            .post(
                "/swarms",
                swarm_with("name", json!("n".repeat(len as usize))),
            )
            .await;
        assert_eq!(st == 201, ok, "name of {len}: {st} {b}");
    }
    let model = prop(&doc, "NewAgent", "model");
    let max = num(model, "maxLength") as usize;
    for (len, ok) in [(max, true), (max + 1, false)] {
        let (st, b) = app
            .post("/agents", json!({"task": "t", "model": "m".repeat(len)}))
            .await;
        assert_eq!(st == 201, ok, "model of {len}: {st} {b}");
    }
    let task = prop(&doc, "NewAgent", "task");
    assert!(num(task, "minLength") >= 1, "{task}");
    assert_eq!(app.post("/agents", json!({"task": ""})).await.0, 422);

    // Ranges, and integral numbers written as 5.0 are integers.
    let agents = prop(&doc, "NewSwarm", "config.max_agents");
    let (lo, hi) = (num(agents, "minimum"), num(agents, "maximum"));
    for (v, ok) in [
        (json!(lo), true),
        (json!(hi), true),
        (json!(lo - 1), false),
        (json!(hi + 1), false),
        (json!(5.0), true),
        (json!(5.5), false),
    ] {
        let (st, b) = app
            .post("/swarms", swarm_with("config.max_agents", v.clone()))
            .await;
        assert_eq!(st == 201, ok, "max_agents {v}: {st} {b}");
    }
    let retries = prop(&doc, "NewAgent", "max_retries");
    let (lo, hi) = (num(retries, "minimum"), num(retries, "maximum"));
    for (v, ok) in [
        (json!(hi), true),
        (json!(lo - 1), false),
        (json!(hi + 1), false),
        (json!(3.0), true),
    ] {
        let (st, b) = app
            .post("/agents", json!({"task": "t", "max_retries": v}))
            .await;
        assert_eq!(st == 201, ok, "max_retries {v}: {st} {b}");
    }
    let money = prop(&doc, "NewSwarm", "budget.allocated");
    let top = money["maximum"]
        .as_f64()
        .expect("allocated documents its maximum");
    for (v, ok) in [
        (top, true),
        (top * 1.001, false),
        (0.0, true),
        (-0.5, false),
    ] {
        let (st, b) = app
            .post("/swarms", swarm_with("budget.allocated", json!(v)))
            .await;
        assert_eq!(st == 201, ok, "allocated {v}: {st} {b}");
    }
    let unlimited = money["description"].as_str().unwrap_or_default();
    assert!(
        unlimited.contains("0") && unlimited.contains("unlimited"),
        "{money}"
    );

    // Patterns.
    for schema in ["NewSwarm", "BudgetPatch"] {
        let path = if schema == "NewSwarm" {
            "budget.currency"
        } else {
            "currency"
        };
        assert_eq!(
            prop(&doc, schema, path)["pattern"],
            "^[A-Z]{3}$",
            "{schema}"
        );
    }
    let (st, _) = app
        .post("/swarms", swarm_with("budget.currency", json!("usd")))
        .await;
    assert_eq!(st, 422);

    // null: refused for what is required, accepted where documented.
    let (st, b) = app.post("/swarms", swarm_with("name", Value::Null)).await;
    assert_eq!(st, 400, "{b}");
    let new_swarm = &doc["components"]["schemas"]["NewSwarm"];
    for (field, p) in new_swarm["properties"].as_object().unwrap() {
        let nullable = nullable(p);
        let (st, b) = app.post("/swarms", swarm_with(field, Value::Null)).await;
        assert_eq!(st == 201, nullable, "null {field} ({p}): {st} {b}");
    }
    app.shutdown().await;
}

/// The document's paths under `/api/v1` (the root paths, which never need
/// a token, have a server of their own).
fn api_paths(doc: &Value) -> impl Iterator<Item = (&String, &Value)> {
    let paths = doc["paths"].as_object().unwrap();
    paths
        .iter()
        .filter(|(_, item)| item.get("servers").is_none())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_documented_as_open_and_replays_as_200() {
    let app = TestApp::spawn().await;
    let (_, doc) = app.get("/openapi.json").await;
    for (path, ops) in api_paths(&doc) {
        for (m, op) in ops
            .as_object()
            .unwrap()
            .iter()
            .filter(|(m, _)| *m != "servers")
        {
            let open = op.get("security") == Some(&json!([]));
            let should = m == "get" && !path.starts_with("/admin");
            assert_eq!(
                open,
                should,
                "{m} {path}: security {:?}",
                op.get("security")
            );
        }
    }
    for path in ["/swarms", "/agents"] {
        let replay = &doc["paths"][path]["post"]["responses"]["200"];
        assert!(
            replay["description"]
                .as_str()
                .is_some_and(|d| d.contains("Idempotency-Key")),
            "{path}: {replay}"
        );
    }
    app.shutdown().await;

    // With DASH_AUTH_READS every operation needs the token, and says so.
    let app = TestApp::spawn_with(|s| s.auth_reads = true).await;
    let r = app.client.get(app.url("/openapi.json")).bearer_auth(TOKEN);
    let (_, doc) = common::split(r.send().await.unwrap()).await;
    for (path, ops) in api_paths(&doc) {
        for (m, op) in ops.as_object().unwrap() {
            assert_ne!(op.get("security"), Some(&json!([])), "{m} {path}");
        }
    }
    app.shutdown().await;
}

/// Every documented `limit` of a list is the server's: its maximum is
/// accepted, one past it refused; and the event queries are documented.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documented_limits_and_event_queries_are_the_servers() {
    let app = TestApp::spawn().await;
    let (_, doc) = app.get("/openapi.json").await;
    let mut checked = Vec::new();
    for path in ["/swarms", "/agents", "/events"] {
        let params = doc["paths"][path]["get"]["parameters"].as_array().cloned();
        let params = params.unwrap_or_else(|| panic!("{path}: no parameters documented"));
        let limit = (params.iter())
            .find(|p| p["name"] == "limit")
            .unwrap_or_else(|| panic!("{path}: no limit documented"));
        let max = limit["schema"]["maximum"].as_i64().expect("a maximum");
        assert_eq!(
            app.get(&format!("{path}?limit={max}")).await.0,
            200,
            "{path}"
        );
        let (st, _) = app.get(&format!("{path}?limit={}", max + 1)).await;
        assert!(
            (400..500).contains(&st),
            "{path}: limit {} answered {st}",
            max + 1
        );
        checked.push(path);
    }
    let names: Vec<String> = (doc["paths"]["/events"]["get"]["parameters"]
        .as_array()
        .unwrap())
    .iter()
    .map(|p| p["name"].as_str().unwrap().to_string())
    .collect();
    for want in ["after", "limit", "swarm_id", "agent_id", "newest"] {
        assert!(
            names.iter().any(|n| n == want),
            "/events lacks {want}: {names:?}"
        );
    }
    let stream = &doc["paths"]["/events/stream"]["get"]["parameters"];
    assert!(stream.to_string().contains("Last-Event-ID"), "{stream}");
    assert_eq!(checked.len(), 3);
    app.shutdown().await;
}
