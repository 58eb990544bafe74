//! `dashctl bench worker`: claims and completions through the database,
//! and how soon an idle worker picks up a new agent.
//!
//! On a private PostgreSQL node: N agents are inserted, W in-process
//! workers of S slots run them (the `noop` runtime completes at once, so
//! this measures the claim and the completion; a program such as
//! `/bin/true` adds its process start), and the rate is N over the time
//! until the last completes. Then one idle worker (polling only every 5 s,
//! so the LISTEN wake-up is what is measured) gets agents one at a time;
//! the wake-up latency is the database's `started_at - spawned_at`.

use std::time::{Duration, Instant};

use dash_pg::ScratchNode;
use dash_store::repo::agents::lease::Caps;
use dash_store::{DbSettings, HostPort, Secret};
use dash_worker::{Worker, WorkerSettings};
use serde::Serialize;
use tokio::sync::oneshot;

#[derive(Debug, Clone)]
pub struct WorkerBenchOptions {
    pub agents: u32,
    pub workers: usize,
    pub slots: usize,
    pub runtime: Vec<String>,
    /// New agents for the wake-up latency, one at a time.
    pub wake_samples: u32,
    /// PostgreSQL's durable defaults instead of the test settings.
    pub durable: bool,
}

#[derive(Debug, Serialize)]
pub struct WorkerBenchReport {
    pub postgres: String,
    pub agents: u32,
    pub workers: usize,
    pub slots: usize,
    pub runtime: String,
    pub seconds: f64,
    pub per_second: f64,
    pub completed: i64,
    pub attempts_over_one: i64,
    pub wake_ms_p50: f64,
    pub wake_ms_p99: f64,
    pub wake_ms_max: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerBenchError {
    #[error(transparent)]
    Pg(#[from] dash_pg::PgError),
    #[error("the database: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error("{0}")]
    Other(String),
}

fn settings(node: &ScratchNode, db: &str, o: &WorkerBenchOptions, name: String) -> WorkerSettings {
    WorkerSettings {
        name,
        runtime: o.runtime.clone(),
        guard: None,
        slots: o.slots,
        lease: Duration::from_secs(10),
        heartbeat: Duration::from_secs(2),
        poll: Duration::from_millis(100),
        caps: Caps {
            global: 100_000,
            per_swarm: 100_000,
        },
        drain: Duration::from_secs(10),
        metrics_port: 0,
        database: DbSettings {
            hosts: vec![HostPort {
                host: node.host().to_string(),
                port: node.port(),
            }],
            dbname: db.to_string(),
            user: node.superuser().to_string(),
            password: Secret::new(node.password()),
            pool_size: o.slots + 4,
            ..DbSettings::default()
        },
    }
}

/// A worker on a task of its own, stopped by [`Running::stop`].
struct Running(
    oneshot::Sender<()>,
    tokio::task::JoinHandle<dash_worker::WorkerReport>,
);

impl Running {
    async fn start(s: WorkerSettings) -> Result<Running, WorkerBenchError> {
        let w = Worker::new(s).map_err(WorkerBenchError::Other)?;
        w.migrate(Duration::from_secs(10))
            .await
            .map_err(|e| WorkerBenchError::Other(e.to_string()))?;
        let (tx, rx) = oneshot::channel::<()>();
        Ok(Running(
            tx,
            tokio::spawn(w.run_until_stopped(async {
                let _ = rx.await;
            })),
        ))
    }

    async fn stop(self) {
        let _ = self.0.send(());
        let _ = self.1.await;
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub async fn run(
    o: &WorkerBenchOptions,
    progress: &dyn Fn(&str),
) -> Result<WorkerBenchReport, WorkerBenchError> {
    progress("starting a private PostgreSQL node ...");
    let durable = o.durable;
    let node = tokio::task::spawn_blocking(move || {
        let on: &[(&str, &str)] = &[
            ("fsync", "on"),
            ("synchronous_commit", "on"),
            ("full_page_writes", "on"),
        ];
        let base: &[(&str, &str)] = &[("max_connections", "300")];
        let settings: Vec<(&str, &str)> = base
            .iter()
            .chain(if durable { on } else { &[] })
            .copied()
            .collect();
        ScratchNode::start_with(&settings)
    })
    .await
    .map_err(|e| WorkerBenchError::Other(e.to_string()))??;
    let db = node.fresh_database()?;
    let (client, conn) = tokio_postgres::connect(&node.url(&db), tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    let version: String = client
        .query_one(
            "SELECT version() || '; fsync=' || current_setting('fsync')",
            &[],
        )
        .await?
        .get(0);
    // The schema, from the worker's own migration.
    Running::start(settings(&node, &db, o, "migrate".into()))
        .await?
        .stop()
        .await;

    progress(&format!("inserting {} pending agents ...", o.agents));
    client
        .execute(
            "INSERT INTO agents (id, task) SELECT gen_random_uuid(), 'bench ' || g FROM generate_series(1, $1) g",
            &[&(o.agents as i32)],
        )
        .await?;
    progress(&format!(
        "running them with {} worker(s) of {} slot(s), runtime {:?} ...",
        o.workers, o.slots, o.runtime[0]
    ));
    let started = Instant::now();
    let mut workers = Vec::new();
    for i in 0..o.workers {
        workers.push(Running::start(settings(&node, &db, o, format!("bench-{i}"))).await?);
    }
    let deadline = started + Duration::from_secs(600);
    let completed = loop {
        let done: i64 = client
            .query_one(
                "SELECT count(*) FROM agents WHERE status = 'completed'",
                &[],
            )
            .await?
            .get(0);
        if done >= i64::from(o.agents) || Instant::now() > deadline {
            break done;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let seconds = started.elapsed().as_secs_f64();
    for w in workers {
        w.stop().await;
    }
    let attempts_over_one: i64 = client
        .query_one("SELECT count(*) FROM agents WHERE attempt > 1", &[])
        .await?
        .get(0);

    progress(&format!(
        "wake-up latency: {} agents, one at a time, to an idle worker ...",
        o.wake_samples
    ));
    let mut idle = settings(&node, &db, o, "idle".into());
    idle.poll = Duration::from_secs(5);
    let worker = Running::start(idle).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut wake = Vec::new();
    for _ in 0..o.wake_samples {
        let id: uuid::Uuid = client
            .query_one(
                "INSERT INTO agents (id, task) VALUES (gen_random_uuid(), 'wake') RETURNING id",
                &[],
            )
            .await?
            .get(0);
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let row = client
                .query_one(
                    "SELECT (extract(epoch FROM started_at - spawned_at) * 1000)::float8 FROM agents WHERE id = $1",
                    &[&id],
                )
                .await?;
            if let Some(ms) = row.get::<_, Option<f64>>(0) {
                wake.push(ms);
                break;
            }
            if Instant::now() > until {
                return Err(WorkerBenchError::Other(
                    "an agent was not claimed within 10 s".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worker.stop().await;
    wake.sort_by(f64::total_cmp);
    Ok(WorkerBenchReport {
        postgres: version,
        agents: o.agents,
        workers: o.workers,
        slots: o.slots,
        runtime: o.runtime.join(" "),
        seconds,
        per_second: completed as f64 / seconds,
        completed,
        attempts_over_one,
        wake_ms_p50: percentile(&wake, 0.5),
        wake_ms_p99: percentile(&wake, 0.99),
        wake_ms_max: wake.last().copied().unwrap_or(0.0),
    })
}

impl WorkerBenchReport {
    pub fn render(&self) -> String {
        format!(
            "PostgreSQL: {}\n{} agents, {} worker(s) x {} slot(s), runtime {}\n  claim+complete: {:.0}/s ({} completed in {:.2} s; {} needed a second attempt)\n  wake-up (LISTEN, idle worker): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms\n",
            self.postgres, self.agents, self.workers, self.slots, self.runtime,
            self.per_second, self.completed, self.seconds, self.attempts_over_one,
            self.wake_ms_p50, self.wake_ms_p99, self.wake_ms_max
        )
    }
}
