//! `dashctl db failover --etcd`: three real agents (`dashctl node`), a real
//! etcd and real PostgreSQL on 127.0.0.1 (`dash_testkit::TempAgents`), and
//! the real binary run as an operator would.

use std::time::{Duration, Instant};

use dash_dcs::{ClusterView, Dcs};
use dash_store::Db;
use dash_testkit::{Run, TempAgents};

const CLUSTER: &str = "failover-etcd-test";

fn start() -> TempAgents {
    TempAgents::start(env!("CARGO_BIN_EXE_dashctl"), CLUSTER)
}

/// `dashctl db failover ARGS --etcd E --cluster C`.
async fn failover(agents: &TempAgents, args: &[&str]) -> Run {
    let etcd = agents.endpoints();
    let mut all = vec!["db", "failover"];
    all.extend_from_slice(args);
    all.extend(["--etcd", &etcd, "--cluster", CLUSTER]);
    agents.runner().run(&all).await
}

fn index(name: &str) -> usize {
    (0..3).find(|&i| TempAgents::name(i) == name).unwrap()
}

async fn etcd_view(agents: &TempAgents) -> (Dcs, ClusterView) {
    let endpoints = agents.etcd.endpoints();
    let dcs = Dcs::connect(&endpoints, CLUSTER, Duration::from_secs(2))
        .await
        .expect("etcd");
    let view = dcs.view().await.expect("read etcd");
    (dcs, view)
}

/// Writes `n` rows through the pool, each acknowledged.
async fn write(db: &Db, n: usize) -> Vec<uuid::Uuid> {
    let mut c = db.conn().await.expect("connect to the primary");
    let mut ids = Vec::new();
    for _ in 0..n {
        let id = uuid::Uuid::new_v4();
        c.execute("INSERT INTO t (id) VALUES ($1)", &[&id])
            .await
            .expect("an acknowledged write");
        ids.push(id);
    }
    ids
}

/// How many of `ids` the writable primary has, retrying while it changes.
async fn present(db: &Db, ids: &[uuid::Uuid], limit: Duration) -> usize {
    let deadline = Instant::now() + limit;
    loop {
        let n = async {
            let mut c = db.conn().await?;
            let row = c
                .query_one("SELECT count(*) FROM t WHERE id = ANY($1)", &[&ids])
                .await?;
            Ok::<i64, dash_store::StoreError>(row.get(0))
        }
        .await;
        match n {
            Ok(n) => return n as usize,
            Err(e) if Instant::now() >= deadline => panic!("cannot count the rows: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Three agents leading with a synchronous standby, a table with rows:
/// `(agents, db, leader, its synchronous standby, the other one, rows)`.
async fn setup() -> (TempAgents, Db, usize, usize, usize, Vec<uuid::Uuid>) {
    let agents = start();
    let leader = agents.wait_ha(Duration::from_secs(120), None, true).await;
    let db = agents.db_with_table().await;
    let rows = write(&db, 200).await;
    let status = agents.status(leader).await.unwrap();
    let standby = index(status["sync_standbys"][0].as_str().expect("a sync standby"));
    let other = (0..3).find(|&i| i != leader && i != standby).unwrap();
    (agents, db, leader, standby, other, rows)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_with_the_leader_alive_moves_the_key_to_the_synchronous_standby_losing_nothing() {
    let (agents, db, old, standby, other, rows) = setup().await;
    let (old_name, standby_name) = (TempAgents::name(old), TempAgents::name(standby));

    // Guard rails, before anything is filed.
    let run = failover(&agents, &["--yes", "--target", &TempAgents::name(other)]).await;
    run.expect_code(4);
    assert!(
        run.stderr.contains("not a recorded synchronous standby"),
        "{}",
        run.show()
    );
    let run = failover(
        &agents,
        &["--yes", "--target", &standby_name, "--accept-data-loss"],
    )
    .await;
    run.expect_code(4);
    assert!(
        run.stderr.contains("only for a free leader key"),
        "{}",
        run.show()
    );
    let run = failover(&agents, &[]).await;
    run.expect_code(4);
    assert!(
        run.stderr.contains("pass --yes"),
        "no terminal, no --yes: {}",
        run.show()
    );
    let run = failover(&agents, &["--dry-run"]).await;
    run.expect_code(0);
    let planned = format!("failover from {old_name} to {standby_name}");
    assert!(run.stdout.contains(&planned), "{}", run.show());
    assert!(run.stdout.contains("no clean shutdown"), "{}", run.show());
    let (_, view) = etcd_view(&agents).await;
    assert_eq!(
        view.leader.map(|l| l.name),
        Some(old_name.clone()),
        "--dry-run changed nothing"
    );
    assert!(view.request.is_none(), "--dry-run filed nothing");

    let run = failover(&agents, &["--yes", "--json", "--wait", "90s"]).await;
    if run.code != 0 {
        panic!("{}\n{}", run.show(), agents.logs());
    }
    let j = run.json();
    assert_eq!(j["outcome"], "done", "{}", run.show());
    assert_eq!(
        j["new_leader"],
        standby_name.as_str(),
        "the key goes to the synchronous standby"
    );
    assert!(
        run.stderr.contains("filed: failover from"),
        "progress lines: {}",
        run.show()
    );
    let fenced = (j["history"].as_array().unwrap().iter()).any(|h| {
        h["member"] == old_name.as_str()
            && h["decision"] == "fence"
            && h["detail"]
                .as_str()
                .unwrap()
                .contains("fence postgres at once")
    });
    assert!(fenced, "the old leader fenced itself: {}", run.show());

    // Every write acknowledged before is on the new leader.
    assert_eq!(
        present(&db, &rows, Duration::from_secs(30)).await,
        rows.len()
    );
    let url = format!("http://127.0.0.1:{}/primary", agents.api_port(standby));
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 200);
    // The old leader rejoins as a streaming replica of the new one.
    agents
        .wait_status(old, Duration::from_secs(90), |s| {
            s["role"] == "replica" && s["streaming"] == true && s["leader"] == standby_name.as_str()
        })
        .await;
    let (_, view) = etcd_view(&agents).await;
    assert!(view.request.is_none(), "the request was cleared");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_to_a_standby_outside_the_sync_set_needs_accept_data_loss() {
    let (mut agents, db, old, standby, other, _) = setup().await;
    let (old_name, standby_name) = (TempAgents::name(old), TempAgents::name(standby));
    let other_name = TempAgents::name(other);
    let timeline = agents.status(other).await.unwrap()["timeline"]
        .as_u64()
        .unwrap();

    // The primary and its synchronous standby die; the key runs out and the
    // remaining replica, not in the sync set, correctly does not take it.
    agents.kill_agent(old);
    agents.kill_agent(standby);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, view) = etcd_view(&agents).await;
        let left = view
            .members
            .iter()
            .map(|m| m.name.clone())
            .collect::<Vec<_>>();
        if view.leader.is_none() && left == [other_name.clone()] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the key never came free: {view:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, view) = etcd_view(&agents).await;
    assert!(
        view.leader.is_none(),
        "{other_name} took the key by itself: {view:?}"
    );

    // Without the flag: refused, saying what could be lost and naming the standby.
    let run = failover(&agents, &["--yes", "--target", &other_name]).await;
    run.expect_code(4);
    let lack = format!("may lack writes {old_name} acknowledged");
    assert!(run.stderr.contains(&lack), "{}", run.show());
    let names = format!("{standby_name} (its agent is not running)");
    assert!(run.stderr.contains(&names), "{}", run.show());
    assert!(run.stderr.contains("--accept-data-loss"), "{}", run.show());
    let run = failover(&agents, &["--yes"]).await;
    run.expect_code(4);
    assert!(run.stderr.contains("with --target"), "{}", run.show());
    let run = failover(
        &agents,
        &["--dry-run", "--target", &other_name, "--accept-data-loss"],
    )
    .await;
    run.expect_code(0);
    assert!(run.stdout.contains("accepting data loss"), "{}", run.show());
    let (_, view) = etcd_view(&agents).await;
    assert!(
        view.leader.is_none() && view.request.is_none(),
        "refusals changed etcd"
    );

    // With it: exactly that member takes the key and promotes.
    let args = [
        "--yes",
        "--json",
        "--wait",
        "60s",
        "--target",
        &other_name,
        "--accept-data-loss",
    ];
    let run = failover(&agents, &args).await;
    if run.code != 0 {
        panic!("{}\n{}", run.show(), agents.logs());
    }
    let j = run.json();
    assert_eq!(j["outcome"], "done", "{}", run.show());
    assert_eq!(j["new_leader"], other_name.as_str());
    assert_eq!(j["accept_data_loss"], true);
    let url = format!("http://127.0.0.1:{}/primary", agents.api_port(other));
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 200);
    agents
        .wait_status(other, Duration::from_secs(10), |s| {
            s["timeline"].as_u64().is_some_and(|t| t > timeline)
        })
        .await;
    write(&db, 10).await;

    // The /sync record is the new leader's, and the choice is in the history.
    let (dcs, view) = etcd_view(&agents).await;
    let sync = view.sync.expect("a sync record").value;
    assert_eq!(sync.leader, other_name, "{sync:?}");
    assert!(view.request.is_none(), "the request was cleared");
    let history = dcs.history().await.unwrap();
    let recorded = history.iter().any(|e| {
        e.member == other_name
            && e.decision == "promote"
            && e.detail.contains("accepting data loss")
            && e.detail.contains(&standby_name)
    });
    assert!(recorded, "{history:#?}");
}
