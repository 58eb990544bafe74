//! `dashctl bench`: load through a running API (`api`), or the API beside
//! pgbench running the same SQL on a private PostgreSQL node (`compare`).
//! `compare` tears down everything it started, on error and on Ctrl-C too.

use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use dash_bench::load::pgbench::{seed_sql, PgbenchRun, Protocol, Workload};
use dash_bench::load::{
    self, machine_description, peak_rss_of_self, rss_of, Comparison, ComparisonRow, LoadConfig,
    LoadError, LoadSummary, Mix, Op, RetryPolicy, RssFigures, ServeProcess,
};
use dash_pg::{PgNode, ScratchNode};
use dash_store::{DbSettings, HostPort, Secret};

use super::serve::shutdown_signal;
use super::{UsageError, EXIT_FAILURE, EXIT_OK};

/// Agents seeded for the get workloads (through the API for the API side,
/// by SQL for pgbench).
const SEEDS: u64 = 1_000;
/// Exit code after Ctrl-C or SIGTERM (everything was stopped).
const EXIT_INTERRUPTED: u8 = 130;

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: BenchCommand,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Drive create-agent and/or get-agent load at a running API (loopback only) and report req/s and latency. Exits 1 when no request succeeded, 2 for a URL that is not loopback.
    Api(ApiArgs),
    /// Start a private PostgreSQL node and `dashctl serve` against it (or the API in-process), run create-agent and get-agent through the API, then pgbench running the same SQL at the same concurrency, and print them side by side with the RSS and the benchmark targets. Exits 130 when interrupted (everything started is stopped).
    Compare(CompareArgs),
}

#[derive(Debug, Args)]
pub struct ApiArgs {
    /// The API's base URL (127.0.0.1, ::1 or localhost only).
    #[arg(long, env = "DASH_API_URL", default_value = "http://127.0.0.1:3001")]
    pub url: String,
    /// Bearer token for creates (one of the server's DASH_API_TOKENS).
    #[arg(long, env = "DASH_API_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Concurrent workers, each with one request in flight.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// How long to run (humantime: 10s, 1m).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Stop after this many operations, if sooner than --duration.
    #[arg(long)]
    pub requests: Option<u64>,
    /// create, get (reads agents it seeds first, unmeasured) or create-then-get.
    #[arg(long, default_value = "create")]
    pub mix: Mix,
    /// Deadline of one request.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Retry the same id on 503 and transport errors (10 ms backoff doubling to 100 ms).
    #[arg(long)]
    pub retry: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// API workers and pool connections; pgbench clients.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Length of each of the four runs (whole seconds for pgbench).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Unmeasured API load first, so the pool and HTTP connections are open.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub warmup: Duration,
    /// pgbench --protocol: simple, extended or prepared.
    #[arg(long, default_value = "prepared")]
    pub pgbench_protocol: Protocol,
    /// Run PostgreSQL with fsync, synchronous_commit and full_page_writes off (test settings) instead of PostgreSQL's defaults.
    #[arg(long)]
    pub no_durability: bool,
    /// Run the API inside this process (dash_api::App) instead of as a separate `dashctl serve`.
    #[arg(long)]
    pub in_process: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<u8> {
    crate::telemetry::init(false, crate::telemetry::QUIET);
    match args.command {
        BenchCommand::Api(a) => api(a).await,
        BenchCommand::Compare(a) => {
            tokio::select! {
                r = compare(&a) => r,
                _ = shutdown_signal() => {
                    eprintln!("dashctl bench: interrupted; stopped everything it started");
                    Ok(EXIT_INTERRUPTED)
                }
            }
        }
    }
}

async fn api(a: ApiArgs) -> anyhow::Result<u8> {
    let mut cfg = LoadConfig::new(&a.url, Secret::new(a.token), a.concurrency, a.mix);
    cfg.duration = a.duration;
    cfg.max_requests = a.requests;
    cfg.request_timeout = a.timeout;
    cfg.seed_agents = SEEDS as usize;
    if a.retry {
        cfg.retry = RetryPolicy::through_outages();
    }
    let base = load::check_loopback(&cfg.base_url).map_err(|e| UsageError(e.to_string()))?;
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()?;
    client
        .get(format!("{base}/livez"))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .with_context(|| format!("the API at {base} does not answer /livez"))?;
    let report = load::run(cfg).await.map_err(|e| match e {
        LoadError::Config(_) => anyhow::Error::new(UsageError(e.to_string())),
        e => e.into(),
    })?;
    print_summary(&report.summary, a.json)?;
    if report.summary.errors.contains_key("status 401") {
        eprintln!("hint: 401 means the token is not one of the server's DASH_API_TOKENS");
    }
    Ok(if report.summary.ok == 0 {
        EXIT_FAILURE
    } else {
        EXIT_OK
    })
}

fn print_summary(s: &LoadSummary, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(s)?);
    } else {
        print!("{s}");
    }
    Ok(())
}

/// The API in this process against `node`'s database `db`, ready to serve.
async fn in_process_api(
    node: &PgNode,
    db: &str,
    pool: usize,
    token: &str,
) -> anyhow::Result<dash_api::RunningApp> {
    let settings = dash_api::ApiSettings {
        bind: [127, 0, 0, 1].into(),
        api_port: 0,
        metrics_port: 0,
        tokens: vec![Secret::new(token)],
        database: DbSettings {
            hosts: vec![HostPort {
                host: node.host().to_string(),
                port: node.port(),
            }],
            dbname: db.to_string(),
            user: node.superuser().to_string(),
            password: Secret::new(node.password()),
            pool_size: pool,
            ..DbSettings::default()
        },
        ..dash_api::ApiSettings::default()
    };
    let app = dash_api::App::build(settings).await?.spawn();
    wait_ready(app.base_url(), Duration::from_secs(30)).await?;
    Ok(app)
}

async fn wait_ready(base: &str, limit: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + limit;
    let client = reqwest::Client::builder().no_proxy().build()?;
    loop {
        let ready = client.get(format!("{base}/ready")).send().await;
        if ready.is_ok_and(|r| r.status() == 200) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("the API at {base} was not ready within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
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

/// Runs `sql` on the node with psql, off the async threads.
async fn psql(node: &PgNode, db: &str, sql: &str) -> anyhow::Result<String> {
    let (node, db, sql) = (node.clone(), db.to_string(), sql.to_string());
    Ok(tokio::task::spawn_blocking(move || node.psql(&db, &sql)).await??)
}

async fn api_phase(
    base: &str,
    token: &str,
    cfg: &CompareArgs,
    mix: Mix,
    time: Duration,
) -> anyhow::Result<LoadSummary> {
    let mut lc = LoadConfig::new(base, Secret::new(token), cfg.concurrency, mix);
    lc.duration = time;
    lc.seed_agents = SEEDS as usize;
    Ok(load::run(lc).await?.summary)
}

async fn compare(a: &CompareArgs) -> anyhow::Result<u8> {
    if a.concurrency == 0 || a.concurrency > 400 {
        return Err(UsageError("--concurrency must be between 1 and 400".into()).into());
    }
    let secs = a.duration.as_secs().max(1);
    let time = Duration::from_secs(secs);
    let mut settings = vec![(
        "max_connections".to_string(),
        (2 * a.concurrency + 30).max(100).to_string(),
    )];
    if !a.no_durability {
        for name in ["fsync", "synchronous_commit", "full_page_writes"] {
            settings.push((name.to_string(), "on".to_string()));
        }
    }
    eprintln!("starting a private PostgreSQL node ...");
    let node = tokio::task::spawn_blocking(move || {
        let refs: Vec<(&str, &str)> = settings
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        ScratchNode::start_with(&refs)
    })
    .await??;
    let db = node.fresh_database()?;
    let shown = psql(&node, &db, "SELECT version() || '; fsync=' || current_setting('fsync') || ', synchronous_commit=' || current_setting('synchronous_commit') || ', full_page_writes=' || current_setting('full_page_writes')").await?;
    let postgres = format!(
        "{}; data directory {}",
        shown.trim(),
        node.data_dir().display()
    );

    eprintln!("starting `dashctl serve` (pool {}) ...", a.concurrency);
    let token = format!("bench-{}", uuid::Uuid::new_v4().simple());
    let exe = std::env::current_exe().context("locate the dashctl binary")?;
    let env = [
        ("DATABASE_URL", node.url(&db)),
        ("DASH_API_TOKENS", token.clone()),
        ("DATABASE_POOL_SIZE", a.concurrency.to_string()),
    ];
    let serve = ServeProcess::start(&exe, &env, Duration::from_secs(30)).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut rss = RssFigures {
        serve_idle_kb: serve.rss_kb(),
        ..RssFigures::default()
    };
    let (app, where_api) = if a.in_process {
        serve.stop(Duration::from_secs(15)).await;
        let app = in_process_api(&node, &db, a.concurrency, &token).await?;
        rss.in_process_idle_kb = rss_of(None);
        let what = "in this process (dash_api::App), sharing its runtime with the load driver";
        (ApiUnderTest::InProcess(app), what)
    } else {
        let what = "a separate `dashctl serve` process; the load driver runs in this process";
        (ApiUnderTest::Serve(serve), what)
    };
    if !a.warmup.is_zero() {
        eprintln!("warming up for {:?} ...", a.warmup);
        api_phase(app.base(), &token, a, Mix::CreateAgent, a.warmup).await?;
    }
    let bench = PgbenchRun {
        program: node.binaries().path("pgbench"),
        host: node.host().to_string(),
        port: node.port(),
        user: node.superuser().to_string(),
        password: node.password().to_string(),
        dbname: db.clone(),
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
    ] {
        psql(&node, &db, "CHECKPOINT").await?;
        eprintln!("API {name}: {} workers for {secs} s ...", a.concurrency);
        let api = api_phase(app.base(), &token, a, mix, time).await?;
        let api_op = api
            .ops
            .iter()
            .find(|o| o.op == op)
            .context("no requests were made")?
            .clone();
        if let Workload::GetAgent { seeds } = workload {
            psql(&node, &db, &seed_sql(seeds)).await?;
        }
        psql(&node, &db, "CHECKPOINT").await?;
        eprintln!("pgbench {name}: {} clients for {secs} s ...", a.concurrency);
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
    drop(node);

    let mut report = Comparison {
        concurrency: a.concurrency,
        duration_s: secs,
        machine: machine_description(),
        postgres,
        pgbench: format!(
            "--protocol={} --jobs={} --client={}, same node and database, latency percentiles from its per-transaction log",
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
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{report}");
    }
    Ok(EXIT_OK)
}
