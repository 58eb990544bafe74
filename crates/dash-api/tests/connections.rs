//! Slow and idle clients cannot hold the API: a partial request head is cut
//! off after the header timeout, an idle keep-alive connection after the
//! idle timeout, and at the connection cap the oldest idle connection makes
//! room, while busy ones leave a 503 with `Retry-After` and health answering.

mod common;

use std::time::Duration;

use common::TestApp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn connect(base: &str) -> TcpStream {
    TcpStream::connect(base.trim_start_matches("http://"))
        .await
        .expect("connect")
}

/// Reads until the server closes the connection: true when it did within `wait`.
async fn closed_within(sock: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, sock.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

/// Sends a complete GET and returns the response head (and whatever body came with it).
async fn get(sock: &mut TcpStream, path: &str) -> String {
    let req = format!("GET {path} HTTP/1.1\r\nHost: dash\r\n\r\n");
    sock.write_all(req.as_bytes()).await.expect("write");
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    while !text.contains("\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(20), sock.read(&mut buf))
            .await
            .expect("a response in time")
            .expect("read");
        assert!(n > 0, "closed before answering: {text}");
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_request_head_is_cut_off_but_a_quiet_connection_is_not() {
    let app = TestApp::spawn_with(|s| {
        s.header_read_timeout = Duration::from_secs(1);
        s.keepalive_timeout = Duration::from_secs(60);
    })
    .await;
    let mut slow = connect(&app.base).await;
    let mut quiet = connect(&app.base).await;
    slow.write_all(b"GET /livez HTTP/1.1\r\nHost: da")
        .await
        .unwrap();
    assert!(
        closed_within(&mut slow, Duration::from_secs(15)).await,
        "a connection trickling its head was never closed"
    );
    // The header clock starts at the first byte: a connection that has sent
    // nothing is on the (longer) idle clock and still serves a request.
    let head = get(&mut quiet, "/livez").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed() {
    let app = TestApp::spawn_with(|s| s.keepalive_timeout = Duration::from_secs(1)).await;
    let mut sock = connect(&app.base).await;
    let head = get(&mut sock, "/livez").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        closed_within(&mut sock, Duration::from_secs(15)).await,
        "an idle keep-alive connection stayed open"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_cap_idle_connections_make_room_and_busy_ones_leave_a_503() {
    // Four connections; three of them may be event streams.
    let app = TestApp::spawn_with(|s| s.max_connections = 4).await;
    let mut idle = Vec::new();
    for _ in 0..4 {
        let mut c = connect(&app.base).await;
        c.write_all(b"GET /api/v1/swarms HTTP/1.1\r\n")
            .await
            .unwrap();
        idle.push(c);
    }
    // Within their grace they are not shed, but as they only hold slots,
    // a complete request is served beside them (and its connection closed).
    let mut quick = connect(&app.base).await;
    let head = get(&mut quick, "/api/v1/swarms").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(closed_within(&mut quick, Duration::from_secs(15)).await);
    // Past their grace (1 s), idle connections may be shed.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // A new client gets in: the oldest idle connection is shed for it.
    let mut fresh = connect(&app.base).await;
    let head = get(&mut fresh, "/api/v1/swarms").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        closed_within(&mut idle[0], Duration::from_secs(15)).await,
        "not shed"
    );
    drop(fresh);

    // Four busy connections: three streams and a request whose body is slow.
    let mut busy = Vec::new();
    for _ in 0..3 {
        let mut c = connect(&app.base).await;
        let head = get(&mut c, "/api/v1/events/stream").await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        busy.push(c);
    }
    let mut c = connect(&app.base).await;
    let post = format!(
        "POST /api/v1/swarms HTTP/1.1\r\nHost: dash\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"na",
        common::TOKEN
    );
    c.write_all(post.as_bytes()).await.unwrap();
    busy.push(c);
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Nothing idle to shed: a new request is refused at once, never left hanging ...
    let r = app.client.get(app.url("/swarms")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_connections");
    // ... while health and metrics still answer.
    let r = app
        .client
        .get(format!("{}/health", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = app.client.get(&app.metrics_url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    drop((busy, idle));
    app.shutdown().await;
}

/// A crowd of slow heads that reconnect as soon as they are closed (the
/// slowloris pattern) churns the overflow lane; a client that sends its whole
/// request a network round trip after connecting (20 ms here) must still be
/// answered, never shed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordinary_requests_are_answered_through_a_churning_crowd_of_slow_heads() {
    let app = TestApp::spawn_with(|s| {
        s.max_connections = 4;
        s.header_read_timeout = Duration::from_secs(10);
    })
    .await;
    let addr = app.base.trim_start_matches("http://").to_string();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut crowd = Vec::new();
    // More slow clients than the cap and both lanes hold, each reconnecting
    // with a fresh partial head whenever it is closed (bounded: 20 s).
    for _ in 0..160 {
        let (addr, stop) = (addr.clone(), stop.clone());
        crowd.push(tokio::spawn(async move {
            let until = tokio::time::Instant::now() + Duration::from_secs(20);
            while !stop.load(std::sync::atomic::Ordering::Relaxed)
                && tokio::time::Instant::now() < until
            {
                let Ok(mut s) = TcpStream::connect(&addr).await else {
                    continue;
                };
                let _ = s
                    .write_all(b"GET /api/v1/swarms HTTP/1.1\r\nHost: da")
                    .await;
                let mut buf = [0u8; 64];
                let _ = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut answered = 0;
    for _ in 0..20 {
        let mut sock = connect(&app.base).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let req = "GET /api/v1/swarms?limit=1 HTTP/1.1\r\nHost: dash\r\nConnection: close\r\n\r\n";
        sock.write_all(req.as_bytes()).await.unwrap();
        let mut text = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), sock.read_to_end(&mut text)).await;
        let text = String::from_utf8_lossy(&text);
        if read.is_ok() && (text.starts_with("HTTP/1.1 200") || text.starts_with("HTTP/1.1 503")) {
            answered += 1;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for c in crowd {
        let _ = c.await;
    }
    assert_eq!(answered, 20, "ordinary requests closed without an answer");
    app.shutdown().await;
}
