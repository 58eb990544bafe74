//! Scenario 4 induced for real: sessions left idle in transaction by a second
//! client are listed, named by diagnose, and ended by terminate; sessions
//! near max_connections are named too.

mod runbook_common;

use std::time::Duration;

use dash_runbook::connections::{self, run_terminate};
use dash_runbook::diagnose::{diagnose, DiagnoseOptions};
use dash_runbook::situation::Situation;
use dash_runbook::RunbookError;
use runbook_common::*;

fn quick(idle: Duration) -> DiagnoseOptions {
    DiagnoseOptions {
        window: Duration::from_millis(500),
        idle_threshold: idle,
        ..DiagnoseOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_in_transaction_sessions_are_listed_diagnosed_and_terminated() {
    let node = start_node().await;
    let db = node.fresh_database().unwrap();
    let t = target(&[&node], &db, no_api());
    let held_a = idle_in_transaction(&node, &db).await;
    let held_b = idle_in_transaction(&node, &db).await;
    let busy = client(&node, &db).await; // idle, not in a transaction: must be left alone
    tokio::time::sleep(Duration::from_millis(1200)).await;

    let report = connections::show(&t, false, 20).await.unwrap();
    assert_eq!(report.idle_in_transaction.len(), 2, "{report:#?}");
    assert!(report.by_state["idle in transaction"] >= 2);
    assert_eq!(
        report.by_state.values().sum::<i64>(),
        report.total,
        "every session's state is counted: {:?}",
        report.by_state
    );
    assert!(report
        .idle_in_transaction
        .iter()
        .all(|s| s.application == "test-client"
            && s.query.is_none()
            && s.query_seconds.unwrap() >= 1.0));
    let shown = connections::show(&t, true, 20).await.unwrap();
    assert!(shown.idle_in_transaction[0]
        .query
        .as_deref()
        .unwrap()
        .contains("held_open"));
    assert!(report.render(false).contains("--show-queries"));

    // Diagnose names scenario 4 and prints the command that fixes it.
    let d = diagnose(&t, &quick(Duration::from_secs(1))).await;
    assert_eq!(d.situation, Situation::PoolExhaustion, "{}", d.render());
    assert_eq!(d.exit_code, 40);
    assert!(
        d.evidence
            .iter()
            .any(|e| e.contains("2 session(s) idle in transaction")),
        "{:?}",
        d.evidence
    );
    assert!(
        d.fix
            .iter()
            .any(|f| f.starts_with("dashctl db terminate --idle-in-transaction --older-than 1s")),
        "{:?}",
        d.fix
    );
    // With the runbook's 300s threshold they are too young to count.
    let d = diagnose(&t, &quick(Duration::from_secs(300))).await;
    assert_eq!(d.situation, Situation::Healthy, "{}", d.render());

    // Without a terminal and without --yes: refused, nothing ended.
    let e = run_terminate(&t, Duration::from_secs(1), false, false)
        .await
        .unwrap_err();
    assert!(matches!(e, RunbookError::NeedsYes { .. }), "{e}");
    assert!(!held_a.is_closed());

    let dry = run_terminate(&t, Duration::from_secs(1), true, false)
        .await
        .unwrap();
    assert_eq!((dry.sessions.len(), dry.ended()), (2, 0));
    assert!(!held_a.is_closed());

    let done = run_terminate(&t, Duration::from_secs(1), false, true)
        .await
        .unwrap();
    assert_eq!(done.ended(), 2, "{}", done.render());
    assert_eq!(done.exit_code(), 0);
    assert!(done.render().contains("ended 2 of 2"));
    // The held sessions are gone: their next statement fails; the idle one lives.
    assert!(held_a.simple_query("SELECT 1").await.is_err());
    assert!(held_b.simple_query("SELECT 1").await.is_err());
    assert!(busy.simple_query("SELECT 1").await.is_ok());
    let after = connections::show(&t, false, 20).await.unwrap();
    assert!(after.idle_in_transaction.is_empty(), "{after:#?}");
    let again = run_terminate(&t, Duration::from_secs(1), false, false)
        .await
        .unwrap();
    assert!(
        again.sessions.is_empty(),
        "nothing left, nothing to confirm"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_near_max_connections_are_scenario_4() {
    let node = start_node_with(&[("max_connections", "10")]).await;
    let db = node.fresh_database().unwrap();
    let t = target(&[&node], &db, no_api());
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(client(&node, &db).await);
    }
    let d = diagnose(&t, &quick(Duration::from_secs(300))).await;
    assert_eq!(d.situation, Situation::PoolExhaustion, "{}", d.render());
    assert!(
        d.evidence
            .iter()
            .any(|e| e.contains("of max_connections 10")),
        "{:?}",
        d.evidence
    );
    drop(held);
}
