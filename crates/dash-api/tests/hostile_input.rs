//! What a hostile caller controls cannot grow the metrics, crash a request
//! or slip past a header check: methods fold into a bounded label set, JSON
//! that PostgreSQL cannot give back is refused before it is stored, a row
//! that cannot be read answers 500, and a panic answers 500 and is counted.

mod common;

use common::{assert_error, metric, TestApp, TOKEN};
use reqwest::Method;
use serde_json::{json, Value};

/// The value of `label` in each sample line of `name`.
fn label_values(text: &str, name: &str, label: &str) -> Vec<String> {
    let key = format!("{label}=\"");
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| {
            let from = l.find(&key)? + key.len();
            let rest = &l[from..];
            Some(rest[..rest.find('"')?].to_string())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metric_labels_stay_bounded_whatever_a_client_sends() {
    let app = TestApp::spawn().await;
    for i in 0..40 {
        let m = Method::from_bytes(format!("XRAND{i}").as_bytes()).unwrap();
        for path in ["/api/v1/swarms".to_string(), format!("/nope/{i}")] {
            let r = app.client.request(m.clone(), format!("{}{path}", app.base));
            let r = r.send().await.expect("an answer");
            assert!(r.status().is_client_error(), "{m} {path}: {}", r.status());
        }
        let r = app.client.get(format!("{}/nope/{i}", app.base)).send();
        assert_eq!(r.await.unwrap().status(), 404);
    }
    let text = app.metrics().await;
    assert!(
        !text.contains("XRAND"),
        "a client-chosen method became a label"
    );
    assert!(
        !text.contains("/nope/"),
        "a client-chosen path became a label"
    );
    let known = [
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT", "other",
    ];
    for name in [
        "dash_http_requests_total",
        "dash_http_request_duration_seconds",
    ] {
        for m in label_values(&text, name, "method") {
            assert!(known.contains(&m.as_str()), "{name} method {m:?}");
        }
        for r in label_values(&text, name, "route") {
            assert!(r == "unmatched" || r == "/" || r.starts_with('/'), "{r}");
        }
    }
    let series = label_values(&text, "dash_http_requests_total", "method").len();
    assert!(
        series < 20,
        "{series} request series after 120 hostile requests"
    );
    app.shutdown().await;
}

/// `{"a": <n>}` with the number written as given.
fn with_number(n: &str) -> Value {
    serde_json::from_str(&format!("{{\"a\": {n}}}")).expect("valid JSON")
}

fn nested(depth: usize) -> Value {
    let mut v = json!(1);
    for _ in 0..depth {
        v = json!({ "n": v });
    }
    v
}

async fn running_agent(app: &TestApp) -> String {
    let a = app.agent(json!({"task": "t"})).await;
    let id = a["id"].as_str().unwrap().to_string();
    assert_eq!(app.act(&format!("/agents/{id}/start")).await.0, 200);
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_that_postgres_cannot_give_back_is_refused_before_storage() {
    let app = TestApp::spawn().await;
    let before = app.count("agents").await;
    for n in ["1.7976931348623157e308", "-1.7976931348623157e308"] {
        let (st, b) = app
            .post("/agents", json!({"task": "x", "metadata": with_number(n)}))
            .await;
        let msg = assert_error(st, &b, 422, "validation_failed");
        assert!(msg.contains("metadata"), "{msg}");
    }
    let worker = running_agent(&app).await;
    for route in ["complete", "fail"] {
        let body = json!({"result": {"big": with_number("1.7976931348623157e308")}});
        let (st, b) = app.post(&format!("/agents/{worker}/{route}"), body).await;
        assert_error(st, &b, 422, "validation_failed");
    }
    // Deep nesting past the parser's limit is a 400, never a crash.
    let (st, b) = app
        .post("/agents", json!({"task": "x", "metadata": nested(100)}))
        .await;
    assert_eq!(st, 201, "{b}");
    let raw = format!(
        r#"{{"task":"x","metadata":{}1{}}}"#,
        "[".repeat(300),
        "]".repeat(300)
    );
    let r = app
        .req(Method::POST, "/agents")
        .header("content-type", "application/json");
    let (st, b) = common::split(r.body(raw).send().await.unwrap()).await;
    assert_eq!(st, 400, "{b}");
    // Ordinary big and small numbers are stored and read back.
    let ok =
        json!({"big": 123456789012345678901234567890u128 as f64, "tiny": 5e-324, "max": 1e308});
    let a = app.agent(json!({"task": "x", "metadata": ok})).await;
    let (st, got) = app
        .get(&format!("/agents/{}", a["id"].as_str().unwrap()))
        .await;
    assert_eq!(st, 200, "{got}");
    assert_eq!(app.count("agents").await, before + 3);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_row_that_cannot_be_read_answers_500_not_a_dropped_connection() {
    let app = TestApp::spawn().await;
    let a = app.agent(json!({"task": "x"})).await;
    let id = a["id"].as_str().unwrap();
    let huge = format!("{{\"a\": 17976931348623157{}}}", "0".repeat(292));
    app.pg()
        .await
        .execute(
            &format!("UPDATE agents SET metadata = '{huge}'::jsonb WHERE id = $1"),
            &[&uuid::Uuid::parse_str(id).unwrap()],
        )
        .await
        .unwrap();
    let (st, b) = app.get(&format!("/agents/{id}")).await;
    assert_error(st, &b, 500, "internal");
    let (st, b) = app.get("/agents").await;
    assert_error(st, &b, 500, "internal");
    // The process is fine: the next request answers.
    assert_eq!(app.get("/swarms").await.0, 200);
    app.shutdown().await;
}

async fn boom() -> &'static str {
    panic!("a bug")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_answers_500_in_the_api_shape_and_is_counted() {
    use axum::routing::get;
    let metrics = std::sync::Arc::new(dash_api::metrics::Metrics::new());
    let router = axum::Router::new()
        .route("/boom", get(boom))
        .route("/fine", get(|| async { "fine" }))
        .layer(axum::middleware::from_fn_with_state(
            metrics.clone(),
            |axum::extract::State(m): axum::extract::State<
                std::sync::Arc<dash_api::metrics::Metrics>,
            >,
             req: axum::extract::Request,
             next: axum::middleware::Next| async move {
                dash_api::middleware::unwind_to_500(&m, next.run(req)).await
            },
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    let client = reqwest::Client::new();
    for _ in 0..2 {
        let r = client.get(format!("{base}/boom")).send().await.unwrap();
        let (st, b) = common::split(r).await;
        assert_error(st, &b, 500, "internal");
        assert!(
            !b.to_string().contains("a bug"),
            "the panic message leaked: {b}"
        );
    }
    let r = client.get(format!("{base}/fine")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        metric(&metrics.encode(), "dash_http_panics_total"),
        Some(2.0)
    );
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_types_and_the_bearer_scheme_are_case_insensitive() {
    let app = TestApp::spawn().await;
    let send = |ct: &'static str, path: String, body: Value| {
        let r = app.req(Method::POST, &path).header("content-type", ct);
        async move { common::split(r.body(body.to_string()).send().await.unwrap()).await }
    };
    let swarm = json!({"name": "ct", "strategy": "tree"});
    let (st, b) = send(
        "Application/JSON; charset=UTF-8",
        "/swarms".into(),
        swarm.clone(),
    )
    .await;
    assert_eq!(st, 201, "{b}");
    let (st, b) = send("application/vnd.dash+JSON", "/swarms".into(), swarm.clone()).await;
    assert_eq!(st, 201, "{b}");
    for bad in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/jsonx",
    ] {
        let (st, b) = send(bad, "/swarms".into(), swarm.clone()).await;
        assert_error(st, &b, 415, "unsupported_media_type");
    }
    let worker = running_agent(&app).await;
    for route in ["complete", "fail"] {
        let (st, b) = send("text/plain", format!("/agents/{worker}/{route}"), json!({})).await;
        assert_error(st, &b, 415, "unsupported_media_type");
    }
    assert_eq!(
        app.get(&format!("/agents/{worker}")).await.1["status"],
        "running"
    );
    for scheme in ["BEARER", "bEaReR", "Bearer "] {
        let r = app
            .client
            .post(app.url("/swarms"))
            .header("authorization", format!("{scheme} {TOKEN}"))
            .json(&swarm);
        assert_eq!(r.send().await.unwrap().status(), 201, "{scheme:?}");
    }
    app.shutdown().await;
}
