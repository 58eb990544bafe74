//! Lists: limit bounds (1..=500, default 50), an opaque cursor that visits
//! every row exactly once in either sort order, and refusals of bad input.

mod common;

use std::collections::HashSet;

use common::{assert_error, TestApp};
use serde_json::{json, Value};

/// Spawns `n` agents, a few at a time; returns their ids.
async fn spawn_many(app: &TestApp, n: usize, swarm: Option<&str>) -> Vec<String> {
    let mut ids = Vec::new();
    for chunk in (0..n).collect::<Vec<_>>().chunks(6) {
        let calls = chunk.iter().map(|i| async move {
            let mut body = json!({"task": format!("task {i}")});
            if let Some(s) = swarm {
                body["swarm_id"] = json!(s);
            }
            app.agent(body).await
        });
        for a in futures::future::join_all(calls).await {
            ids.push(a["id"].as_str().unwrap().to_string());
        }
    }
    ids
}

/// Follows `next_cursor` from `first` to the end; returns the items in order.
async fn walk(app: &TestApp, first: &str) -> Vec<Value> {
    walk_from(app, first, None).await
}

/// [`walk`], starting at `cursor`.
async fn walk_from(app: &TestApp, first: &str, cursor: Option<&str>) -> Vec<Value> {
    let sep = if first.contains('?') { '&' } else { '?' };
    let mut out = Vec::new();
    let mut url = match cursor {
        Some(c) => format!("{first}{sep}cursor={c}"),
        None => first.to_string(),
    };
    for _ in 0..1000 {
        let (st, page) = app.get(&url).await;
        assert_eq!(st, 200, "{url}: {page}");
        out.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => url = format!("{first}{sep}cursor={c}"),
            None => return out,
        }
    }
    panic!("the walk never ended");
}

fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_default_and_bounds() {
    let app = TestApp::spawn().await;
    let created = spawn_many(&app, 120, None).await;

    let (st, page) = app.get("/agents").await;
    assert_eq!(st, 200);
    assert_eq!(page["items"].as_array().unwrap().len(), 50, "default limit");
    assert!(page["next_cursor"].is_string());
    let (_, page) = app.get("/agents?limit=1").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let (_, page) = app.get("/agents?limit=500").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 120);
    assert!(page["next_cursor"].is_null(), "the last page has no cursor");
    let (_, page) = app.get("/agents?limit=120").await;
    assert!(
        page["next_cursor"].is_null(),
        "an exactly full page is the last"
    );
    let mut all: Vec<_> = ids(page["items"].as_array().unwrap());
    all.sort();
    let mut want = created.clone();
    want.sort();
    assert_eq!(all, want);

    for (bad, status, code) in [
        ("0", 422, "validation_failed"),
        ("501", 422, "validation_failed"),
        ("-1", 422, "validation_failed"),
        ("100000000000000000000", 400, "invalid_query"),
        ("ten", 400, "invalid_query"),
        ("", 400, "invalid_query"),
    ] {
        for path in ["/agents", "/swarms"] {
            let (st, e) = app.get(&format!("{path}?limit={bad}")).await;
            let msg = assert_error(st, &e, status, code);
            assert!(msg.contains("limit"), "limit={bad}: {msg}");
        }
    }
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursor_walks_visit_every_row_once_in_both_orders() {
    let app = TestApp::spawn().await;
    let s = app
        .swarm(json!({"name": "p", "strategy": "parallel",
                             "config": {"max_agents": 100}}))
        .await;
    let sid = s["id"].as_str().unwrap().to_string();
    let created = spawn_many(&app, 40, Some(&sid)).await;
    spawn_many(&app, 5, None).await;

    // Ascending (the default): each row once, oldest first.
    let asc = walk(&app, &format!("/agents?swarm_id={sid}&limit=7")).await;
    let asc_ids = ids(&asc);
    assert_eq!(asc_ids.len(), 40);
    assert_eq!(
        asc_ids.iter().collect::<HashSet<_>>().len(),
        40,
        "a row came twice"
    );
    assert_eq!(
        asc_ids.iter().collect::<HashSet<_>>(),
        created.iter().collect::<HashSet<_>>()
    );
    let times: Vec<&str> = asc
        .iter()
        .map(|a| a["spawned_at"].as_str().unwrap())
        .collect();
    let parsed: Vec<chrono::DateTime<chrono::Utc>> =
        times.iter().map(|t| t.parse().unwrap()).collect();
    assert!(parsed.windows(2).all(|w| w[0] <= w[1]), "not oldest first");

    // Newest first: the exact reverse.
    let desc = walk(
        &app,
        &format!("/agents?swarm_id={sid}&limit=6&sort=-created_at"),
    )
    .await;
    let mut rev = ids(&desc);
    rev.reverse();
    assert_eq!(rev, asc_ids);

    // The same for swarms, and through a swarm's own agent list.
    for i in 0..9 {
        app.swarm(json!({"name": format!("s{i}"), "strategy": "tree"}))
            .await;
    }
    let swarms = walk(&app, "/swarms?limit=4").await;
    assert_eq!(ids(&swarms).iter().collect::<HashSet<_>>().len(), 10);
    let back = walk(&app, "/swarms?limit=3&sort=-created_at").await;
    let mut back = ids(&back);
    back.reverse();
    assert_eq!(back, ids(&swarms));
    let own = walk(&app, &format!("/swarms/{sid}/agents?limit=9")).await;
    assert_eq!(ids(&own), asc_ids);

    // A filter keeps applying on later pages.
    for id in &asc_ids[..11] {
        app.act(&format!("/agents/{id}/kill")).await;
    }
    let killed = walk(&app, "/agents?status=killed&limit=4").await;
    assert_eq!(ids(&killed), asc_ids[..11].to_vec());
    // Both filters at once, each page its own statement, both orders.
    let both = walk(
        &app,
        &format!("/agents?swarm_id={sid}&status=killed&limit=3"),
    )
    .await;
    assert_eq!(ids(&both), asc_ids[..11].to_vec());
    let path = format!("/agents?swarm_id={sid}&status=killed&limit=5&sort=-created_at");
    let mut back = ids(&walk(&app, &path).await);
    back.reverse();
    assert_eq!(back, asc_ids[..11].to_vec());
    let other = walk(
        &app,
        "/agents?swarm_id=0190a0a0-0000-7000-8000-000000000000&status=killed",
    )
    .await;
    assert!(other.is_empty(), "{other:?}");

    // Rows added during a walk never make it repeat or skip older rows.
    let (_, p1) = app.get(&format!("/agents?swarm_id={sid}&limit=10")).await;
    let mut seen = ids(p1["items"].as_array().unwrap());
    spawn_many(&app, 3, Some(&sid)).await;
    let cursor = p1["next_cursor"].as_str().unwrap();
    let rest = walk_from(
        &app,
        &format!("/agents?swarm_id={sid}&limit=10"),
        Some(cursor),
    )
    .await;
    seen.extend(ids(&rest));
    assert_eq!(seen.len(), 43);
    assert_eq!(seen[..40], asc_ids[..]);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_cursors_and_sorts_are_refused_with_a_json_error() {
    let app = TestApp::spawn().await;
    spawn_many(&app, 3, None).await;
    let (_, page) = app.get("/agents?limit=1").await;
    let good = page["next_cursor"].as_str().unwrap().to_string();

    let mut tampered = good.clone();
    tampered.replace_range(2..4, "zz");
    for bad in [
        "garbage",
        "%00",
        "eyJrIjoieCJ9",         // base64 of JSON without an id
        "eyJrIjoieCIsImkiOjF9", // wrong id type
        tampered.as_str(),
        &"A".repeat(5000),
    ] {
        for path in ["/agents", "/swarms"] {
            let (st, e) = app.get(&format!("{path}?cursor={bad}")).await;
            assert!(st == 400 || st == 422, "cursor {bad:.20}: {st} {e}");
            let msg = e["error"]["message"].as_str().unwrap_or_default();
            assert!(msg.contains("cursor"), "cursor {bad:.20}: {e}");
        }
    }
    // A valid cursor with a sort it was not made for still answers sanely.
    let (st, _) = app
        .get(&format!("/agents?cursor={good}&sort=-created_at"))
        .await;
    assert_eq!(st, 200);
    for bad in ["name", "created_at,id", "+created_at"] {
        let (st, e) = app.get(&format!("/agents?sort={bad}")).await;
        let msg = assert_error(st, &e, 400, "invalid_query");
        assert!(msg.contains("sort"), "{msg}");
    }
    let (st, e) = app.get("/agents?page=2").await;
    assert_error(st, &e, 400, "invalid_query");
    let (st, e) = app
        .get("/swarms?swarm_id=0190a0a0-0000-7000-8000-000000000000")
        .await;
    assert_error(st, &e, 400, "invalid_request");
    app.shutdown().await;
}
