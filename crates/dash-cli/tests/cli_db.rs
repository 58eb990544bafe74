//! The real `dashctl` binary against real PostgreSQL and the real API: exit
//! codes and output of `dashctl db ...` and `dashctl verify`, including the
//! refusal to change anything without a terminal unless `--yes`.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use dash_api::{ApiSettings, App};
use dash_store::{DbSettings, HostPort, Secret};
use dash_testkit::TempNode;
use tokio::sync::oneshot;
use tokio_postgres::{Client, NoTls};

const TOKEN: &str = "cli-test-token";
const CLOSED: &str = "http://127.0.0.1:9";

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

/// One database (and optionally the API) the binary is pointed at.
struct Env {
    node: TempNode,
    db: String,
    home: tempfile::TempDir,
    backups: tempfile::TempDir,
    api: String,
    metrics: String,
}

impl Env {
    async fn new() -> Env {
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
        }
    }

    fn settings(&self) -> DbSettings {
        DbSettings {
            hosts: vec![HostPort {
                host: self.node.host().into(),
                port: self.node.port(),
            }],
            dbname: self.db.clone(),
            user: self.node.superuser().into(),
            password: Secret::new(self.node.password()),
            ..DbSettings::default()
        }
    }

    /// Runs `dash ARGS` with a clean environment and no terminal on stdin.
    async fn dash(&self, args: &[&str]) -> Out {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_dashctl"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("DASH_HOME", self.home.path())
            .env("DASH_BACKUP_DIR", self.backups.path())
            .env("DATABASE_URL", self.node.url(&self.db))
            .env("DASH_API_URL", &self.api)
            .env("DASH_METRICS_URL", &self.metrics)
            .env("DASH_API_TOKEN", TOKEN)
            .stdin(Stdio::null())
            .output()
            .await
            .expect("run dash");
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    async fn client(&self) -> Client {
        let url = format!("{}?application_name=cli-test", self.node.url(&self.db));
        let (c, conn) = tokio_postgres::connect(&url, NoTls).await.unwrap();
        tokio::spawn(async move {
            let _ = conn.await;
        });
        c
    }
}

fn show(o: &Out) -> String {
    format!(
        "exit {}\n--- stdout\n{}--- stderr\n{}",
        o.code, o.stdout, o.stderr
    )
}

/// The real API in this process; stops on drop.
struct RunningApp {
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for RunningApp {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

async fn with_app(env: &mut Env) -> RunningApp {
    let settings = ApiSettings {
        bind: [127, 0, 0, 1].into(),
        api_port: 0,
        metrics_port: 0,
        tokens: vec![Secret::new(TOKEN)],
        database: env.settings(),
        ..ApiSettings::default()
    };
    let app = App::build(settings).await.unwrap();
    env.api = format!("http://127.0.0.1:{}", app.port());
    env.metrics = format!("http://127.0.0.1:{}/metrics", app.metrics_port());
    let (tx, rx) = oneshot::channel();
    tokio::spawn(app.run_until_stopped(async {
        let _ = rx.await;
    }));
    let http = reqwest::Client::new();
    for _ in 0..300 {
        if let Ok(r) = http.get(format!("{}/ready", env.api)).send().await {
            if r.status() == 200 {
                return RunningApp { stop: Some(tx) };
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the API never became ready");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_diagnose_exit_codes() {
    let env = Env::new().await;
    let o = env.dash(&["db", "status"]).await;
    assert_eq!(o.code, 0, "{}", show(&o));
    assert!(
        o.stdout.contains("primary") && o.stdout.contains("Verdict: healthy"),
        "{}",
        show(&o)
    );
    let o = env.dash(&["db", "status", "--json"]).await;
    let v: serde_json::Value = serde_json::from_str(&o.stdout).expect("JSON");
    assert_eq!(v["verdict"], "healthy");
    assert_eq!(v["nodes"][0]["role"], "primary");

    let o = env.dash(&["db", "diagnose", "--window", "200ms"]).await;
    assert_eq!(o.code, 0, "{}", show(&o));
    assert!(o.stdout.contains("Diagnosis: HEALTHY"), "{}", show(&o));

    // Scenario 4: a session idle in transaction, named with exit 40 and the fix.
    let held = env.client().await;
    held.batch_execute("BEGIN; SELECT txid_current();")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let o = env
        .dash(&["db", "diagnose", "--idle-threshold", "1s", "--json"])
        .await;
    assert_eq!(o.code, 40, "{}", show(&o));
    let d: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(d["situation"], "pool_exhaustion");
    assert!(
        d["fix"]
            .to_string()
            .contains("dashctl db terminate --idle-in-transaction --older-than 1s"),
        "{d}"
    );

    let o = env.dash(&["db", "connections"]).await;
    assert_eq!(o.code, 0, "{}", show(&o));
    assert!(
        o.stdout.contains("cli-test") && o.stdout.contains("idle in transaction"),
        "{}",
        show(&o)
    );
    assert!(
        !o.stdout.contains("txid_current"),
        "queries hidden by default: {}",
        show(&o)
    );
    let o = env.dash(&["db", "connections", "--show-queries"]).await;
    assert!(o.stdout.contains("txid_current"), "{}", show(&o));

    // No terminal, no --yes: refused with exit 4, and the session lives.
    let args = [
        "db",
        "terminate",
        "--idle-in-transaction",
        "--older-than",
        "1s",
    ];
    let o = env.dash(&args).await;
    assert_eq!(o.code, 4, "{}", show(&o));
    assert!(o.stderr.contains("pass --yes"), "{}", show(&o));
    assert!(
        !held.is_closed(),
        "the session lives (a query would reset its age)"
    );
    let o = env.dash(&[&args[..], &["--dry-run"]].concat()).await;
    assert_eq!(o.code, 0, "{}", show(&o));
    assert!(
        o.stdout.contains("would end") && o.stdout.contains("nothing was ended"),
        "{}",
        show(&o)
    );
    let o = env.dash(&[&args[..], &["--yes"]].concat()).await;
    assert_eq!(o.code, 0, "{}", show(&o));
    assert!(o.stdout.contains("ended 1 of 1"), "{}", show(&o));
    assert!(
        held.simple_query("SELECT 1").await.is_err(),
        "the session was ended"
    );
    let o = env.dash(&["db", "terminate", "--older-than", "1s"]).await;
    assert_eq!(o.code, 2, "--idle-in-transaction is required: {}", show(&o));

    // The database stops: status 5, diagnose 10 (no replica to promote).
    let node = env.node.node.clone();
    tokio::task::spawn_blocking(move || node.stop(dash_pg::StopMode::Fast).unwrap())
        .await
        .unwrap();
    let o = env.dash(&["db", "status"]).await;
    assert_eq!(o.code, 5, "{}", show(&o));
    assert!(o.stdout.contains("refused"), "{}", show(&o));
    let o = env.dash(&["db", "diagnose", "--window", "300ms"]).await;
    assert_eq!(o.code, 10, "{}", show(&o));
    assert!(o.stdout.contains("dashctl db status"), "{}", show(&o));
    let o = env.dash(&["db", "connections"]).await;
    assert_eq!(o.code, 1, "{}", show(&o));
    assert!(o.stderr.contains("no writable primary"), "{}", show(&o));
}

fn flip_bytes(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 8] {
        *b ^= 0xff;
    }
    std::fs::write(path, bytes).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_restore_pool_and_verify_through_the_binary() {
    let mut env = Env::new().await;
    let _app = with_app(&mut env).await;

    let o = env.dash(&["verify"]).await;
    assert_eq!(o.code, 0, "{}", show(&o));
    assert!(o.stdout.contains("all 7 checks passed"), "{}", show(&o));

    let o = env.dash(&["db", "backup", "--keep", "3"]).await;
    assert_eq!(o.code, 0, "{}", show(&o));
    assert!(o.stdout.contains("public.swarms"), "{}", show(&o));
    assert!(
        o.stderr.contains("pg_dump"),
        "progress on stderr: {}",
        show(&o)
    );
    let latest = env.backups.path().join("latest.dump");
    assert!(latest.exists());
    let o = env.dash(&["db", "backups", "--json"]).await;
    assert_eq!(o.code, 0, "{}", show(&o));
    let list: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(list["backups"][0]["checksum"], "ok");
    assert_eq!(list["backups"][0]["verified"], "never");

    let o = env.dash(&["db", "verify-backup"]).await;
    assert_eq!(o.code, 0, "{}", show(&o));
    assert!(o.stdout.contains("VERIFIED"), "{}", show(&o));

    // Restore: the API is connected, so without --stop-writes it is refused (4).
    let o = env.dash(&["db", "restore", "--yes"]).await;
    assert_eq!(o.code, 4, "{}", show(&o));
    assert!(o.stderr.contains("--stop-writes"), "{}", show(&o));
    // With --stop-writes but no terminal and no --yes: refused (4).
    let o = env.dash(&["db", "restore", "--stop-writes"]).await;
    assert_eq!(o.code, 4, "{}", show(&o));
    assert!(o.stderr.contains("pass --yes"), "{}", show(&o));
    let o = env.dash(&["db", "restore", "--stop-writes", "--yes"]).await;
    assert_eq!(o.code, 0, "{}", show(&o));
    assert!(
        o.stdout.contains("RESTORED AND VERIFIED") && o.stdout.contains("now lifted"),
        "{}",
        show(&o)
    );
    let o = env.dash(&["db", "maintenance", "--json"]).await;
    let m: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(m["enabled"], false, "{}", show(&o));

    // Pool: refused without --yes, changed and read back with it.
    let o = env.dash(&["db", "pool", "--size", "9"]).await;
    assert_eq!(o.code, 4, "{}", show(&o));
    let o = env.dash(&["db", "pool", "--size", "9", "--yes"]).await;
    assert_eq!(o.code, 0, "{}", show(&o));
    assert!(
        o.stdout.contains("pg_pool_max_size now reads 9: confirmed"),
        "{}",
        show(&o)
    );

    // A corrupted dump fails verification (3) and is refused by restore (4).
    let file = std::fs::canonicalize(&latest).unwrap();
    flip_bytes(&file);
    let o = env
        .dash(&["db", "verify-backup", file.to_str().unwrap()])
        .await;
    assert_eq!(o.code, 3, "{}", show(&o));
    assert!(
        o.stdout.contains("mismatch") && o.stdout.contains("VERIFICATION FAILED"),
        "{}",
        show(&o)
    );
    let o = env.dash(&["db", "backups"]).await;
    assert_eq!(o.code, 3, "{}", show(&o));
    let o = env.dash(&["db", "restore", "--stop-writes", "--yes"]).await;
    assert_eq!(o.code, 4, "{}", show(&o));
    assert!(o.stderr.contains("sha256"), "{}", show(&o));

    // The API gone: dashctl verify fails with 3 and names each failed check.
    env.api = CLOSED.into();
    env.metrics = format!("{CLOSED}/metrics");
    let o = env.dash(&["verify"]).await;
    assert_eq!(o.code, 3, "{}", show(&o));
    assert!(o.stdout.contains("FAIL"), "{}", show(&o));
}

#[test]
fn help_documents_exit_codes() {
    for cmd in [
        &["db", "status", "--help"][..],
        &["db", "diagnose", "--help"],
        &["db", "terminate", "--help"],
        &["db", "restore", "--help"],
        &["verify", "--help"],
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_dashctl"))
            .args(cmd)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("Exit codes:"),
            "{cmd:?}: {text}"
        );
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dashctl"))
        .args(["db", "diagnose", "--help"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for code in ["10", "20", "30", "40", "dashctl db failover"] {
        assert!(text.contains(code), "{code}: {text}");
    }
}
