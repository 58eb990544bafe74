//! The load driver against the real app on a real PostgreSQL node: every
//! write it reports as acknowledged exists afterwards, exactly once.

use std::collections::HashSet;
use std::time::Duration;

use dash_api::{ApiSettings, App};
use dash_bench::load::pgbench::{PgbenchRun, Protocol, Workload};
use dash_bench::load::{self, list, LoadConfig, Mix, RetryPolicy};
use dash_store::{DbSettings, HostPort, Secret};
use dash_testkit::TempNode;
use uuid::Uuid;

const TOKEN: &str = "load-test-token";

struct Running {
    base: String,
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    dbname: String,
    node: TempNode,
}

async fn spawn_app() -> Running {
    let node = tokio::task::spawn_blocking(TempNode::start)
        .await
        .unwrap()
        .expect("start PostgreSQL");
    let dbname = node.fresh_database().expect("create database");
    let settings = ApiSettings {
        bind: [127, 0, 0, 1].into(),
        api_port: 0,
        metrics_port: 0,
        tokens: vec![Secret::new(TOKEN)],
        spawn_rate: 0.0,
        database: DbSettings {
            hosts: vec![HostPort {
                host: node.host().to_string(),
                port: node.port(),
            }],
            dbname: dbname.clone(),
            user: node.superuser().to_string(),
            password: Secret::new(node.password()),
            pool_size: 8,
            ..DbSettings::default()
        },
        ..ApiSettings::default()
    };
    let app = App::build(settings).await.expect("build app");
    let base = format!("http://127.0.0.1:{}", app.port());
    let (tx, rx) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = rx.await;
    }));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let ready = reqwest::get(format!("{base}/ready")).await;
        if ready.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "app never ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Running {
        base,
        url: node.url(&dbname),
        stop: Some(tx),
        server,
        dbname,
        node,
    }
}

impl Running {
    async fn stop(mut self) {
        let _ = self.stop.take().map(|tx| tx.send(()));
        let _ = tokio::time::timeout(Duration::from_secs(15), &mut self.server).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_create_exists_afterwards() {
    let app = spawn_app().await;
    let mut cfg = LoadConfig::new(&app.base, Secret::new(TOKEN), 4, Mix::CreateThenGet);
    cfg.duration = Duration::from_secs(1);
    cfg.retry = RetryPolicy::through_outages();
    let report = load::run(cfg).await.expect("load runs");
    let s = &report.summary;
    assert!(s.acked > 0, "nothing acknowledged: {s}");
    assert_eq!(s.errors.len(), 0, "{s}");
    assert_eq!(s.read_misses, 0, "{s}");
    assert!(report.duplicate_acks().is_empty());
    assert!(report.acks.windows(2).all(|w| w[0].at <= w[1].at));
    let elapsed = report.finished - report.started;
    assert!(elapsed < Duration::from_secs(10), "ran {elapsed:?} for 1 s");

    let (client, conn) = tokio_postgres::connect(&app.url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    let acked: Vec<Uuid> = report.acked_ids().collect();
    let rows = client
        .query("SELECT id FROM agents WHERE id = ANY($1)", &[&acked])
        .await
        .unwrap();
    let found: HashSet<Uuid> = rows.iter().map(|r| r.get(0)).collect();
    let missing: Vec<&Uuid> = acked.iter().filter(|id| !found.contains(id)).collect();
    assert!(missing.is_empty(), "acknowledged but missing: {missing:?}");
    assert_eq!(found.len(), acked.len());
    let events: i64 = client
        .query_one(
            "SELECT count(*) FROM events WHERE kind = 'agent.spawned' AND agent_id = ANY($1)",
            &[&acked],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(events as usize, acked.len(), "one spawn event per agent");

    // The get mix seeds its own agents, then reads them; a request budget
    // ends it before its deadline.
    let mut cfg = LoadConfig::new(&app.base, Secret::new(TOKEN), 2, Mix::GetAgent);
    cfg.seed_agents = 20;
    cfg.max_requests = Some(50);
    let report = load::run(cfg).await.expect("get load runs");
    assert_eq!(report.seeded.len(), 20);
    assert_eq!(report.summary.requests, 50);
    assert_eq!(report.summary.ok, 50, "{}", report.summary);
    app.stop().await;
}

#[tokio::test]
async fn a_wrong_token_fails_seeding_clearly_and_non_loopback_is_refused() {
    let app = spawn_app().await;
    let mut cfg = LoadConfig::new(&app.base, Secret::new("wrong"), 2, Mix::GetAgent);
    cfg.seed_agents = 5;
    let err = load::run(cfg).await.expect_err("401 while seeding");
    assert!(err.to_string().contains("status 401"), "{err}");

    let cfg = LoadConfig::new(
        "http://192.0.2.1:3001",
        Secret::new(TOKEN),
        1,
        Mix::CreateAgent,
    );
    let err = load::start(cfg).err().expect("refused");
    assert!(err.to_string().contains("not loopback"), "{err}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_pages_are_full_through_the_api_and_through_pgbench() {
    let app = spawn_app().await;
    // Seeded through the API: the driver creates its swarms and agents.
    let mut cfg = LoadConfig::new(&app.base, Secret::new(TOKEN), 4, Mix::ListAgents);
    cfg.max_requests = Some(40);
    let report = load::run(cfg).await.expect("list load runs");
    let s = &report.summary;
    assert_eq!(report.seeded.len(), list::SWARMS as usize);
    assert_eq!((s.requests, s.ok), (40, 40), "{s}");
    assert!(s.errors.is_empty(), "{s}");
    assert_eq!(s.ops[0].op, load::Op::List);

    // Seeded with SQL, as `bench compare` does for both sides.
    let (client, conn) = tokio_postgres::connect(&app.url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    client.batch_execute(&list::seed_sql()).await.expect("seed");
    client
        .batch_execute(&list::seed_sql())
        .await
        .expect("seed again: idempotent");
    let counts = client
        .query(
            "SELECT status, count(*) FROM agents WHERE swarm_id = $1 GROUP BY status ORDER BY status",
            &[&list::swarm_id(list::SWARMS)],
        )
        .await
        .unwrap();
    let counts: Vec<(String, i64)> = counts.iter().map(|r| (r.get(0), r.get(1))).collect();
    let half = (list::AGENTS_PER_SWARM / 2) as i64;
    assert_eq!(
        counts,
        vec![("completed".into(), half), ("pending".into(), half)]
    );
    let swarms: i64 = client
        .query_one(
            "SELECT count(*) FROM swarms WHERE name LIKE 'dashctl bench list %'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    // The SQL seed's listed and other swarms, and the API-seeded ones.
    assert_eq!(swarms, 2 * list::SWARMS as i64 + list::SWARMS as i64);
    let page = list::select_sql(&format!("'{}'::uuid", list::swarm_id(3)));
    let rows = client.query(page.as_str(), &[]).await.unwrap();
    assert_eq!(rows.len(), list::PAGE + 1);
    assert!(rows
        .iter()
        .all(|r| r.get::<_, String>("status") == "pending"));

    let mut cfg = LoadConfig::new(&app.base, Secret::new(TOKEN), 4, Mix::ListAgents);
    cfg.max_requests = Some(40);
    cfg.list_swarms = list::listed_swarms();
    let report = load::run(cfg)
        .await
        .expect("list load on the SQL seed runs");
    assert_eq!(report.seeded, list::listed_swarms());
    assert_eq!(report.summary.ok, 40, "{}", report.summary);

    let pg = PgbenchRun {
        program: app.node.binaries().path("pgbench"),
        host: app.node.host().to_string(),
        port: app.node.port(),
        user: app.node.superuser().to_string(),
        password: app.node.password().to_string(),
        dbname: app.dbname.clone(),
        clients: 2,
        threads: 1,
        duration: Duration::from_secs(1),
        protocol: Protocol::Prepared,
        workload: Workload::ListAgents {
            swarms: list::SWARMS,
        },
        task: "t".into(),
    }
    .run()
    .await
    .expect("pgbench runs the list script");
    assert!(pg.tps > 0.0 && pg.transactions > 0, "{pg:?}");
    assert_eq!(pg.failed, 0);
    app.stop().await;
}
