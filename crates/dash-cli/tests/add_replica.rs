//! `dashctl db add-replica` as a user runs it beside `dashctl up`: refused
//! without a running platform, checked by `--dry-run`, then a third node
//! added online while writes go through the API (none fails), streaming and
//! caught up, and the synchronous standby once the present one is lost.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::up::{eventually, statuses, temp_home, Up};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::json;

/// Writes through the API until told to stop (bounded: 20,000 writes or
/// 5 minutes): (acknowledged, failed, longest write).
fn writer(
    url: String,
    token: String,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<(u64, u64, Duration)> {
    tokio::spawn(async move {
        let http = reqwest::Client::new();
        let (ok, failed) = (AtomicU64::new(0), AtomicU64::new(0));
        let mut longest = Duration::ZERO;
        let started = Instant::now();
        for i in 0..20_000u32 {
            if stop.load(Ordering::SeqCst) || started.elapsed() > Duration::from_secs(300) {
                break;
            }
            let t = Instant::now();
            let r = http
                .post(&url)
                .bearer_auth(&token)
                .json(&json!({"name": format!("w{i}"), "strategy": "parallel"}))
                .timeout(Duration::from_secs(10))
                .send()
                .await;
            longest = longest.max(t.elapsed());
            match r {
                Ok(r) if r.status().is_success() => ok.fetch_add(1, Ordering::SeqCst),
                _ => failed.fetch_add(1, Ordering::SeqCst),
            };
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        (ok.into_inner(), failed.into_inner(), longest)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_is_added_online_streams_catches_up_and_becomes_the_standby_when_needed() {
    let (_dir, home, cli) = temp_home();

    // Nothing recorded: a usage error naming the way.
    let none = cli.run(&["db", "add-replica"]).await;
    none.expect_code(2);
    assert!(none.stderr.contains("dashctl up"), "{}", none.show());

    let (api_port, metrics_port) = (dash_pg::free_port(), dash_pg::free_port());
    let mut up = Up::start(&home, Vec::new(), api_port, metrics_port);
    up.wait_up(Duration::from_secs(180));
    let topo = up.topo();
    assert_eq!(topo.nodes.len(), 2);

    // --dry-run checks and records nothing; a bad name is a usage error.
    let dry = cli.run(&["db", "add-replica", "--dry-run"]).await;
    dry.expect_code(0);
    assert!(dry.stdout.contains("would add node2"), "{}", dry.show());
    assert_eq!(up.topo().nodes.len(), 2, "the dry run recorded a node");
    let bad = cli.run(&["db", "add-replica", "--name", "no spaces"]).await;
    bad.expect_code(2);
    let taken = topo.nodes[0].port.to_string();
    let clash = cli.run(&["db", "add-replica", "--pg-port", &taken]).await;
    clash.expect_code(2);
    assert!(clash.stderr.contains("--pg-port"), "{}", clash.show());

    // Added while writes go on: none fails.
    let stop = Arc::new(AtomicBool::new(false));
    let token = topo.api_token.expose().to_string();
    let writes = writer(up.api("/swarms"), token, stop.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let added = cli.run(&["db", "add-replica", "--json"]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    let (ok, failed, longest) = writes.await.unwrap();
    added.expect_code(0);
    let report = added.json();
    assert_eq!(report["name"], "node2", "{}", added.show());
    assert_eq!(report["streaming"], true);
    assert_eq!(report["caught_up"], true);
    eprintln!(
        "add-replica took {} ms (streaming after {} ms); {ok} writes during it, {failed} failed, longest {longest:?}",
        report["total_ms"], report["to_streaming_ms"]
    );
    assert!(ok > 0, "no write went through during the add");
    assert_eq!(failed, 0, "writes failed while the replica was added");
    assert!(
        up.output().contains("node2 was added"),
        "dashctl up did not say it started the agent:\n{}",
        up.output()
    );
    let topo = up.topo();
    assert_eq!(topo.nodes.len(), 3);
    let node2 = statuses(&topo)
        .await
        .into_iter()
        .find(|s| s.name == "node2")
        .expect("node2 answers");
    assert!(node2.role == "replica" && node2.streaming, "{node2:?}");

    // The present standby lost: node2 is the one the leader records.
    let leader = statuses(&topo)
        .await
        .into_iter()
        .find(|s| s.holds_key)
        .expect("a leader");
    let standby = (leader.sync_standbys.first().cloned()).expect("a synchronous standby");
    assert_ne!(standby, "node2", "the add changed the sync set");
    let pid = up.agent_pid(&standby).expect("the standby's agent");
    kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
    eventually(
        Duration::from_secs(60),
        "node2 the recorded standby",
        || async {
            let all = statuses(&topo).await;
            let l = all.iter().find(|s| s.holds_key && s.role == "primary")?;
            (l.sync_standbys == ["node2"]).then_some(())
        },
    )
    .await;

    let (code, _) = up.interrupt();
    assert_eq!(code, 0, "{}", up.output());
    for n in &topo.nodes {
        assert!(
            dash_pg::data_dir_pids(&n.data_dir).is_empty(),
            "a process of {} outlived dashctl up",
            n.name
        );
    }

    // With the platform stopped: refused, nothing recorded.
    let refused = cli.run(&["db", "add-replica"]).await;
    refused.expect_code(4);
    assert!(refused.stderr.contains("dashctl up"), "{}", refused.show());
    assert_eq!(up.topo().nodes.len(), 3);
}
