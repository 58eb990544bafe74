//! The environment the `dashctl db` tests point the real binary at: one
//! PostgreSQL node with a fresh database, an empty `DASH_HOME`, a backup
//! directory, and optionally the real API. Everything is removed on drop.

#![allow(dead_code)]

pub mod up;

use std::path::Path;

use dash_store::DbSettings;
pub use dash_testkit::{Run, Runner, TempNode, TestApi, TOKEN};
use tokio_postgres::{Client, NoTls};

/// A URL nothing listens on (port 9 on loopback).
pub const CLOSED: &str = "http://127.0.0.1:9";

/// One database (and optionally the API) the binary is pointed at.
pub struct Env {
    pub node: TempNode,
    pub db: String,
    pub home: tempfile::TempDir,
    pub backups: tempfile::TempDir,
    pub api: String,
    pub metrics: String,
    /// `DATABASE_URL` when not the superuser's.
    pub url: Option<String>,
    /// Pass `DASH_BACKUP_DIR` (the backup directory above).
    pub backup_dir_env: bool,
}

impl Env {
    pub async fn new() -> Env {
        let node = tokio::task::spawn_blocking(TempNode::start)
            .await
            .unwrap()
            .expect("start PostgreSQL");
        let db = node.fresh_database().unwrap();
        Env {
            node,
            db,
            home: tempfile::tempdir().unwrap(),
            backups: tempfile::tempdir().unwrap(),
            api: CLOSED.into(),
            metrics: format!("{CLOSED}/metrics"),
            url: None,
            backup_dir_env: true,
        }
    }

    pub fn settings(&self) -> DbSettings {
        dash_testkit::db_settings(&[&self.node], &self.db)
    }

    /// Runs `dashctl ARGS` with a clean environment and no terminal on stdin.
    pub async fn dash(&self, args: &[&str]) -> Run {
        let url = (self.url.clone()).unwrap_or_else(|| self.node.url(&self.db));
        let mut runner = Runner::new(env!("CARGO_BIN_EXE_dashctl"))
            .env("DASH_HOME", self.home.path())
            .env("DATABASE_URL", url)
            .env("DASH_API_URL", &self.api)
            .env("DASH_METRICS_URL", &self.metrics)
            .env("DASH_API_TOKEN", TOKEN);
        if self.backup_dir_env {
            runner = runner.env("DASH_BACKUP_DIR", self.backups.path());
        }
        runner.run(args).await
    }

    /// A session as the superuser with application_name `cli-test`.
    pub async fn client(&self) -> Client {
        let url = format!("{}?application_name=cli-test", self.node.url(&self.db));
        let (c, conn) = tokio_postgres::connect(&url, NoTls).await.unwrap();
        tokio::spawn(async move {
            let _ = conn.await;
        });
        c
    }
}

/// The real API in this process against `env`'s database; stops on drop.
pub async fn with_app(env: &mut Env) -> TestApi {
    let app = TestApi::ready(env.settings()).await;
    env.api = app.base.clone();
    env.metrics = app.metrics_url.clone();
    app
}

/// Flips eight bytes in the middle of `path`.
pub fn flip_bytes(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 8] {
        *b ^= 0xff;
    }
    std::fs::write(path, bytes).unwrap();
}
