//! Test harness: a real PostgreSQL node, a fresh database per test, and the
//! real app on port 0. Everything is torn down on drop, even on panic.

#![allow(dead_code)]

use std::time::Duration;

use dash_api::{ApiSettings, App};
use dash_store::{DbSettings, HostPort, Secret};
use dash_testkit::TempNode;
use serde_json::Value;
use tokio::sync::oneshot;

pub const TOKEN: &str = "test-token-1";

pub struct TestApp {
    pub base: String,
    pub metrics_url: String,
    pub client: reqwest::Client,
    pub node: TempNode,
    pub dbname: String,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// Database settings for a test app. Connection set-up (SCRAM) is CPU-bound
/// and slow in debug builds on a busy 2-core machine, so connect and acquire
/// get more room than the production defaults; outage tests set their own.
pub fn db_settings(node: &TempNode, dbname: &str) -> DbSettings {
    DbSettings {
        connect_timeout: Duration::from_secs(3),
        acquire_timeout: Duration::from_secs(3),
        hosts: vec![HostPort {
            host: node.host().to_string(),
            port: node.port(),
        }],
        dbname: dbname.to_string(),
        user: node.superuser().to_string(),
        password: Secret::new(node.password()),
        ..DbSettings::default()
    }
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(tweak: impl FnOnce(&mut ApiSettings)) -> TestApp {
        let t = Self::start(tweak, false).await;
        t.wait_ready().await;
        t
    }

    /// The app started while its PostgreSQL node is stopped (not ready yet).
    pub async fn spawn_with_database_down(tweak: impl FnOnce(&mut ApiSettings)) -> TestApp {
        Self::start(tweak, true).await
    }

    async fn start(tweak: impl FnOnce(&mut ApiSettings), database_down: bool) -> TestApp {
        let node = tokio::task::spawn_blocking(TempNode::start)
            .await
            .unwrap()
            .expect("start PostgreSQL");
        let dbname = node.fresh_database().expect("create database");
        if database_down {
            tokio::task::block_in_place(|| node.stop(dash_pg::StopMode::Fast))
                .expect("stop PostgreSQL");
        }
        let mut settings = ApiSettings {
            bind: [127, 0, 0, 1].into(),
            api_port: 0,
            metrics_port: 0,
            tokens: vec![Secret::new(TOKEN)],
            database: db_settings(&node, &dbname),
            ..ApiSettings::default()
        };
        tweak(&mut settings);
        let app = App::build(settings).await.expect("build app");
        let base = format!("http://127.0.0.1:{}", app.port());
        let metrics_url = format!("http://127.0.0.1:{}/metrics", app.metrics_port());
        let (tx, rx) = oneshot::channel();
        let server = tokio::spawn(app.run_until_stopped(async {
            let _ = rx.await;
        }));
        TestApp {
            base,
            metrics_url,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
            node,
            dbname,
            stop: Some(tx),
            server: Some(server),
        }
    }

    /// Waits (bounded) until /ready answers 200.
    pub async fn wait_ready(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = self.client.get(format!("{}/ready", self.base)).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "app never became ready"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/api/v1{}", self.base, path)
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .client
            .post(self.url(path))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        split(r).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .client
            .patch(self.url(path))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        split(r).await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self.client.get(self.url(path)).send().await.unwrap();
        split(r).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        let r = self
            .client
            .delete(self.url(path))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        split(r).await
    }

    pub async fn metrics(&self) -> String {
        self.client
            .get(&self.metrics_url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// A request with the test token, for anything the shortcuts do not cover.
    pub fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(TOKEN)
    }

    /// `POST` with extra headers; returns status, headers and body.
    pub async fn post_with(
        &self,
        path: &str,
        body: Value,
        headers: &[(&str, &str)],
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut rb = self.req(reqwest::Method::POST, path).json(&body);
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        let r = rb.send().await.unwrap();
        let h = r.headers().clone();
        let (s, b) = split(r).await;
        (s, h, b)
    }

    /// `POST` without a body.
    pub async fn act(&self, path: &str) -> (u16, Value) {
        let r = self.req(reqwest::Method::POST, path).send().await.unwrap();
        split(r).await
    }

    /// Creates a swarm and returns it, asserting 201.
    pub async fn swarm(&self, body: Value) -> Value {
        let (s, b) = self.post("/swarms", body).await;
        assert_eq!(s, 201, "create swarm: {b}");
        b
    }

    /// Spawns an agent and returns it, asserting 201.
    pub async fn agent(&self, body: Value) -> Value {
        let (s, b) = self.post("/agents", body).await;
        assert_eq!(s, 201, "spawn agent: {b}");
        b
    }

    /// Every event in the log (up to 500), oldest first.
    pub async fn events(&self) -> Vec<Value> {
        let (s, b) = self.get("/events?limit=500").await;
        assert_eq!(s, 200, "{b}");
        b["items"].as_array().unwrap().clone()
    }

    /// The kinds of every event in the log, oldest first.
    pub async fn event_kinds(&self) -> Vec<String> {
        self.events()
            .await
            .iter()
            .map(|e| e["kind"].as_str().unwrap().to_string())
            .collect()
    }

    /// A direct connection to the test database, bypassing the API.
    pub async fn pg(&self) -> tokio_postgres::Client {
        let (client, conn) =
            tokio_postgres::connect(&self.node.url(&self.dbname), tokio_postgres::NoTls)
                .await
                .expect("connect to the test database");
        tokio::spawn(conn);
        client
    }

    /// `SELECT count(*)` of a table, read directly from the database.
    pub async fn count(&self, table: &str) -> i64 {
        self.pg()
            .await
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .unwrap()
            .get(0)
    }

    /// Starts shutting the app down and hands back its server task.
    pub fn begin_shutdown(&mut self) -> tokio::task::JoinHandle<std::io::Result<()>> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.server.take().expect("the app is running")
    }

    /// Stops the app and waits for it to finish.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.server.take() {
            tokio::time::timeout(Duration::from_secs(15), h)
                .await
                .expect("app stops within its drain timeout")
                .unwrap()
                .unwrap();
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.server.take() {
            h.abort();
        }
    }
}

pub async fn split(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}

/// A second app instance on the same database (LISTEN/NOTIFY fan-out, etc.).
pub async fn second_app(first: &TestApp) -> (String, oneshot::Sender<()>) {
    let settings = ApiSettings {
        bind: [127, 0, 0, 1].into(),
        api_port: 0,
        metrics_port: 0,
        tokens: vec![Secret::new(TOKEN)],
        database: db_settings(&first.node, &first.dbname),
        ..ApiSettings::default()
    };
    let app = App::build(settings).await.expect("build second app");
    let base = format!("http://127.0.0.1:{}", app.port());
    let (tx, rx) = oneshot::channel();
    tokio::spawn(app.run_until_stopped(async {
        let _ = rx.await;
    }));
    (base, tx)
}

/// The value of one metric sample line, e.g. `pg_up` or `pg_pool_max_size`.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    })
}

/// The sum of every sample of `name` whose label set contains all of `labels`
/// (e.g. `[r#"route="/api/v1/swarms""#]`); `None` when there is no such sample.
pub fn metric_sum(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    let mut found = None;
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = l.strip_prefix(name) else {
            continue;
        };
        let (set, value) = match rest.strip_prefix('{') {
            Some(r) => match r.split_once("} ") {
                Some((set, v)) => (set, v),
                None => continue,
            },
            None => match rest.strip_prefix(' ') {
                Some(v) => ("", v),
                None => continue,
            },
        };
        if labels
            .iter()
            .all(|want| set.split(',').any(|kv| kv == *want))
        {
            if let Ok(v) = value.trim().parse::<f64>() {
                *found.get_or_insert(0.0) += v;
            }
        }
    }
    found
}

/// Asserts a 4xx/5xx answer in the API's error shape with this code; returns the message.
pub fn assert_error(status: u16, body: &Value, want_status: u16, want_code: &str) -> String {
    assert_eq!(status, want_status, "status of {body}");
    assert_eq!(body["error"]["code"], want_code, "code of {body}");
    let msg = body["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("error message in {body}"));
    assert!(!msg.is_empty(), "an empty error message: {body}");
    msg.to_string()
}
