//! `dashctl node` on one machine: three real agents (the real binary), a
//! real etcd, real PostgreSQL. The multi-host scenarios with partitions run
//! on network namespaces (`dash-bench/tests/hosts.rs`); these need no root
//! beyond what PostgreSQL itself needs.

use std::path::Path;
use std::time::{Duration, Instant};

use dash_store::Db;
use dash_testkit::TempAgents;

fn agents() -> TempAgents {
    TempAgents::start(env!("CARGO_BIN_EXE_dashctl"), "agents-test")
}

/// Writes `n` rows, each acknowledged, retrying through a failover.
async fn write(db: &Db, n: usize, limit: Duration) -> Vec<uuid::Uuid> {
    let deadline = Instant::now() + limit;
    let mut acked = Vec::new();
    while acked.len() < n {
        assert!(
            Instant::now() < deadline,
            "writes did not go through within {limit:?}"
        );
        let id = uuid::Uuid::new_v4();
        let ok = async {
            let mut c = db.conn().await?;
            c.execute("INSERT INTO t (id) VALUES ($1)", &[&id]).await
        }
        .await;
        match ok {
            Ok(_) => acked.push(id),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    acked
}

async fn missing(db: &Db, ids: &[uuid::Uuid]) -> usize {
    let mut c = db.conn().await.expect("connect");
    let n: i64 = c
        .query_one("SELECT count(*) FROM t WHERE id = ANY($1)", &[&ids])
        .await
        .expect("count")
        .get(0);
    ids.len() - n as usize
}

async fn setup() -> (TempAgents, Db, usize) {
    let agents = agents();
    let leader = agents.wait_ha(Duration::from_secs(90), None, false).await;
    let db = agents.db_with_table().await;
    (agents, db, leader)
}

fn gone(dir: &Path, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if dash_pg::data_dir_pids(dir).is_empty() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_primary_hands_over_at_once_and_rejoins_with_nothing_lost() {
    let (agents, db, old) = setup().await;
    let mut acked = write(&db, 200, Duration::from_secs(20)).await;
    let crashed = Instant::now();
    dash_pg::kill_data_dir_processes(&agents.data(old));
    acked.extend(write(&db, 200, Duration::from_secs(30)).await);
    let new = agents.wait_ha(Duration::from_secs(60), None, false).await;
    assert_ne!(new, old, "the crashed primary kept the key");
    assert!(
        crashed.elapsed() < Duration::from_secs(60),
        "writes resumed only after {:?}",
        crashed.elapsed()
    );
    assert_eq!(missing(&db, &acked).await, 0, "acknowledged writes lost");
    // The old primary comes back as a streaming replica of the new one.
    let rejoined = |s: &serde_json::Value| s["role"] == "replica" && s["streaming"] == true;
    agents
        .wait_status(old, Duration::from_secs(60), rejoined)
        .await;
    // The node API and metrics say who leads.
    let url = format!("http://127.0.0.1:{}/primary", agents.api_port(new));
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 200);
    let url = format!("http://127.0.0.1:{}/primary", agents.api_port(old));
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 503);
    let url = format!("http://127.0.0.1:{}/replica", agents.api_port(old));
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 200);
    let url = format!("http://127.0.0.1:{}/metrics", agents.api_port(new));
    let text = reqwest::get(&url).await.unwrap().text().await.unwrap();
    assert!(text.contains("dash_node_leader 1"), "{text}");
    assert!(
        text.contains("dash_node_decisions_total{decision=\"promote\",outcome=\"ok\"}"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_agent_takes_its_postgres_with_it_and_a_standby_takes_the_key() {
    let (mut agents, db, old) = setup().await;
    let mut acked = write(&db, 100, Duration::from_secs(20)).await;
    agents.kill_agent(old);
    assert!(
        gone(&agents.data(old), Duration::from_secs(5)),
        "PostgreSQL outlived its agent"
    );
    acked.extend(write(&db, 100, Duration::from_secs(30)).await);
    let new = agents
        .wait_ha(Duration::from_secs(60), Some(old), false)
        .await;
    assert_ne!(new, old);
    agents.start_agent(old);
    let rejoined = |s: &serde_json::Value| {
        s["role"] == "replica" && s["streaming"] == true && s["leader"] == TempAgents::name(new)
    };
    agents
        .wait_status(old, Duration::from_secs(60), rejoined)
        .await;
    assert_eq!(missing(&db, &acked).await, 0, "acknowledged writes lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_that_cannot_renew_its_lease_stops_writing_before_it_expires() {
    let (mut agents, db, leader) = setup().await;
    let acked = write(&db, 50, Duration::from_secs(20)).await;
    let before = agents.status(leader).await.unwrap();
    let lease_left = Duration::from_millis(before["lease_remaining_ms"].as_u64().unwrap());
    // etcd gone: nobody can renew, so nobody may stay writable.
    let cut = Instant::now();
    let cfg = agents.etcd.member.config().clone();
    agents.etcd.member.kill();
    let ttl = Duration::from_secs(3);
    let fenced = loop {
        let s = agents.status(leader).await.unwrap_or_default();
        if s["role"] != "primary" {
            break cut.elapsed();
        }
        assert!(
            cut.elapsed() < ttl * 3,
            "still primary long after its lease: {s}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        fenced <= lease_left + Duration::from_millis(500),
        "fenced after {fenced:?}, but the lease was certain for only {lease_left:?}"
    );
    assert!(
        fenced < ttl,
        "fenced after {fenced:?}, not before the {ttl:?} TTL could expire"
    );
    // etcd back: a leader again, and nothing acknowledged is lost.
    agents.etcd.member = dash_dcs::EtcdMember::start(cfg).expect("etcd again");
    agents.wait_ha(Duration::from_secs(90), None, false).await;
    assert_eq!(missing(&db, &acked).await, 0);
}
