//! `dashctl chaos kill-worker`: proves that agents run exactly once when
//! workers die. On a private PostgreSQL node, real `dashctl worker`
//! processes run demo agents (each run journaled outside the database);
//! every round SIGKILLs a worker that runs agents and starts a replacement.
//! Afterwards: every agent completed exactly once, no two runs of one agent
//! overlapped in time, stale completions were rejected, the running cap was
//! never passed, and how long a killed worker's agents waited to be
//! claimed again.

mod figures;
pub mod journal;
mod procs;
mod report;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dash_pg::ScratchNode;
use dash_store::repo::agents::lease::Caps;
use dash_store::DbSettings;
use dash_worker::{Worker, WorkerSettings};
use tokio_postgres::Client;

pub use report::{KillRound, KillWorkerReport, KilledAgent, Latency};

use procs::Workers;

/// Steps of each demo run, and how long each takes (the journal's resolution).
const DEMO_STEPS: u32 = 20;
const DEMO_STEP: Duration = Duration::from_millis(100);
/// How long the run waits for every agent to finish after the last round.
const SETTLE: Duration = Duration::from_secs(300);
/// The least time between a replacement's start and the next kill.
const SPACING: Duration = Duration::from_secs(1);

/// What to drill.
#[derive(Debug, Clone)]
pub struct KillWorkerOptions {
    pub rounds: u32,
    pub agents: u32,
    /// Workers running at once (a killed one is replaced at once).
    pub workers: usize,
    pub slots: usize,
    /// MAX_CONCURRENT_AGENTS given to every worker.
    pub cap: u32,
    pub lease: Duration,
    pub heartbeat: Duration,
    /// Keep the directory with the journal and the workers' logs.
    pub keep: bool,
    /// The `dashctl` binary the workers run (normally this one).
    pub dashctl: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum KillWorkerError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Pg(#[from] dash_pg::PgError),
    #[error("the database: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("interrupted (Ctrl-C): every worker was stopped")]
    Interrupted,
    #[error("{0}")]
    Other(String),
}

/// Runs the drill; every worker and the node are stopped on return, on
/// error and on Ctrl-C.
pub async fn run(
    o: &KillWorkerOptions,
    progress: &dyn Fn(&str),
) -> Result<KillWorkerReport, KillWorkerError> {
    if o.rounds == 0 || o.rounds > 1000 {
        return Err(KillWorkerError::Usage(
            "--rounds must be from 1 to 1000".into(),
        ));
    }
    if o.agents == 0 || o.workers < 2 || o.slots == 0 || o.cap == 0 {
        return Err(KillWorkerError::Usage(
            "kill-worker needs at least one agent, two workers, a slot and a cap of 1".into(),
        ));
    }
    if o.heartbeat.is_zero() || o.heartbeat * 3 > o.lease {
        return Err(KillWorkerError::Usage(
            "--heartbeat must be at most a third of --lease".into(),
        ));
    }
    tokio::select! {
        r = drill(o, progress) => r,
        _ = tokio::signal::ctrl_c() => Err(KillWorkerError::Interrupted),
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn other(e: impl std::fmt::Display) -> KillWorkerError {
    KillWorkerError::Other(e.to_string())
}

async fn drill(
    o: &KillWorkerOptions,
    progress: &dyn Fn(&str),
) -> Result<KillWorkerReport, KillWorkerError> {
    let began = Instant::now();
    progress("starting a private PostgreSQL node");
    let node =
        tokio::task::spawn_blocking(|| ScratchNode::start_with(&[("max_connections", "300")]))
            .await
            .map_err(other)??;
    let db = node.fresh_database()?;
    let (client, conn) = tokio_postgres::connect(&node.url(&db), tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    migrate(&node.url(&db)).await?;
    client
        .execute(
            "INSERT INTO agents (id, task, max_retries)
             SELECT gen_random_uuid(), 'kill-worker ' || g, $2 FROM generate_series(1, $1) g",
            &[&(o.agents as i32), &(o.rounds as i32 + 5)],
        )
        .await?;
    let mut dir = tempfile::Builder::new()
        .prefix("dash-kill-worker-")
        .tempdir()?;
    if o.keep {
        progress(&format!("keeping {}", dir.path().display()));
        dir.disable_cleanup(true);
    }
    let journal = dir.path().join("journal");
    let args: Vec<String> = vec![
        "--runtime=demo".into(),
        format!("--demo-steps={DEMO_STEPS}"),
        format!("--demo-step={}ms", DEMO_STEP.as_millis()),
        format!("--demo-journal={}", journal.display()),
        format!("--slots={}", o.slots),
        format!("--max-concurrent-agents={}", o.cap),
        format!("--lease={}ms", o.lease.as_millis()),
        format!("--heartbeat={}ms", o.heartbeat.as_millis()),
        "--poll=1s".into(),
        "--drain=10s".into(),
    ];
    let mut workers = Workers::new(&o.dashctl, node.url(&db), dir.path(), args);
    for _ in 0..o.workers {
        workers.start()?;
    }
    progress(&format!(
        "{} agents, {} workers of {} slots (cap {}), lease {:?}, heartbeat {:?}",
        o.agents, o.workers, o.slots, o.cap, o.lease, o.heartbeat
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = tokio::spawn(sample_running(node.url(&db), stop.clone()));

    let mut rounds = Vec::new();
    let mut kills = Vec::new();
    for n in 1..=o.rounds {
        let target = busy_worker(
            &client,
            &workers.names(),
            o.lease * 3 + Duration::from_secs(60),
        )
        .await?
        .ok_or_else(|| other(format!("round {n}: no worker ran an agent")))?;
        let at = unix_now();
        workers.kill(&target).await;
        // The worker is gone: whatever it still holds died with it.
        let rows = client
            .query(
                "SELECT id::text, attempt FROM agents WHERE status = 'running' AND worker = $1",
                &[&target],
            )
            .await?;
        let replacement = workers.start()?;
        let killed: Vec<(String, i32)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        progress(&format!(
            "round {n}/{}: killed {target} running {} agent(s); started {replacement}",
            o.rounds,
            killed.len()
        ));
        kills.push((n, target, replacement, at, killed));
        tokio::time::sleep(SPACING).await;
    }

    progress("waiting for every agent to finish");
    let until = Instant::now() + SETTLE;
    while Instant::now() < until {
        let open: i64 = client
            .query_one(
                "SELECT count(*) FROM agents WHERE status IN ('pending', 'running')",
                &[],
            )
            .await?
            .get(0);
        if open == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let (max_running, samples) = sampler.await.map_err(other)??;
    progress("stopping the workers");
    workers.stop_all(Duration::from_secs(15)).await;

    for (n, target, replacement, at, killed) in kills {
        let mut agents = Vec::new();
        for (agent, attempt) in killed {
            let (released_ms, reclaim_ms) =
                figures::reclaim_ms(&client, &agent, attempt, at).await?;
            agents.push(KilledAgent {
                agent,
                attempt,
                released_ms,
                reclaim_ms,
            });
        }
        rounds.push(KillRound {
            round: n,
            killed_worker: target,
            replacement,
            killed: agents,
        });
    }
    let text = std::fs::read_to_string(&journal).unwrap_or_default();
    let mut report = figures::collect(&client, o, rounds, &text).await?;
    report.max_running = max_running;
    report.running_samples = samples;
    report.journal_resolution_ms = DEMO_STEP.as_millis() as u64;
    report.seconds = began.elapsed().as_secs_f64();
    drop(client);
    drop(node);
    Ok(report)
}

/// The schema, from the worker's own migration.
async fn migrate(url: &str) -> Result<(), KillWorkerError> {
    let mut database = DbSettings::default();
    database.apply_url(url).map_err(other)?;
    database.pool_size = 2;
    let settings = WorkerSettings {
        name: "migrate".into(),
        runtime: vec!["true".into()],
        guard: None,
        slots: 1,
        lease: Duration::from_secs(10),
        heartbeat: Duration::from_secs(2),
        poll: Duration::from_secs(1),
        caps: Caps {
            global: 1,
            per_swarm: 1,
        },
        drain: Duration::from_secs(1),
        metrics_port: 0,
        database,
    };
    let w = Worker::new(settings).map_err(KillWorkerError::Other)?;
    w.migrate(Duration::from_secs(30)).await.map_err(other)?;
    Ok(())
}

/// The live worker running the most agents, once one runs any (within `limit`).
async fn busy_worker(
    client: &Client,
    live: &[String],
    limit: Duration,
) -> Result<Option<String>, KillWorkerError> {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        let row = client
            .query_opt(
                "SELECT worker FROM agents WHERE status = 'running' AND worker = ANY($1)
                 GROUP BY worker ORDER BY count(*) DESC, worker LIMIT 1",
                &[&live],
            )
            .await?;
        if let Some(r) = row {
            return Ok(Some(r.get(0)));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(None)
}

/// Samples the number of running agents every 50 ms until `stop`; returns
/// the highest seen and how many samples were taken.
async fn sample_running(url: String, stop: Arc<AtomicBool>) -> Result<(i64, u64), KillWorkerError> {
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    let (mut max, mut samples) = (0i64, 0u64);
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let n: i64 = client
            .query_one("SELECT count(*) FROM agents WHERE status = 'running'", &[])
            .await?
            .get(0);
        max = max.max(n);
        samples += 1;
    }
    Ok((max, samples))
}
