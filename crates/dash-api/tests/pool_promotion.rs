//! The pool during a failover with the old primary silent (frozen or cut
//! off): a standby that is promoted while a search for the primary is under
//! way is found by that search, not after the silent host's connect timeout
//! and another search.

mod common;

use std::time::Duration;

use dash_store::pool::{describe, find_primary};
use dash_store::{DbSettings, HostPort};
use dash_testkit::TempNode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_promoted_during_a_search_is_found_by_it() {
    let node = tokio::task::spawn_blocking(TempNode::start)
        .await
        .unwrap()
        .expect("start PostgreSQL");
    let dbname = node.fresh_database().expect("create database");
    let standby = tokio::task::block_in_place(|| node.replica()).expect("start a standby");
    // The old primary is gone (else the search would follow the standby to it).
    tokio::task::block_in_place(|| node.stop(dash_pg::StopMode::Fast)).expect("stop the primary");
    // Accepts TCP and never answers the startup packet, like a frozen host.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let settings = DbSettings {
        hosts: vec![
            HostPort {
                host: "127.0.0.1".into(),
                port: silent.local_addr().unwrap().port(),
            },
            HostPort {
                host: standby.host().to_string(),
                port: standby.port(),
            },
        ],
        // The bound on the search: far longer than the test should take.
        connect_timeout: Duration::from_secs(30),
        ..common::db_settings(&[&node], &dbname)
    };
    let search = tokio::spawn(async move {
        find_primary(&settings, None, |_| {})
            .await
            .map(|found| found.host.port)
            .map_err(|errors| describe(&errors))
    });
    // The standby has said no by now (the silent host is tried first, the
    // standby after a short head start); then it is promoted.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !search.is_finished(),
        "the search ended before the promotion"
    );
    tokio::task::block_in_place(|| standby.promote()).expect("promote the standby");
    let found = search
        .await
        .unwrap()
        .expect("the search finds the promoted standby");
    assert_eq!(found, standby.port());
    drop(silent);
}
