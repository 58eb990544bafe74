//! Stopped nodes induced for real: status reports them unreachable and
//! diagnose names the scenario (1 when a node comes back or only a replica is
//! down or nothing can take over, 3 when the primary is gone and a replica
//! can be promoted).

mod runbook_common;

use std::time::Duration;

use dash_pg::StopMode;
use dash_runbook::diagnose::{diagnose, DiagnoseOptions, Diagnosis};
use dash_runbook::probe::{NodeRole, Step};
use dash_runbook::situation::Situation;
use dash_runbook::status::{gather, Verdict};
use runbook_common::*;

fn window(ms: u64) -> DiagnoseOptions {
    DiagnoseOptions {
        window: Duration::from_millis(ms),
        ..DiagnoseOptions::default()
    }
}

fn assert_situation(d: &Diagnosis, expected: Situation) {
    assert_eq!(d.situation, expected, "{}", d.render());
}

/// Asserts that one of `lines` contains every one of `words`.
fn assert_any(lines: &[String], words: &[&str]) {
    assert!(
        lines.iter().any(|l| words.iter().all(|w| l.contains(w))),
        "{lines:?}"
    );
}

/// Waits until the primary reports a streaming standby.
async fn wait_streaming(t: &dash_runbook::Target) {
    for _ in 0..100 {
        let s = gather(t).await;
        if s.verdict == Verdict::Healthy {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("replica never streamed: {}", gather(t).await.render());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_nodes_are_unreachable_and_diagnosed() {
    let primary = start_node().await;
    let db = primary.fresh_database().unwrap();
    let replica = tokio::task::block_in_place(|| primary.replica()).unwrap();
    let t = target(&[&primary, &replica], &db, no_api());
    wait_streaming(&t).await;

    let s = gather(&t).await;
    assert_eq!(s.verdict, Verdict::Healthy, "{}", s.render());
    assert_eq!(s.nodes[0].role, Some(NodeRole::Primary));
    assert_eq!(s.nodes[1].role, Some(NodeRole::Replica));
    assert!(s.nodes[0].timeline.is_some() && s.nodes[0].lsn.is_some());
    assert_eq!(s.nodes[0].replication.len(), 1);
    assert_eq!(
        s.nodes[1].wal_receiver.as_ref().unwrap().status,
        "streaming"
    );
    assert_eq!(s.nodes[0].data_checksums, Some(true));
    assert!(s.api.error.is_some(), "no API in this test");
    let table = s.render();
    assert!(
        table.contains("primary")
            && table.contains("streaming")
            && table.contains("Verdict: healthy"),
        "{table}"
    );
    let d = diagnose(&t, &window(500)).await;
    assert_situation(&d, Situation::Healthy);

    // The replica stops: degraded, scenario 1 (restart it).
    stop_node(&replica.node, StopMode::Fast).await;
    let s = gather(&t).await;
    assert_eq!(s.verdict, Verdict::Degraded, "{}", s.render());
    assert!(
        matches!(&s.nodes[1].tcp, Step::Failed { reason, .. } if reason == "refused"),
        "{:?}",
        s.nodes[1].tcp
    );
    assert_eq!(s.exit_code(), 3);
    let d = diagnose(&t, &window(500)).await;
    assert_situation(&d, Situation::TransientConnection);
    assert_eq!(d.exit_code, 10);
    assert_any(&d.evidence, &["node1", "refused"]);

    // The replica comes back, the primary stops: scenario 3, promote node1.
    restart_node(&replica.node).await;
    stop_node(&primary.node, StopMode::Fast).await;
    let s = gather(&t).await;
    assert_eq!(s.verdict, Verdict::NoPrimary, "{}", s.render());
    assert_eq!(s.exit_code(), 5);
    assert!(!s.nodes[0].reachable());
    let d = diagnose(&t, &window(800)).await;
    assert_situation(&d, Situation::PrimaryLost);
    assert_eq!(d.exit_code, 30);
    assert!(
        d.fix[0].starts_with("dashctl db failover") && d.fix[0].contains("node1"),
        "{:?}",
        d.fix
    );
    assert_any(&d.evidence, &["node0", "throughout"]);

    // The primary comes back within the window: scenario 1, transient.
    let p = primary.node.clone();
    let restart = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(700));
        p.start().unwrap();
    });
    let d = diagnose(&t, &window(15_000)).await;
    restart.join().unwrap();
    assert_situation(&d, Situation::TransientConnection);
    assert_any(&d.evidence, &["node0", "answered again after"]);
    assert_any(&d.fix, &["dashctl db status"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_stopped_primary_is_a_database_down() {
    let node = start_node().await;
    let db = node.fresh_database().unwrap();
    let t = target(&[&node], &db, no_api());
    stop_node(&node.node, StopMode::Immediate).await;
    let s = gather(&t).await;
    assert_eq!(s.verdict, Verdict::NoPrimary);
    assert!(s.render().contains("refused"), "{}", s.render());
    let d = diagnose(&t, &window(500)).await;
    assert_situation(&d, Situation::TransientConnection);
    assert_any(&d.evidence, &["no replica answers"]);
    assert_any(&d.fix, &["rollout restart statefulset/postgres"]);
}
