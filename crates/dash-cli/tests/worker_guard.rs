//! A worker killed outright (SIGKILL) takes its runtimes' whole process
//! groups with it: the runtime guard (`dashctl runtime-guard`) gets the
//! parent-death signal and kills the group, children of the runtime
//! included, so no stale run goes on beside the attempt another worker
//! starts once the lease expires.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dash_testkit::TestApp;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::json;

/// Whether `pid` still runs (a zombie waiting to be reaped does not).
fn alive(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat.rsplit(") ").next().and_then(|r| r.chars().next());
    !stat.is_empty() && state != Some('Z')
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_takes_its_runtimes_children_with_it() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    // The runtime starts a child of its own, records both, and waits.
    let script = format!("sleep 300 & echo $$ $! > {}; wait", pids.display());
    let mut worker = Command::new(env!("CARGO_BIN_EXE_dashctl"))
        .args(["worker", "--runtime", "/bin/sh", "--runtime-arg", "-c"])
        .args(["--runtime-arg", &script, "--poll", "200ms", "--slots", "1"])
        .env("DATABASE_URL", app.node.url(&app.dbname))
        .env("DASH_HOME", dir.path())
        .env("DASH_LOG", "warn")
        .stdin(Stdio::null())
        .spawn()
        .expect("run dashctl worker");
    let (st, _) = app.post("/agents", json!({"task": "wait"})).await;
    assert_eq!(st, 201);
    let deadline = Instant::now() + Duration::from_secs(60);
    let (runtime, child) = loop {
        let text = std::fs::read_to_string(&pids).unwrap_or_default();
        let ids: Vec<i32> = text
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        if ids.len() == 2 {
            break (ids[0], ids[1]);
        }
        assert!(Instant::now() < deadline, "the runtime never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(alive(runtime) && alive(child));

    kill(Pid::from_raw(worker.id() as i32), Signal::SIGKILL).unwrap();
    worker.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(runtime) || alive(child) {
        if Instant::now() > deadline {
            // Leave nothing behind, then fail.
            for p in [runtime, child] {
                let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
            }
            panic!("the runtime ({runtime}) or its child ({child}) outlived the worker");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
