//! `dashctl bench compare`: the API beside pgbench running the same SQL on
//! one private PostgreSQL node or on the replicated platform's primary
//! (`target.rs`), with the API as a `dashctl serve` child or in this
//! process. Everything it starts is stopped, on error too.

mod target;

use std::path::PathBuf;
use std::time::Duration;

use dash_pg::PgError;
use dash_store::{DbSettings, Secret};

use crate::load::pgbench::{seed_sql, PgbenchError, PgbenchRun, Protocol, Workload};
use crate::load::{
    self, list, machine_description, peak_rss_of_self, rss_of, Comparison, ComparisonRow,
    LoadConfig, LoadError, LoadSummary, Mix, Op, RssFigures, ServeError, ServeProcess,
};

/// Agents seeded for the get workloads (through the API for the API side,
/// by SQL for pgbench).
pub const SEEDS: u64 = 1_000;

/// What to compare, and how.
#[derive(Debug, Clone)]
pub struct CompareOptions {
    /// API workers and pool connections; pgbench clients (1 to 400).
    pub concurrency: usize,
    /// Length of each of the six runs (whole seconds for pgbench).
    pub duration: Duration,
    /// Unmeasured API load first, so the pool and HTTP connections are open.
    pub warmup: Duration,
    pub pgbench_protocol: Protocol,
    /// PostgreSQL's durable defaults (fsync, synchronous_commit,
    /// full_page_writes on) instead of the test settings.
    pub durable: bool,
    /// The API in this process instead of a `dashctl serve` child.
    pub in_process: bool,
    /// The `dashctl` binary to run `serve` from (and the platform's agents).
    pub serve_program: PathBuf,
    /// The replicated platform (synchronous replica, data on disk) instead
    /// of one node; `durable` does not apply (the platform's settings are
    /// PostgreSQL's durable defaults).
    pub platform: bool,
}

/// Why a comparison could not run.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Pg(#[from] PgError),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Serve(#[from] ServeError),
    #[error(transparent)]
    Pgbench(#[from] PgbenchError),
    #[error("bind the in-process API: {0}")]
    Bind(#[source] std::io::Error),
    #[error("the API was not ready: {0}")]
    NotReady(String),
    #[error("no requests were made")]
    NoRequests,
    #[error("a blocking task failed: {0}")]
    Task(String),
    #[error("the replicated platform: {0}")]
    Platform(String),
}

impl CompareError {
    fn task(e: tokio::task::JoinError) -> CompareError {
        CompareError::Task(e.to_string())
    }
}

/// The API in this process against `t`, ready to serve.
async fn in_process_api(
    t: &target::Target,
    pool: usize,
    token: &str,
) -> Result<dash_api::RunningApp, CompareError> {
    let settings = dash_api::ApiSettings {
        bind: [127, 0, 0, 1].into(),
        api_port: 0,
        metrics_port: 0,
        tokens: vec![Secret::new(token)],
        // The API's own speed is measured: no spawn-rate limit.
        spawn_rate: 0.0,
        database: DbSettings {
            hosts: t.hosts.clone(),
            dbname: t.dbname.clone(),
            user: t.user.clone(),
            password: Secret::new(t.password.clone()),
            pool_size: pool,
            ..DbSettings::default()
        },
        ..dash_api::ApiSettings::default()
    };
    let app = (dash_api::App::build(settings).await)
        .map_err(CompareError::Bind)?
        .spawn();
    wait_ready(app.base_url(), Duration::from_secs(30)).await?;
    Ok(app)
}

async fn wait_ready(base: &str, limit: Duration) -> Result<(), CompareError> {
    match load::wait_ready(base, limit).await {
        true => Ok(()),
        false => Err(CompareError::NotReady(format!("{base} within {limit:?}"))),
    }
}

/// The API the load goes to: a `dashctl serve` child process, or the app in this process.
enum ApiUnderTest {
    Serve(ServeProcess),
    InProcess(dash_api::RunningApp),
}

impl ApiUnderTest {
    fn base(&self) -> &str {
        match self {
            ApiUnderTest::Serve(s) => s.base_url(),
            ApiUnderTest::InProcess(a) => a.base_url(),
        }
    }

    async fn shutdown(self) {
        match self {
            ApiUnderTest::Serve(s) => s.stop(Duration::from_secs(15)).await,
            ApiUnderTest::InProcess(a) => {
                let _ = tokio::time::timeout(Duration::from_secs(15), a.stop()).await;
            }
        }
    }
}

async fn api_phase(
    base: &str,
    token: &str,
    cfg: &CompareOptions,
    mix: Mix,
    time: Duration,
) -> Result<LoadSummary, CompareError> {
    let mut lc = LoadConfig::new(base, Secret::new(token), cfg.concurrency, mix);
    lc.duration = time;
    lc.seed_agents = SEEDS as usize;
    if mix == Mix::ListAgents {
        lc.list_swarms = list::listed_swarms();
    }
    Ok(load::run(lc).await?.summary)
}

/// Runs the six measured phases (API and pgbench; create, get and list) on
/// a private node or the platform's primary and returns the comparison, judged against its targets.
/// Everything it started is stopped, also when it fails or is dropped.
pub async fn run(a: &CompareOptions, progress: &dyn Fn(&str)) -> Result<Comparison, CompareError> {
    if a.concurrency == 0 || a.concurrency > 400 {
        return Err(CompareError::Usage(
            "--concurrency must be between 1 and 400".into(),
        ));
    }
    let secs = a.duration.as_secs().max(1);
    let time = Duration::from_secs(secs);
    let t = match a.platform {
        true => {
            progress("starting the replicated platform (etcd, two node agents, a synchronous replica) ...");
            target::Target::platform(a, progress).await?
        }
        false => {
            progress("starting a private PostgreSQL node ...");
            target::Target::node(a).await?
        }
    };
    let shown = t.psql("SELECT version() || '; fsync=' || current_setting('fsync') || ', synchronous_commit=' || current_setting('synchronous_commit') || ', full_page_writes=' || current_setting('full_page_writes') || ', synchronous_standby_names=' || quote_literal(current_setting('synchronous_standby_names'))").await?;
    let postgres = format!("{}; {}", shown.trim(), t.where_data);

    progress(&format!(
        "starting `dashctl serve` (pool {}) ...",
        a.concurrency
    ));
    let token = format!("bench-{}", uuid::Uuid::new_v4().simple());
    let exe = &a.serve_program;
    let mut env = t.env();
    env.extend([
        ("DASH_API_TOKENS", token.clone()),
        ("DASH_SPAWN_RATE", "0".to_string()),
        ("DATABASE_POOL_SIZE", a.concurrency.to_string()),
    ]);
    let serve = ServeProcess::start(exe, &env, Duration::from_secs(30)).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut rss = RssFigures {
        serve_idle_kb: serve.rss_kb(),
        ..RssFigures::default()
    };
    let (app, where_api) = if a.in_process {
        serve.stop(Duration::from_secs(15)).await;
        let app = in_process_api(&t, a.concurrency, &token).await?;
        rss.in_process_idle_kb = rss_of(None);
        let what = "in this process (dash_api::App), sharing its runtime with the load driver";
        (ApiUnderTest::InProcess(app), what)
    } else {
        let what = "a separate `dashctl serve` process; the load driver runs in this process";
        (ApiUnderTest::Serve(serve), what)
    };
    if !a.warmup.is_zero() {
        progress(&format!("warming up for {:?} ...", a.warmup));
        api_phase(app.base(), &token, a, Mix::CreateAgent, a.warmup).await?;
    }
    let bench = PgbenchRun {
        program: t.bins.path("pgbench"),
        host: t.host.clone(),
        port: t.port,
        user: t.user.clone(),
        password: t.password.clone(),
        dbname: t.dbname.clone(),
        clients: a.concurrency,
        threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        duration: time,
        protocol: a.pgbench_protocol,
        workload: Workload::CreateAgent,
        task: LoadConfig::new("", Secret::default(), 1, Mix::CreateAgent).task,
    };
    let mut rows = Vec::new();
    for (name, mix, op, workload) in [
        (
            "create-agent",
            Mix::CreateAgent,
            Op::Create,
            Workload::CreateAgent,
        ),
        (
            "get-agent",
            Mix::GetAgent,
            Op::Get,
            Workload::GetAgent { seeds: SEEDS },
        ),
        (
            "list-agents",
            Mix::ListAgents,
            Op::List,
            Workload::ListAgents {
                swarms: list::SWARMS,
            },
        ),
    ] {
        if mix == Mix::ListAgents {
            // The same rows for both sides, seeded before either clock starts.
            t.psql(&list::seed_sql()).await?;
            t.psql("ANALYZE swarms, agents").await?;
        }
        t.psql("CHECKPOINT").await?;
        progress(&format!(
            "API {name}: {} workers for {secs} s ...",
            a.concurrency
        ));
        let api = api_phase(app.base(), &token, a, mix, time).await?;
        let api_op = api
            .ops
            .iter()
            .find(|o| o.op == op)
            .ok_or(CompareError::NoRequests)?
            .clone();
        if let Workload::GetAgent { seeds } = workload {
            t.psql(&seed_sql(seeds)).await?;
        }
        t.psql("CHECKPOINT").await?;
        progress(&format!(
            "pgbench {name}: {} clients for {secs} s ...",
            a.concurrency
        ));
        let pg = PgbenchRun {
            workload,
            ..bench.clone()
        }
        .run()
        .await?;
        rows.push(ComparisonRow::new(name, &api_op, &pg));
    }
    match &app {
        ApiUnderTest::Serve(s) => rss.serve_peak_kb = s.peak_rss_kb(),
        ApiUnderTest::InProcess(_) => rss.in_process_peak_kb = peak_rss_of_self(),
    }
    app.shutdown().await;
    t.stop().await;

    let mut report = Comparison {
        concurrency: a.concurrency,
        duration_s: secs,
        machine: machine_description(),
        postgres,
        pgbench: format!(
            "--protocol={} --jobs={} --client={}, same server and database as the API, latency percentiles from its per-transaction log",
            a.pgbench_protocol.as_str(),
            bench.threads.min(a.concurrency),
            a.concurrency
        ),
        rows,
        api: format!("{where_api}; pool size {}", a.concurrency),
        rss,
        targets: Vec::new(),
    };
    report.judge();
    Ok(report)
}
