//! Test harness: a real PostgreSQL node, a fresh database per test, and the
//! real app on port 0. Everything is torn down on drop, even on panic.

#![allow(dead_code)]

use std::time::Duration;

use dash_api::{ApiSettings, App};
use dash_ops::pg::TempNode;
use dash_store::{DbSettings, HostPort, Secret};
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

pub fn db_settings(node: &TempNode, dbname: &str) -> DbSettings {
    DbSettings {
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
        let node = tokio::task::spawn_blocking(TempNode::start)
            .await
            .unwrap()
            .expect("start PostgreSQL");
        let dbname = node.fresh_database().expect("create database");
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
        let t = TestApp {
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
        };
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

/// The value of one metric sample line, e.g. `pg_up` or `pg_pool_max_size`.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    })
}
