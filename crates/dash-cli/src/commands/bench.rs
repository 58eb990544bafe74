//! `dashctl bench`: load through a running API (`api`), or the API beside
//! pgbench running the same SQL on a private PostgreSQL node (`compare`).
//! `compare` tears down everything it started, on error and on Ctrl-C too.

use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use dash_bench::compare::{CompareError, CompareOptions};
use dash_bench::load::pgbench::Protocol;
use dash_bench::load::{self, LoadConfig, LoadError, LoadSummary, Mix, RetryPolicy};
use dash_store::Secret;

use super::serve::shutdown_signal;
use super::{UsageError, EXIT_FAILURE, EXIT_OK};

/// Exit code after Ctrl-C or SIGTERM (everything was stopped).
const EXIT_INTERRUPTED: u8 = 130;

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: BenchCommand,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Drive create-agent, get-agent and/or list-agents load at a running API (loopback only) and report req/s and latency; start that API with DASH_SPAWN_RATE=0, or creates past its spawn-rate limit answer 429. Exits 1 when no request succeeded, 2 for a URL that is not loopback.
    Api(ApiArgs),
    /// Start a private PostgreSQL node and `dashctl serve` against it (or the API in-process), run create-agent, get-agent and list-agents (50 pending agents of one swarm) through the API, each followed by pgbench running the same SQL at the same concurrency, and print them side by side with the RSS and the benchmark targets. Exits 130 when interrupted (everything started is stopped).
    Compare(CompareArgs),
    /// On a private PostgreSQL node: N pending agents run by W in-process workers (claims and completions per second; the `noop` runtime starts no process), then the wake-up latency of an idle worker (LISTEN) for agents spawned one at a time. Exits 1 when the run fails.
    Worker(WorkerBenchArgs),
}

#[derive(Debug, Args)]
pub struct WorkerBenchArgs {
    /// Agents to run.
    #[arg(long, default_value_t = 5000)]
    pub agents: u32,
    /// Workers, each with its own pool.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Slots per worker.
    #[arg(long, default_value_t = 32)]
    pub slots: usize,
    /// The runtime: `noop` (no process), or a program such as /bin/true.
    #[arg(long, default_value = "noop")]
    pub runtime: String,
    /// Agents for the wake-up latency, one at a time.
    #[arg(long, default_value_t = 200)]
    pub wake_samples: u32,
    /// PostgreSQL with fsync, synchronous_commit and full_page_writes on.
    #[arg(long)]
    pub durable: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
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
    /// create, get (reads agents it seeds first, unmeasured), create-then-get, or list (pages of 50 pending agents of one of 20 swarms it seeds first, unmeasured; a page short of 50 counts as an error).
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
    /// On the replicated platform as `dashctl up` runs it (etcd, a node agent per node, a synchronous replica, data on disk) instead of one private node: the API lists both nodes, and both sides run on the leader. --no-durability does not apply.
    #[arg(long)]
    pub platform: bool,
    /// API workers and pool connections; pgbench clients.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Length of each of the six runs (whole seconds for pgbench).
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
        BenchCommand::Worker(a) => {
            tokio::select! {
                r = worker(&a) => r,
                _ = shutdown_signal() => {
                    eprintln!("dashctl bench: interrupted; stopped everything it started");
                    Ok(EXIT_INTERRUPTED)
                }
            }
        }
    }
}

async fn worker(a: &WorkerBenchArgs) -> anyhow::Result<u8> {
    let opts = dash_bench::worker::WorkerBenchOptions {
        agents: a.agents,
        workers: a.workers,
        slots: a.slots,
        runtime: vec![a.runtime.clone()],
        wake_samples: a.wake_samples,
        durable: a.durable,
    };
    let r = dash_bench::worker::run(&opts, &|m| eprintln!("dashctl bench: {m}"))
        .await
        .context("the worker benchmark")?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print!("{}", r.render());
    }
    Ok(EXIT_OK)
}

async fn api(a: ApiArgs) -> anyhow::Result<u8> {
    let mut cfg = LoadConfig::new(&a.url, Secret::new(a.token), a.concurrency, a.mix);
    cfg.duration = a.duration;
    cfg.max_requests = a.requests;
    cfg.request_timeout = a.timeout;
    cfg.seed_agents = dash_bench::compare::SEEDS as usize;
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

async fn compare(a: &CompareArgs) -> anyhow::Result<u8> {
    let opts = CompareOptions {
        concurrency: a.concurrency,
        duration: a.duration,
        warmup: a.warmup,
        pgbench_protocol: a.pgbench_protocol,
        durable: !a.no_durability,
        in_process: a.in_process,
        serve_program: std::env::current_exe().context("locate the dashctl binary")?,
        platform: a.platform,
    };
    let report = match dash_bench::compare::run(&opts, &|m| eprintln!("{m}")).await {
        Err(CompareError::Usage(m)) => return Err(UsageError(m).into()),
        other => other?,
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{report}");
    }
    Ok(EXIT_OK)
}
