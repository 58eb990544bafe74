//! The dashboard page in headless Chromium (Debian's `chromium` and
//! `chromium-driver`, driven over WebDriver): it renders the cluster and a
//! swarm's budget bar, shows the Database Connection Error banner when
//! PostgreSQL stops and clears it when PostgreSQL returns, all without a
//! reload. With `DASH_SCREENSHOTS_DIR` set it saves
//! `dashboard-healthy.png` and `dashboard-db-down.png` there.
//!
//! Without Chromium it skips and says to run `scripts/install-deps.sh`;
//! under CI (`CI` set) it fails instead.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::TestApp;
use dash_pg::StopMode;
use fantoccini::{Client, ClientBuilder};
use serde_json::{json, Value};

/// Generous bound on anything the page should show.
const WAIT: Duration = Duration::from_secs(10);
/// Bound on the banner clearing once PostgreSQL is back (the pool reconnects).
const RECOVERY: Duration = Duration::from_secs(30);

/// A program among the usual places, or `None`.
fn find(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path).chain(["/usr/bin".into(), "/usr/lib/chromium".into()]);
    let dirs: Vec<PathBuf> = dirs.collect();
    names
        .iter()
        .flat_map(|n| dirs.iter().map(move |d| d.join(n)))
        .find(|p| p.is_file())
}

/// chromedriver, running in its own process group with the browser it
/// starts; the whole group is killed on drop, pass or fail.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn start(chromedriver: &Path) -> Driver {
        use std::os::unix::process::CommandExt;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(chromedriver)
            .args([format!("--port={port}"), "--allowed-ips=127.0.0.1".into()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start chromedriver");
        Driver { child, port }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The group is chromedriver's own: its id is chromedriver's PID.
        let group = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// A WebDriver session on headless Chromium with a fresh profile.
async fn browser(driver: &Driver, chromium: &Path, profile: &Path) -> Client {
    let args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--disable-breakpad",
        "--window-size=1280,1100",
    ];
    let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    args.push(format!("--user-data-dir={}", profile.display()));
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {"binary": chromium, "args": args},
    });
    let Value::Object(caps) = caps else {
        unreachable!()
    };
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let url = format!("http://127.0.0.1:{}", driver.port);
    let deadline = Instant::now() + WAIT;
    loop {
        match ClientBuilder::new(connector.clone())
            .capabilities(caps.clone())
            .connect(&url)
            .await
        {
            Ok(c) => return c,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("no WebDriver session within {WAIT:?}: {e}"),
        }
    }
}

/// Evaluates `expr` in the page.
async fn eval(c: &Client, expr: &str) -> Value {
    c.execute(&format!("return ({expr});"), vec![])
        .await
        .unwrap_or_else(|e| panic!("evaluate {expr}: {e}"))
}

/// Polls `expr` until it is true; how long that took.
async fn until(c: &Client, what: &str, expr: &str, bound: Duration) -> Duration {
    let started = Instant::now();
    while eval(c, expr).await != Value::Bool(true) {
        if started.elapsed() > bound {
            let banner = eval(c, "document.getElementById('banner').textContent").await;
            panic!("{what} not seen within {bound:?} (banner: {banner})");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    started.elapsed()
}

async fn screenshot(c: &Client, name: &str) {
    let Some(dir) = std::env::var_os("DASH_SCREENSHOTS_DIR") else {
        return;
    };
    let png = c.screenshot().await.expect("screenshot");
    std::fs::create_dir_all(&dir).expect("screenshot directory");
    let path = Path::new(&dir).join(name);
    std::fs::write(&path, png).expect("write the screenshot");
    println!("saved {}", path.display());
}

/// A swarm with its budget past the warning threshold, and agents in two states.
async fn seed(app: &TestApp) {
    let s = app
        .swarm(json!({"name": "<img src=x onerror=alert(1)>", "strategy": "tree", "budget": {"allocated": 10.0}}))
        .await;
    let a = app
        .agent(json!({"swarm_id": s["id"], "task": "spend"}))
        .await;
    let id = a["id"].as_str().unwrap();
    assert_eq!(app.act(&format!("/agents/{id}/start")).await.0, 200);
    let (st, b) = (app.post(&format!("/agents/{id}/progress"), json!({"cost": 8.0}))).await;
    assert_eq!(st, 200, "{b}");
    app.agent(json!({"swarm_id": s["id"], "task": "waits"}))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_follows_the_database_going_down_and_back_without_a_reload() {
    let tools = (
        find(&["chromedriver"]),
        find(&["chromium", "chromium-browser"]),
    );
    let (Some(chromedriver), Some(chromium)) = tools else {
        let message = "the dashboard browser test needs chromium and chromedriver: run scripts/install-deps.sh";
        assert!(std::env::var_os("CI").is_none(), "{message}");
        eprintln!("skipped: {message}");
        return;
    };
    let app = TestApp::spawn().await;
    seed(&app).await;
    let profile = tempfile::tempdir().expect("a browser profile directory");
    let driver = Driver::start(&chromedriver);
    let c = browser(&driver, &chromium, profile.path()).await;
    c.goto(&format!("{}/", app.base))
        .await
        .expect("open the dashboard");
    let loaded_at = eval(&c, "window.dashLoadedAt").await;
    assert!(loaded_at.is_number(), "{loaded_at}");

    until(
        &c,
        "the primary's card",
        "!!document.querySelector('.node.primary .badge.primary')",
        WAIT,
    )
    .await;
    let bar = "document.querySelector('#swarms .fill[data-level=\"warning\"]')";
    until(
        &c,
        "the swarm's amber budget bar",
        &format!("!!{bar}"),
        WAIT,
    )
    .await;
    assert_eq!(eval(&c, &format!("{bar}.style.width")).await, "80%");
    let name = eval(&c, "document.querySelector('#swarms td').textContent").await;
    assert_eq!(
        name, "<img src=x onerror=alert(1)>",
        "the name is shown as text"
    );
    assert_eq!(
        eval(&c, "document.querySelectorAll('#swarms img').length").await,
        0
    );
    until(
        &c,
        "the agent counts",
        "document.querySelector('[data-status=running] b')?.textContent === '1'",
        WAIT,
    )
    .await;
    until(
        &c,
        "recent events",
        "document.querySelectorAll('#events tr td').length > 2",
        WAIT,
    )
    .await;
    assert_eq!(
        eval(&c, "document.getElementById('banner').dataset.state").await,
        "ok"
    );
    screenshot(&c, "dashboard-healthy.png").await;

    let asked = Instant::now();
    tokio::task::block_in_place(|| app.node.stop(StopMode::Fast)).expect("stop PostgreSQL");
    let stopping = asked.elapsed();
    let banner = "document.getElementById('banner').dataset.state === 'db-down'";
    let took = until(&c, "the Database Connection Error banner", banner, WAIT).await;
    println!(
        "banner shown {:?} after the stop was asked ({took:?} after PostgreSQL had stopped)",
        stopping + took
    );
    let text = eval(&c, "document.getElementById('banner').textContent").await;
    assert!(
        text.as_str()
            .unwrap()
            .starts_with("Database Connection Error"),
        "{text}"
    );
    let cluster = "document.getElementById('cluster-state').classList.contains('bad')";
    until(&c, "the cluster panel without a primary", cluster, WAIT).await;
    screenshot(&c, "dashboard-db-down.png").await;

    tokio::task::block_in_place(|| app.node.start()).expect("start PostgreSQL again");
    let clear = "document.getElementById('banner').dataset.state === 'ok'";
    let took = until(&c, "the banner clearing", clear, RECOVERY).await;
    println!("banner cleared {took:?} after PostgreSQL was started again");
    assert_eq!(
        eval(&c, "window.dashLoadedAt").await,
        loaded_at,
        "the page was not reloaded"
    );
    c.close().await.expect("end the browser session");
}
