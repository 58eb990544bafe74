//! Scenario 2 induced for real: bytes of a table's page are flipped on disk
//! while the server is down (data checksums are on in Dash's clusters).
//! `--deep` (amcheck) finds it; once anything reads the page, the checksum
//! failure in pg_stat_database names it without --deep too.

mod runbook_common;

use std::io::{Seek, SeekFrom, Write};
use std::time::Duration;

use dash_pg::StopMode;
use dash_runbook::diagnose::{diagnose, DiagnoseOptions};
use dash_runbook::situation::Situation;
use runbook_common::*;

fn opts(deep: bool) -> DiagnoseOptions {
    DiagnoseOptions {
        window: Duration::from_millis(500),
        deep,
        ..DiagnoseOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_page_is_scenario_2() {
    let node = start_node().await;
    let db = node.fresh_database().unwrap();
    let t = target(&[&node], &db, no_api());
    let c = client(&node, &db).await;
    c.batch_execute(
        "CREATE TABLE agents (id int PRIMARY KEY, task text);
         INSERT INTO agents SELECT g, 'task ' || g FROM generate_series(1, 100) g;
         CHECKPOINT;",
    )
    .await
    .unwrap();
    let path: String = c
        .query_one("SELECT pg_relation_filepath('agents')", &[])
        .await
        .unwrap()
        .get(0);
    drop(c);

    // Healthy, and amcheck agrees.
    let d = diagnose(&t, &opts(true)).await;
    assert_eq!(d.situation, Situation::Healthy, "{}", d.render());
    let a = d.amcheck.as_ref().unwrap();
    assert!(a.unavailable.is_none() && a.failures.is_empty(), "{a:?}");
    assert!(a.indexes_checked >= 1 && a.tables_checked >= 1, "{a:?}");

    // Flip bytes in the middle of the table's first page while the server is down.
    let file = node.data_dir().join(path);
    blocking({
        let n = node.node.clone();
        move || n.stop(StopMode::Fast).unwrap()
    })
    .await;
    let mut f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
    f.seek(SeekFrom::Start(4000)).unwrap();
    f.write_all(&[0xde, 0xad, 0xbe, 0xef]).unwrap();
    drop(f);
    blocking({
        let n = node.node.clone();
        move || n.start().unwrap()
    })
    .await;

    let d = diagnose(&t, &opts(true)).await;
    assert_eq!(d.situation, Situation::Corruption, "{}", d.render());
    assert_eq!(d.exit_code, 20);
    assert!(
        d.evidence
            .iter()
            .any(|e| e.starts_with("amcheck:") && e.contains("agents")),
        "{:?}",
        d.evidence
    );
    assert!(
        d.fix
            .iter()
            .any(|f| f == "dashctl db restore FILE --stop-writes"),
        "{:?}",
        d.fix
    );

    // The read by amcheck counted in pg_stat_database: plain diagnose sees it now.
    let d = diagnose(&t, &opts(false)).await;
    assert_eq!(d.situation, Situation::Corruption, "{}", d.render());
    assert!(
        d.evidence.iter().any(|e| e.contains("checksum failure")),
        "{:?}",
        d.evidence
    );
    assert_eq!(d.status.exit_code(), 3, "status is degraded too");
}
