//! The metrics port: every name DESIGN.md fixes is exported, route labels
//! are route templates (never ids), by-status gauges follow the data, and a
//! live pool resize shows in `pg_pool_max_size`; responses carry request ids.

mod common;

use std::time::Duration;

use common::{metric, metric_sum, TestApp};
use serde_json::json;

/// Every metric name in DESIGN.md, as a sample name that must appear.
const SAMPLES: &[&str] = &[
    "pg_up",
    "pg_pool_max_size",
    "pg_pool_size",
    "pg_pool_idle",
    "pg_pool_in_use",
    "pg_pool_waiting",
    "pg_pool_acquire_timeouts_total",
    "pg_pool_acquire_seconds_count",
    "pg_pool_acquire_seconds_bucket",
    "pg_connection_errors_total",
    "pg_failovers_total",
    "pg_query_seconds_count",
    "pg_query_seconds_bucket",
    "dash_http_requests_total",
    "dash_http_request_duration_seconds_count",
    "dash_http_request_duration_seconds_bucket",
    "dash_agents",
    "dash_swarms",
];

fn has_sample(text: &str, name: &str) -> bool {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .any(|l| l.starts_with(&format!("{name} ")) || l.starts_with(&format!("{name}{{")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_designed_metric_is_exported_with_sane_values() {
    let app = TestApp::spawn().await;
    let s = app.swarm(json!({"name": "m", "strategy": "tree"})).await;
    let sid = s["id"].as_str().unwrap().to_string();
    for _ in 0..3 {
        app.agent(json!({"swarm_id": sid, "task": "t"})).await;
    }
    app.get(&format!("/swarms/{sid}")).await;
    app.get("/swarms/0190a0a0-0000-7000-8000-000000000000")
        .await;
    app.get("/no/such/route").await;

    // dash_agents and dash_swarms are refreshed in the background: bounded wait.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let text = loop {
        let text = app.metrics().await;
        if metric_sum(&text, "dash_agents", &[r#"status="pending""#]) == Some(3.0) {
            break text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "dash_agents never showed 3 pending:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let missing: Vec<_> = SAMPLES.iter().filter(|n| !has_sample(&text, n)).collect();
    assert!(missing.is_empty(), "missing {missing:?} in\n{text}");

    assert_eq!(metric(&text, "pg_up"), Some(1.0));
    assert_eq!(metric(&text, "pg_pool_max_size"), Some(20.0));
    let size = metric(&text, "pg_pool_size").unwrap();
    let idle = metric(&text, "pg_pool_idle").unwrap();
    let in_use = metric(&text, "pg_pool_in_use").unwrap();
    assert!((1.0..=20.0).contains(&size), "{size}");
    assert_eq!(idle + in_use, size);
    assert_eq!(metric(&text, "pg_pool_waiting"), Some(0.0));
    assert!(metric(&text, "pg_query_seconds_count").unwrap() > 0.0);
    assert!(metric(&text, "pg_pool_acquire_seconds_count").unwrap() > 0.0);
    assert_eq!(metric(&text, "pg_failovers_total"), Some(0.0));
    assert_eq!(
        metric_sum(&text, "pg_connection_errors_total", &[]),
        Some(0.0)
    );
    assert_eq!(
        metric_sum(&text, "dash_swarms", &[r#"status="active""#]),
        Some(1.0)
    );
    assert_eq!(
        metric_sum(&text, "dash_swarms", &[r#"status="destroyed""#]),
        Some(0.0)
    );
    assert_eq!(
        metric_sum(&text, "dash_agents", &[r#"status="running""#]),
        Some(0.0)
    );

    // Route labels are templates: ids never become label values.
    let swarm_get = [r#"method="GET""#, r#"route="/api/v1/swarms/{id}""#];
    assert_eq!(
        metric_sum(
            &text,
            "dash_http_requests_total",
            &[&swarm_get[..], &[r#"status="200""#]].concat()
        ),
        Some(1.0)
    );
    assert_eq!(
        metric_sum(
            &text,
            "dash_http_requests_total",
            &[&swarm_get[..], &[r#"status="404""#]].concat()
        ),
        Some(1.0)
    );
    assert_eq!(
        metric_sum(
            &text,
            "dash_http_requests_total",
            &[
                r#"method="POST""#,
                r#"route="/api/v1/agents""#,
                r#"status="201""#
            ]
        ),
        Some(3.0)
    );
    assert!(
        metric_sum(
            &text,
            "dash_http_request_duration_seconds_count",
            &swarm_get
        )
        .unwrap()
            >= 2.0
    );
    assert!(!text.contains(&sid), "an id leaked into a label");
    assert!(!text.contains("0190a0a0"), "an id leaked into a label");
    assert!(
        !text.contains("/no/such/route"),
        "an unmatched path leaked into a label"
    );
    assert!(!text.contains(app.node.password()), "the password leaked");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_and_a_live_pool_resize() {
    let app = TestApp::spawn().await;
    // Every response carries a request id; a sane one from the client is kept.
    let r = app.client.get(app.url("/swarms")).send().await.unwrap();
    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(!id.is_empty());
    let r = app
        .client
        .get(app.url("/swarms"))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "trace-me-42");
    let r = app
        .client
        .get(app.url("/nope"))
        .header("x-request-id", "bad id with spaces")
        .send()
        .await
        .unwrap();
    assert_ne!(r.headers()["x-request-id"], "bad id with spaces");

    let text = app.metrics().await;
    assert_eq!(metric(&text, "pg_pool_max_size"), Some(20.0));
    for n in [5usize, 37, 1] {
        let r = app
            .req(reqwest::Method::PUT, "/admin/pool")
            .json(&json!({"size": n}))
            .send()
            .await
            .unwrap();
        let (st, b) = common::split(r).await;
        assert_eq!(st, 200, "{b}");
        assert_eq!(b["pool"]["max_size"], n);
        let text = app.metrics().await;
        assert_eq!(
            metric(&text, "pg_pool_max_size"),
            Some(n as f64),
            "after resizing to {n}"
        );
        assert!(metric(&text, "pg_pool_size").unwrap() <= n as f64);
        let (st, b) = app.get("/admin/pool").await;
        assert_eq!(st, 401, "reading the pool needs a token: {b}");
        let r = app
            .req(reqwest::Method::GET, "/admin/pool")
            .send()
            .await
            .unwrap();
        let (_, b) = common::split(r).await;
        assert_eq!(b["pool"]["max_size"], n);
    }
    // The resized pool still serves concurrent work (size 1: calls take turns).
    let calls = (0..6).map(|i| {
        let app = &app;
        async move {
            app.post(
                "/swarms",
                json!({"name": format!("p{i}"), "strategy": "tree"}),
            )
            .await
            .0
        }
    });
    let statuses = futures::future::join_all(calls).await;
    assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");
    let text = app.metrics().await;
    assert!(metric(&text, "pg_pool_size").unwrap() <= 1.0);
    // Out-of-range sizes are refused and change nothing.
    for bad in [
        json!({"size": 0}),
        json!({"size": 1001}),
        json!({"size": "9"}),
    ] {
        let r = app
            .req(reqwest::Method::PUT, "/admin/pool")
            .json(&bad)
            .send()
            .await
            .unwrap();
        let (st, _) = common::split(r).await;
        assert!(st == 400 || st == 422, "{bad}: {st}");
    }
    assert_eq!(metric(&app.metrics().await, "pg_pool_max_size"), Some(1.0));
    let r = app.client.get(&app.metrics_url).send().await.unwrap();
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(
        ct.contains("text/plain") || ct.contains("openmetrics"),
        "{ct}"
    );
    app.shutdown().await;
}
