//! Helpers for the runbook tests: real PostgreSQL nodes, a target pointing at
//! them, the real API in-process on port 0, and idle-in-transaction sessions
//! held open from a second client. Everything is torn down on drop.

#![allow(dead_code)]

use dash_pg::PgNode;
use dash_runbook::{ApiEndpoint, NodeTarget, Target};
use dash_store::{HostPort, Secret};
pub use dash_testkit::{db_settings, TempNode, TestApi, TOKEN};
use tokio_postgres::{Client, NoTls};

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

/// What `dashctl db` and `dashctl verify` are given to reach `app`.
pub fn endpoint(app: &TestApi) -> ApiEndpoint {
    ApiEndpoint {
        api_url: app.base.clone(),
        metrics_url: app.metrics_url.clone(),
        token: Some(Secret::new(TOKEN)),
    }
}

/// POST /api/v1/swarms through `app`; the status code, 0 when no answer came.
pub async fn create_swarm(app: &TestApi, name: &str) -> u16 {
    app.req(reqwest::Method::POST, "/swarms")
        .json(&serde_json::json!({ "name": name, "strategy": "parallel" }))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// Runs blocking node control (stop/start) off the async runtime.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// Stops a node in `mode`, off the async runtime.
pub async fn stop_node(node: &PgNode, mode: dash_pg::StopMode) {
    let n = node.clone();
    blocking(move || n.stop(mode).unwrap()).await
}

/// Starts a stopped node again, off the async runtime.
pub async fn restart_node(node: &PgNode) {
    let n = node.clone();
    blocking(move || n.start().unwrap()).await
}
