//! Helpers for the runbook tests: real PostgreSQL nodes, a target pointing at
//! them, the real API in-process on port 0, and idle-in-transaction sessions
//! held open from a second client. Everything is torn down on drop.

#![allow(dead_code)]

use std::time::Duration;

use dash_api::{ApiSettings, App};
use dash_pg::PgNode;
use dash_runbook::{ApiEndpoint, NodeTarget, Target};
use dash_store::{DbSettings, HostPort, Secret};
use dash_testkit::TempNode;
use tokio::sync::oneshot;
use tokio_postgres::{Client, NoTls};

pub const TOKEN: &str = "runbook-test-token";
/// A URL nothing listens on (port 9 on loopback: discard, never open in CI).
pub const CLOSED: &str = "http://127.0.0.1:9";

pub async fn start_node() -> TempNode {
    start_node_with(&[]).await
}

pub async fn start_node_with(settings: &'static [(&'static str, &'static str)]) -> TempNode {
    tokio::task::spawn_blocking(move || TempNode::start_with(settings))
        .await
        .unwrap()
        .expect("start PostgreSQL")
}

pub fn host_of(node: &PgNode) -> HostPort {
    HostPort {
        host: node.host().to_string(),
        port: node.port(),
    }
}

pub fn db_settings(nodes: &[&PgNode], dbname: &str) -> DbSettings {
    DbSettings {
        hosts: nodes.iter().map(|n| host_of(n)).collect(),
        dbname: dbname.to_string(),
        user: nodes[0].superuser().to_string(),
        password: Secret::new(nodes[0].password()),
        ..DbSettings::default()
    }
}

pub fn no_api() -> ApiEndpoint {
    ApiEndpoint {
        api_url: CLOSED.into(),
        metrics_url: format!("{CLOSED}/metrics"),
        token: None,
    }
}

/// A target for `nodes` named `node0`, `node1`, ...
pub fn target(nodes: &[&PgNode], dbname: &str, api: ApiEndpoint) -> Target {
    let settings = db_settings(nodes, dbname);
    let named = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| NodeTarget {
            name: format!("node{i}"),
            address: host_of(n),
            recorded_role: None,
        })
        .collect();
    Target::new(settings, named, "test".into(), api)
}

/// A plain client session (application_name `test-client`).
pub async fn client(node: &PgNode, dbname: &str) -> Client {
    let url = format!("{}?application_name=test-client", node.url(dbname));
    let (client, conn) = tokio_postgres::connect(&url, NoTls).await.expect("connect");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// A session left idle in transaction, holding a transaction id.
pub async fn idle_in_transaction(node: &PgNode, dbname: &str) -> Client {
    let c = client(node, dbname).await;
    c.batch_execute("BEGIN; SELECT txid_current() AS held_open;")
        .await
        .expect("open a transaction");
    c
}

/// The real API, in-process, on free ports.
pub struct TestApp {
    pub base: String,
    pub metrics_url: String,
    pub http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestApp {
    pub async fn spawn(settings: DbSettings) -> TestApp {
        let settings = ApiSettings {
            bind: [127, 0, 0, 1].into(),
            api_port: 0,
            metrics_port: 0,
            tokens: vec![Secret::new(TOKEN)],
            database: settings,
            ..ApiSettings::default()
        };
        let app = App::build(settings).await.expect("build app");
        let base = format!("http://127.0.0.1:{}", app.port());
        let metrics_url = format!("http://127.0.0.1:{}/metrics", app.metrics_port());
        let (tx, rx) = oneshot::channel();
        let server = tokio::spawn(app.run_until_stopped(async {
            let _ = rx.await;
        }));
        let t = TestApp {
            base,
            metrics_url,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
            stop: Some(tx),
            server: Some(server),
        };
        t.wait_ready().await;
        t
    }

    pub fn endpoint(&self) -> ApiEndpoint {
        ApiEndpoint {
            api_url: self.base.clone(),
            metrics_url: self.metrics_url.clone(),
            token: Some(Secret::new(TOKEN)),
        }
    }

    async fn wait_ready(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = self.http.get(format!("{}/ready", self.base)).send().await {
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

    /// POST /api/v1/swarms; the status code.
    pub async fn create_swarm(&self, name: &str) -> u16 {
        self.http
            .post(format!("{}/api/v1/swarms", self.base))
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({ "name": name, "strategy": "parallel" }))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    }

    /// GET a path; status and body.
    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
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

/// Runs blocking node control (stop/start) off the async runtime.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}
