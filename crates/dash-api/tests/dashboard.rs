//! The dashboard's data: `GET /api/v1/dashboard` (one snapshot) and its SSE
//! stream, against a real PostgreSQL (the pool's view) and a real etcd (the
//! node agents' records), and the `database` event flipping when the
//! database stops and returns. The page itself is tested in a browser
//! (`dashboard_browser.rs`).

mod common;

use std::time::Duration;

use common::sse::SseReader;
use common::{TempEtcd, TestApp};
use dash_dcs::{Dcs, HistoryEntry, MemberState, SyncState};
use dash_pg::StopMode;
use serde_json::{json, Value};

/// Generous bound on anything the dashboard should show.
const WAIT: Duration = Duration::from_secs(10);

async fn snapshot(app: &TestApp) -> Value {
    let (status, body) = app.get("/dashboard").await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_snapshot_shows_the_pool_the_swarms_agents_and_events() {
    let app = TestApp::spawn().await;
    let s = app
        .swarm(json!({"name": "<b>bold</b>", "strategy": "tree", "budget": {"allocated": 10.0}}))
        .await;
    app.agent(json!({"swarm_id": s["id"], "task": "t"})).await;
    let body = snapshot(&app).await;
    assert!(body["at_ms"].as_i64().unwrap() > 0);
    assert_eq!(body["database"]["reachable"], true, "{body}");
    let cluster = &body["cluster"];
    assert_eq!(cluster["source"], "pool");
    assert_eq!(cluster["failover_in_progress"], false);
    let nodes = cluster["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 1, "{cluster}");
    assert_eq!(nodes[0]["primary"], true);
    assert_eq!(nodes[0]["role"], "primary");
    assert_eq!(cluster["leader"], nodes[0]["name"]);
    let swarm = &body["swarms"][0];
    assert_eq!(
        swarm["name"], "<b>bold</b>",
        "as given, the page escapes it: {body}"
    );
    assert_eq!(swarm["budget"]["allocated"], 10.0);
    assert_eq!(swarm["budget"]["level"], "normal");
    assert_eq!(body["agents"]["pending"], 1, "{}", body["agents"]);
    assert_eq!(body["agents"]["running"], 0, "every status is listed");
    let kinds: Vec<&str> = (body["events"].as_array().unwrap().iter())
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["agent.spawned", "swarm.created"], "newest first");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_sends_changes_and_the_database_flipping() {
    let app = TestApp::spawn().await;
    let url = app.url("/dashboard/stream");
    let mut sse = SseReader::open(&app.client, &url, None).await;
    let db = sse.expect(&["database"], WAIT).await;
    assert_eq!(db.data["reachable"], true, "{}", db.data);
    sse.expect(&["snapshot"], WAIT).await;

    app.swarm(json!({"name": "live", "strategy": "tree"})).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let s = sse.expect(&["snapshot"], left).await;
        let names: Vec<&Value> = s.data["swarms"].as_array().unwrap().iter().collect();
        let events = s.data["events"].as_array().unwrap();
        if names.iter().any(|n| n["name"] == "live") && !events.is_empty() {
            assert_eq!(events[0]["kind"], "swarm.created");
            break;
        }
    }

    tokio::task::block_in_place(|| app.node.stop(StopMode::Fast)).expect("stop PostgreSQL");
    let started = std::time::Instant::now();
    let down = sse.expect(&["database"], WAIT).await;
    println!("database event {:?} after the stop", started.elapsed());
    assert_eq!(down.data["reachable"], false, "{}", down.data);
    assert!(down.data["error"].is_string(), "{}", down.data);
    // The snapshot endpoint answers while the database is down, and says so.
    let body = snapshot(&app).await;
    assert_eq!(body["database"]["reachable"], false);
    assert_eq!(
        body["swarms"][0]["name"], "live",
        "the last values read stay"
    );

    tokio::task::block_in_place(|| app.node.start()).expect("start PostgreSQL");
    let up = sse.expect(&["database"], Duration::from_secs(30)).await;
    assert_eq!(up.data["reachable"], true, "{}", up.data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_counts_against_the_event_stream_cap() {
    let app = TestApp::spawn_with(|s| s.max_event_streams = 1).await;
    let _first = SseReader::open(&app.client, &app.url("/dashboard/stream"), None).await;
    for path in ["/dashboard/stream", "/events/stream"] {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 503, "{path}");
        assert_eq!(r.headers()["retry-after"], "1");
    }
}

fn member(name: &str, role: &str, lsn: u64) -> MemberState {
    MemberState {
        name: name.into(),
        pg: format!("127.0.0.1:{}", 5400 + lsn % 10),
        role: role.into(),
        lsn: Some(lsn),
        streaming: role == "replica",
        timeline: Some(2),
        ..MemberState::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_etcd_the_cluster_is_the_agents_records_and_the_latest_incident() {
    let etcd = tokio::task::spawn_blocking(TempEtcd::start)
        .await
        .unwrap()
        .expect("start etcd");
    let dcs = Dcs::connect(&etcd.endpoints(), "dash", Duration::from_secs(2))
        .await
        .unwrap();
    let lease = dcs.grant(Duration::from_secs(60)).await.unwrap();
    let sync = SyncState {
        leader: "n1".into(),
        standbys: vec!["n0".into()],
    };
    assert!(dcs.acquire("n1", lease, 0, &sync).await.unwrap());
    dcs.put_member(&member("n1", "primary", 5000), lease)
        .await
        .unwrap();
    dcs.put_member(&member("n0", "replica", 4000), lease)
        .await
        .unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    for (at, who, what) in [(now - 50, "n0", "release"), (now, "n1", "promote")] {
        let e = HistoryEntry {
            at_ms: at,
            member: who.into(),
            decision: what.into(),
            detail: format!("{what} <script>"),
        };
        dcs.record(&e).await.unwrap();
    }
    let endpoints = etcd.endpoints();
    let app = TestApp::spawn_with(|s| s.etcd = endpoints).await;
    let body = snapshot(&app).await;
    let cluster = &body["cluster"];
    assert_eq!(cluster["source"], "etcd", "{cluster}");
    assert_eq!(cluster["leader"], "n1");
    assert_eq!(cluster["failover_in_progress"], false);
    let n0 = &cluster["nodes"][0];
    assert_eq!(
        (n0["name"].as_str(), n0["lag_bytes"].as_u64()),
        (Some("n0"), Some(1000))
    );
    assert_eq!(
        (n0["sync"].as_bool(), n0["streaming"].as_bool()),
        (Some(true), Some(true))
    );
    assert_eq!(cluster["nodes"][1]["primary"], true);
    let incident = &cluster["incident"];
    assert_eq!(incident["title"], "failover n0 -> n1", "{incident}");
    assert_eq!(incident["steps"].as_array().unwrap().len(), 2);

    // The leader key gone: a failover in progress, seen live.
    dcs.revoke(lease).await.unwrap();
    let url = app.url("/dashboard/stream");
    let mut sse = SseReader::open(&app.client, &url, None).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let s = sse.expect(&["snapshot"], left).await;
        if s.data["cluster"]["failover_in_progress"] == true {
            assert!(s.data["cluster"]["leader"].is_null());
            break;
        }
    }
}
