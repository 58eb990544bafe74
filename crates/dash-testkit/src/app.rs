//! The real app in-process on port 0: [`TestApi`] against any database,
//! [`TestApp`] with a PostgreSQL node and a fresh database of its own.

use std::ops::{Deref, DerefMut};
use std::time::Duration;

use dash_api::{ApiSettings, App, RunningApp};
use dash_pg::{PgNode, ScratchNode, StopMode};
use dash_store::{DbSettings, HostPort, Secret};
use serde_json::Value;

/// The bearer token every test app accepts.
pub const TOKEN: &str = "test-token-1";

/// Database settings for the app under test, naming every node given.
/// Connection set-up (SCRAM) is CPU-bound and slow in debug builds on a busy
/// 2-core machine, so connect and acquire get more room than the production
/// defaults; outage tests set their own.
pub fn db_settings(nodes: &[&PgNode], dbname: &str) -> DbSettings {
    DbSettings {
        connect_timeout: Duration::from_secs(3),
        acquire_timeout: Duration::from_secs(3),
        hosts: nodes
            .iter()
            .map(|n| HostPort {
                host: n.host().to_string(),
                port: n.port(),
            })
            .collect(),
        dbname: dbname.to_string(),
        user: nodes[0].superuser().to_string(),
        password: Secret::new(nodes[0].password()),
        ..DbSettings::default()
    }
}

/// The real API and metrics listeners on free loopback ports, stopped on drop.
pub struct TestApi {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// `http://127.0.0.1:PORT/metrics`.
    pub metrics_url: String,
    /// An HTTP client with a 20 s timeout.
    pub client: reqwest::Client,
    running: Option<RunningApp>,
}

impl TestApi {
    /// Starts the app against `database`; `tweak` may change any setting.
    /// Does not wait for readiness (see [`TestApi::wait_ready`]).
    pub async fn start(database: DbSettings, tweak: impl FnOnce(&mut ApiSettings)) -> TestApi {
        let mut settings = ApiSettings {
            bind: [127, 0, 0, 1].into(),
            api_port: 0,
            metrics_port: 0,
            tokens: vec![Secret::new(TOKEN)],
            // Tests spawn at will; the limit's own test sets it.
            spawn_rate: 0.0,
            database,
            ..ApiSettings::default()
        };
        tweak(&mut settings);
        let running = App::build(settings).await.expect("build app").spawn();
        TestApi {
            base: running.base_url().to_string(),
            metrics_url: running.metrics_url().to_string(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("an HTTP client"),
            running: Some(running),
        }
    }

    /// [`TestApi::start`] with default settings, then waits until ready.
    pub async fn ready(database: DbSettings) -> TestApi {
        let t = Self::start(database, |_| {}).await;
        t.wait_ready().await;
        t
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

    /// `POST /api/v1{path}` with a JSON body and the test token.
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send_json(reqwest::Method::POST, path, body).await
    }

    /// `PATCH /api/v1{path}` with a JSON body and the test token.
    pub async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        self.send_json(reqwest::Method::PATCH, path, body).await
    }

    async fn send_json(&self, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
        let r = self.req(method, path).json(&body).send().await;
        split(r.expect("request")).await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .client
            .get(self.url(path))
            .send()
            .await
            .expect("request");
        split(r).await
    }

    /// `GET` of a path outside `/api/v1` (`/health`, `/ready`, ...).
    pub async fn get_path(&self, path: &str) -> (u16, Value) {
        let r = (self.client.get(format!("{}{path}", self.base)).send().await).expect("request");
        split(r).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        let r = self
            .client
            .delete(self.url(path))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("request");
        split(r).await
    }

    pub async fn metrics(&self) -> String {
        self.client
            .get(&self.metrics_url)
            .send()
            .await
            .expect("scrape")
            .text()
            .await
            .expect("metrics text")
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
        let r = rb.send().await.expect("request");
        let h = r.headers().clone();
        let (s, b) = split(r).await;
        (s, h, b)
    }

    /// `POST` without a body.
    pub async fn act(&self, path: &str) -> (u16, Value) {
        let r = self
            .req(reqwest::Method::POST, path)
            .send()
            .await
            .expect("request");
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
        b["items"].as_array().expect("an items array").clone()
    }

    /// The kinds of every event in the log, oldest first.
    pub async fn event_kinds(&self) -> Vec<String> {
        self.events()
            .await
            .iter()
            .map(|e| e["kind"].as_str().expect("a kind").to_string())
            .collect()
    }

    /// Starts shutting the app down and hands back its server task.
    pub fn begin_shutdown(&mut self) -> tokio::task::JoinHandle<std::io::Result<()>> {
        self.running
            .as_mut()
            .and_then(RunningApp::begin_shutdown)
            .expect("the app is running")
    }

    /// Stops the app and waits for it to finish its drain.
    pub async fn shutdown(mut self) {
        if let Some(app) = self.running.take() {
            tokio::time::timeout(Duration::from_secs(15), app.stop())
                .await
                .expect("app stops within its drain timeout")
                .expect("app stops cleanly");
        }
    }
}

/// A [`TestApi`] with a PostgreSQL node and a fresh database of its own.
pub struct TestApp {
    api: TestApi,
    /// The node (dropped after the app).
    pub node: ScratchNode,
    /// This test's database on it.
    pub dbname: String,
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
        let node = tokio::task::spawn_blocking(ScratchNode::start)
            .await
            .expect("start task")
            .expect("start PostgreSQL");
        let dbname = node.fresh_database().expect("create database");
        if database_down {
            tokio::task::block_in_place(|| node.stop(StopMode::Fast)).expect("stop PostgreSQL");
        }
        let api = TestApi::start(db_settings(&[&node], &dbname), tweak).await;
        TestApp { api, node, dbname }
    }

    /// Settings for another app on the same database.
    pub fn db_settings(&self) -> DbSettings {
        db_settings(&[&self.node], &self.dbname)
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
            .expect("count rows")
            .get(0)
    }

    /// Stops the app and waits for it to finish its drain.
    pub async fn shutdown(self) {
        self.api.shutdown().await;
    }
}

impl Deref for TestApp {
    type Target = TestApi;
    fn deref(&self) -> &TestApi {
        &self.api
    }
}

impl DerefMut for TestApp {
    fn deref_mut(&mut self) -> &mut TestApi {
        &mut self.api
    }
}

/// A response's status and JSON body (a string when it is not JSON, null when empty).
/// The `field` of every item of a list page, in order.
pub fn items_field(page: &Value, field: &str) -> Vec<Value> {
    page["items"]
        .as_array()
        .expect("an items array")
        .iter()
        .map(|item| item[field].clone())
        .collect()
}

pub async fn split(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.expect("read the body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}
