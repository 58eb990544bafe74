//! The event log: listing after a cursor, the live SSE stream (and resuming
//! it with `Last-Event-ID`), and fan-out to every API instance on the same
//! database through LISTEN/NOTIFY.

mod common;

use std::time::Duration;

use common::sse::SseReader;
use common::{assert_error, items_field, TestApi, TestApp};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_events_after_a_cursor() {
    let app = TestApp::spawn().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let s = app
            .swarm(json!({"name": format!("s{i}"), "strategy": "parallel"}))
            .await;
        ids.push(s["id"].as_str().unwrap().to_string());
    }
    app.agent(json!({"swarm_id": ids[0], "task": "t"})).await;

    let all = app.events().await;
    assert_eq!(all.len(), 6);
    let kinds: Vec<_> = all.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds[..5], ["swarm.created"; 5]);
    assert_eq!(kinds[5], "agent.spawned");
    for (e, id) in all.iter().zip(&ids) {
        assert_eq!(e["swarm_id"], *id);
        assert!(e["created_at"].is_string() && e["cursor"].is_string());
    }

    // Walk the log two at a time: every event once, in order.
    let mut seen = Vec::new();
    let mut after = String::new();
    loop {
        let (st, page) = app.get(&format!("/events?limit=2&after={after}")).await;
        assert_eq!(st, 200, "{page}");
        let items = page["items"].as_array().unwrap();
        if items.is_empty() {
            // At the end the cursor stays where it was: poll again with it.
            assert_eq!(page["next_cursor"], after.as_str());
            break;
        }
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|e| e["id"].clone()));
        after = page["next_cursor"].as_str().unwrap().to_string();
        assert_eq!(items.last().unwrap()["cursor"], after.as_str());
    }
    let all_ids: Vec<_> = all.iter().map(|e| e["id"].clone()).collect();
    assert_eq!(seen, all_ids);

    // Events that happen later show up after the last cursor.
    app.act(&format!("/swarms/{}/pause", ids[1])).await;
    let (_, page) = app.get(&format!("/events?after={after}")).await;
    let kinds = items_field(&page, "kind");
    assert_eq!(kinds, [json!("swarm.paused")]);

    // The newest events, in log order: the last two are the agent spawn and the pause.
    let (st, page) = app.get("/events?newest=true&limit=2").await;
    assert_eq!(st, 200, "{page}");
    let kinds = items_field(&page, "kind");
    assert_eq!(kinds, [json!("agent.spawned"), json!("swarm.paused")]);
    let (st, e) = app.get(&format!("/events?newest=true&after={after}")).await;
    assert_error(st, &e, 400, "invalid_request");

    // Filters.
    let (_, page) = app.get(&format!("/events?swarm_id={}", ids[0])).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let agent_id = all[5]["agent_id"].as_str().unwrap();
    let (_, page) = app.get(&format!("/events?agent_id={agent_id}")).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);

    // Garbage cursors and limits are refused in the API's shape.
    for bad in ["abc", "1-x", "-5-3", "1-2-3"] {
        let (st, e) = app.get(&format!("/events?after={bad}")).await;
        let msg = assert_error(st, &e, 422, "validation_failed");
        assert!(msg.contains("after"), "{msg}");
    }
    let (st, e) = app.get("/events?limit=0").await;
    assert_error(st, &e, 422, "validation_failed");
    let (st, e) = app.get("/events?limit=501").await;
    assert_error(st, &e, 422, "validation_failed");
    let (st, e) = app.get("/events?colour=red").await;
    assert_error(st, &e, 400, "invalid_query");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_delivers_live_events_and_resumes_from_last_event_id() {
    let app = TestApp::spawn().await;
    let old = app
        .swarm(json!({"name": "old", "strategy": "parallel"}))
        .await;
    let stream_url = app.url("/events/stream");

    // A new stream starts at the newest event: it does not replay the past.
    let mut sse = SseReader::open(&app.client, &stream_url, None).await;
    let s = app.swarm(json!({"name": "live", "strategy": "tree"})).await;
    let sid = s["id"].as_str().unwrap();
    let e = sse.expect(&["swarm.created"], WAIT).await;
    assert_eq!(e.data["swarm_id"], sid, "{e:?}");
    assert_ne!(e.data["swarm_id"], old["id"]);
    assert_eq!(e.id, e.data["cursor"].as_str().unwrap());
    let last_seen = e.id.clone();
    drop(sse);

    // Missed while disconnected: delivered on resume, in order, nothing twice.
    app.act(&format!("/swarms/{sid}/pause")).await;
    app.act(&format!("/swarms/{sid}/resume")).await;
    let mut sse = SseReader::open(&app.client, &stream_url, Some(&last_seen)).await;
    let a = sse.next(WAIT).await.expect("a resumed event");
    let b = sse.next(WAIT).await.expect("a second resumed event");
    assert_eq!(
        (a.event.as_str(), b.event.as_str()),
        ("swarm.paused", "swarm.resumed")
    );
    // And it carries on live.
    app.agent(json!({"swarm_id": sid, "task": "after resume"}))
        .await;
    let c = sse.next(WAIT).await.expect("a live event after resuming");
    assert_eq!(c.event, "agent.spawned");
    drop(sse);

    // `after=0` replays the whole log from the start.
    let mut sse = SseReader::open(&app.client, &format!("{stream_url}?after=0"), None).await;
    let first = sse.next(WAIT).await.unwrap();
    assert_eq!(first.event, "swarm.created");
    assert_eq!(first.data["swarm_id"], old["id"]);

    // A garbage Last-Event-ID is refused before the stream starts.
    let r = app
        .client
        .get(&stream_url)
        .header("Last-Event-ID", "nonsense")
        .send()
        .await
        .unwrap();
    let (st, e) = common::split(r).await;
    assert_error(st, &e, 422, "validation_failed");
    drop(sse);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_fan_out_to_every_instance_on_the_database() {
    let app = TestApp::spawn().await;
    let other_app = TestApi::ready(app.db_settings()).await;
    let other = other_app.base.clone();
    // A stream on instance B sees writes made through instance A, and vice versa.
    let url_b = format!("{other}/api/v1/events/stream");
    let mut on_b = SseReader::open(&app.client, &url_b, None).await;
    let mut on_a = SseReader::open(&app.client, &app.url("/events/stream"), None).await;
    let s = app
        .swarm(json!({"name": "via-a", "strategy": "parallel"}))
        .await;
    let e = on_b.expect(&["swarm.created"], WAIT).await;
    assert_eq!(e.data["swarm_id"], s["id"]);
    let r = app
        .client
        .post(format!(
            "{other}/api/v1/swarms/{}/pause",
            s["id"].as_str().unwrap()
        ))
        .bearer_auth(common::TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let e = on_a.expect(&["swarm.paused"], WAIT).await;
    assert_eq!(e.data["swarm_id"], s["id"]);
    other_app.shutdown().await;
    app.shutdown().await;
}
