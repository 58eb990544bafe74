//! Event streams share one reader of the log per process: idle streams cost
//! no queries each, a late-committing event still reaches them, the stream
//! cap answers 503, and events keep reaching every stream after a failover.

mod common;

use std::time::Duration;

use common::{db_settings, TestApi, TestApp};
use dash_pg::{ScratchNode, StopMode};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A raw event stream: the bytes received so far.
struct RawStream {
    sock: TcpStream,
    text: String,
}

impl RawStream {
    /// Opens `path` and returns the stream once its 200 head arrived, or the status line.
    async fn open(base: &str, path: &str) -> Result<RawStream, String> {
        let addr = base.trim_start_matches("http://");
        let mut sock = TcpStream::connect(addr).await.expect("connect");
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
        sock.write_all(req.as_bytes()).await.expect("write");
        let mut s = RawStream {
            sock,
            text: String::new(),
        };
        let head_seen = s.wait_for("\r\n\r\n", Duration::from_secs(20)).await;
        let status = s.text.lines().next().unwrap_or("").to_string();
        match head_seen && status.contains(" 200 ") {
            true => Ok(s),
            false => Err(s.text),
        }
    }

    /// Reads until the text holds `needle` (true) or `wait` passed or the stream ended.
    async fn wait_for(&mut self, needle: &str, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        let mut buf = [0u8; 8192];
        while !self.text.contains(needle) {
            match tokio::time::timeout_at(deadline, self.sock.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => self.text.push_str(&String::from_utf8_lossy(&buf[..n])),
                _ => return false,
            }
        }
        true
    }
}

/// `pg_query_seconds_count`: every query the API's pool ran.
async fn queries(app: &TestApi) -> f64 {
    let text = app.metrics().await;
    text.lines()
        .find_map(|l| l.strip_prefix("pg_query_seconds_count "))
        .and_then(|v| v.trim().parse().ok())
        .expect("pg_query_seconds_count")
}

async fn queries_during(app: &TestApi, window: Duration) -> f64 {
    let before = queries(app).await;
    tokio::time::sleep(window).await;
    queries(app).await - before
}

async fn open_streams(app: &TestApi, streams: &mut Vec<RawStream>, n: usize) {
    for _ in 0..n {
        let s = RawStream::open(&app.base, "/api/v1/events/stream").await;
        streams.push(s.expect("a stream"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_streams_cost_no_queries_each() {
    let app = TestApp::spawn().await;
    let window = Duration::from_secs(3);
    let mut streams = Vec::new();
    open_streams(&app, &mut streams, 10).await;
    let few = queries_during(&app, window).await;
    open_streams(&app, &mut streams, 190).await;
    let many = queries_during(&app, window).await;
    // Polling once a second each, 190 more streams cost ~570 more queries
    // in the window; shared, they cost none.
    assert!(
        many < few + 100.0,
        "10 streams: {few} queries in {window:?}; 200 streams: {many}"
    );
    // And every one of them still gets a new event.
    let s = app
        .swarm(json!({"name": "to-all", "strategy": "parallel"}))
        .await;
    let id = s["id"].as_str().unwrap().to_string();
    for (i, st) in streams.iter_mut().enumerate() {
        assert!(
            st.wait_for(&id, Duration::from_secs(20)).await,
            "stream {i}"
        );
    }
    drop(streams);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_that_commits_late_still_reaches_the_stream() {
    let app = TestApp::spawn().await;
    let mut st = RawStream::open(&app.base, "/api/v1/events/stream")
        .await
        .unwrap();
    // A transaction takes its txid first and commits after a later event.
    let pg = app.pg().await;
    pg.batch_execute("BEGIN; INSERT INTO events (kind) VALUES ('swarm.deleted')")
        .await
        .unwrap();
    let s = app
        .swarm(json!({"name": "later", "strategy": "tree"}))
        .await;
    let id = s["id"].as_str().unwrap().to_string();
    // Held back behind the open transaction, in log order.
    assert!(
        !st.wait_for(&id, Duration::from_secs(2)).await,
        "{}",
        st.text
    );
    pg.batch_execute("COMMIT").await.unwrap();
    assert!(
        st.wait_for(&id, Duration::from_secs(20)).await,
        "{}",
        st.text
    );
    let late = st
        .text
        .find("swarm.deleted")
        .expect("the late event was skipped");
    assert!(late < st.text.find(&id).unwrap(), "out of log order");
    drop(st);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_stream_cap_a_stream_is_refused_with_retry_after() {
    let app = TestApp::spawn_with(|s| s.max_event_streams = 2).await;
    let path = "/api/v1/events/stream";
    let a = RawStream::open(&app.base, path).await.unwrap();
    let _b = RawStream::open(&app.base, path).await.unwrap();
    let refused = RawStream::open(&app.base, path)
        .await
        .err()
        .expect("a third stream");
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(
        refused.to_lowercase().contains("retry-after: 1"),
        "{refused}"
    );
    let (st, body) = app.get("/events/stream").await;
    assert_eq!(st, 503, "{body}");
    assert_eq!(body["error"]["code"], "too_many_streams");
    // A closed stream frees its place.
    drop(a);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while RawStream::open(&app.base, path).await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the slot never came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_stream_gets_events_after_a_primary_failover() {
    let primary = tokio::task::spawn_blocking(ScratchNode::start)
        .await
        .unwrap()
        .expect("start PostgreSQL");
    let dbname = primary.fresh_database().expect("database");
    let replica = tokio::task::block_in_place(|| primary.replica()).expect("replica");
    let app = TestApi::start(db_settings(&[&primary, &replica], &dbname), |_| {}).await;
    app.wait_ready().await;
    let a = app
        .swarm(json!({"name": "a", "strategy": "parallel"}))
        .await;
    let a_id = a["id"].as_str().unwrap().to_string();
    let mut all: Vec<RawStream> = Vec::new();
    for _ in 0..3 {
        all.push(
            RawStream::open(&app.base, "/api/v1/events/stream")
                .await
                .unwrap(),
        );
    }
    let filtered = format!("/api/v1/events/stream?swarm_id={a_id}");
    let mut only_a = RawStream::open(&app.base, &filtered).await.unwrap();
    // Let the replica hold swarm a, then lose the primary and promote it.
    let on_replica = tokio_postgres::connect(&replica.url(&dbname), tokio_postgres::NoTls)
        .await
        .expect("connect to the replica");
    tokio::spawn(on_replica.1);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        // Until the schema replays, the table is missing: keep waiting.
        let row = on_replica
            .0
            .query_one("SELECT count(*) FROM swarms", &[])
            .await;
        if row.is_ok_and(|r| r.get::<_, i64>(0) == 1) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the replica never caught up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::task::block_in_place(|| primary.stop(StopMode::Immediate)).expect("stop primary");
    tokio::task::block_in_place(|| replica.promote()).expect("promote");

    // Writes through the API resume on the new primary ...
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let b_id = loop {
        let (st, b) = app
            .post("/swarms", json!({"name": "b", "strategy": "tree"}))
            .await;
        if st == 201 || st == 200 {
            break b["id"].as_str().unwrap().to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no write after failover: {st} {b}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (st, body) = app.act(&format!("/swarms/{a_id}/pause")).await;
    assert_eq!(st, 200, "{body}");
    // ... and their events reach every stream, each by its filter.
    for (i, s) in all.iter_mut().enumerate() {
        assert!(
            s.wait_for(&b_id, Duration::from_secs(30)).await,
            "stream {i}: {}",
            s.text
        );
        assert!(
            s.wait_for("swarm.paused", Duration::from_secs(30)).await,
            "stream {i}"
        );
    }
    assert!(
        only_a
            .wait_for("swarm.paused", Duration::from_secs(30))
            .await,
        "{}",
        only_a.text
    );
    assert!(
        !only_a.text.contains(&b_id),
        "the filter let another swarm through"
    );
    drop((all, only_a));
    app.shutdown().await;
}

/// The first stream of a quiet process subscribes before the feed has a
/// head; an event that commits before the feed's first read must still
/// reach it (the feed's first read starts at the newest event).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_stream_gets_an_event_committed_before_the_feed_started() {
    let app = TestApp::spawn().await;
    app.swarm(json!({"name": "old", "strategy": "parallel"}))
        .await;
    let mut st = RawStream::open(&app.base, "/api/v1/events/stream")
        .await
        .unwrap();
    let s = app.swarm(json!({"name": "new", "strategy": "tree"})).await;
    let id = s["id"].as_str().unwrap().to_string();
    assert!(
        st.wait_for(&id, Duration::from_secs(10)).await,
        "{}",
        st.text
    );
    app.shutdown().await;
}
