//! `dashctl worker` (claims and runs agents) and `dashctl runtime demo`
//! (the built-in runtime for demos and tests).

use std::time::Duration;

use anyhow::Context;
use clap::Args;
use dash_store::repo::agents::lease::Caps;
use dash_worker::demo::DemoOptions;
use dash_worker::{Worker, WorkerSettings};

use super::{serve::shutdown_signal, UsageError, EXIT_OK};

fn parse_duration(v: &str) -> Result<Duration, String> {
    humantime::parse_duration(v).map_err(|e| format!("{e} (use e.g. 10s, 500ms)"))
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// The runtime each agent runs: `demo` (built in), `noop` (completes at once, no process: for measuring claims), or a program, run directly (never through a shell) with the task on stdin and DASH_AGENT_ID, DASH_AGENT_MODEL, DASH_AGENT_ATTEMPT, DASH_BUDGET_REMAINING, DASH_BUDGET_CURRENCY, DASH_SWARM_ID in its environment. Its stdout and stderr become the agent's log; JSON lines with a "dash" key report usage, progress and a result (docs/WORKER.md).
    #[arg(
        long,
        env = "DASH_WORKER_RUNTIME",
        default_value = "demo",
        value_name = "PROGRAM"
    )]
    pub runtime: String,
    /// One argument for the runtime program (repeat for more; each is passed as is).
    #[arg(long = "runtime-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub runtime_args: Vec<String>,
    /// Agents this worker runs at once.
    #[arg(long, env = "DASH_WORKER_SLOTS", default_value_t = 4)]
    pub slots: usize,
    /// A claim's lease; an agent whose worker stops renewing it is reclaimed by another worker once it passes.
    #[arg(long, env = "DASH_WORKER_LEASE", default_value = "10s", value_parser = parse_duration)]
    pub lease: Duration,
    /// How often a running agent's lease is renewed (at most a third of the lease).
    #[arg(long, env = "DASH_WORKER_HEARTBEAT", default_value = "2s", value_parser = parse_duration)]
    pub heartbeat: Duration,
    /// How often to look for work besides the database's wake-ups.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub poll: Duration,
    /// Running agents across every worker (checked in the claim's transaction).
    #[arg(long, env = "MAX_CONCURRENT_AGENTS", default_value_t = 100)]
    pub max_concurrent_agents: u32,
    /// Running agents of one swarm (besides the swarm's own max_agents).
    #[arg(long, env = "MAX_CONCURRENT_AGENTS_PER_SWARM", default_value_t = 100)]
    pub max_concurrent_per_swarm: u32,
    /// On SIGTERM or Ctrl-C: how long running agents may finish before they are stopped and handed back (pending, no attempt spent).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub drain: Duration,
    /// This worker's name, recorded with each claim [default: HOST-PID].
    #[arg(long, env = "DASH_WORKER_NAME")]
    pub name: Option<String>,
    /// Port of /metrics (dash_worker_*); 0: none.
    #[arg(long, env = "DASH_WORKER_METRICS_PORT", default_value_t = 0)]
    pub metrics_port: u16,
    #[command(flatten)]
    pub demo: DemoArgs,
}

/// The demo runtime's behaviour (also `dashctl worker --runtime demo`'s).
#[derive(Debug, Args, Clone)]
pub struct DemoArgs {
    /// Demo runtime: steps per run.
    #[arg(long, default_value_t = 5)]
    pub demo_steps: u32,
    /// Demo runtime: how long each step takes.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    pub demo_step: Duration,
    /// Demo runtime: cost reported per step.
    #[arg(long, default_value_t = 0.01)]
    pub demo_cost: f64,
    /// Demo runtime: fail (exit 1) on attempts up to this one.
    #[arg(long, default_value_t = 0)]
    pub demo_fail_attempts: i32,
    /// Demo runtime: append `start`/`step`/`end` lines (agent, attempt, Unix ns) to this file, for `dashctl chaos kill-worker`.
    #[arg(long, value_name = "FILE")]
    pub demo_journal: Option<std::path::PathBuf>,
}

impl DemoArgs {
    fn options(&self) -> DemoOptions {
        DemoOptions {
            steps: self.demo_steps,
            step: self.demo_step,
            cost: self.demo_cost,
            tokens: 100,
            fail_attempts: self.demo_fail_attempts,
            journal: self.demo_journal.clone(),
        }
    }

    fn argv(&self) -> Vec<String> {
        let mut argv: Vec<String> = vec![
            "runtime".into(),
            "demo".into(),
            format!("--demo-steps={}", self.demo_steps),
            format!("--demo-step={}ms", self.demo_step.as_millis()),
            format!("--demo-cost={}", self.demo_cost),
            format!("--demo-fail-attempts={}", self.demo_fail_attempts),
        ];
        if let Some(j) = &self.demo_journal {
            argv.push(format!("--demo-journal={}", j.display()));
        }
        argv
    }
}

pub async fn run(args: WorkerArgs) -> anyhow::Result<u8> {
    let api = super::settings()?;
    crate::telemetry::init(api.log_format == "json", "dash-worker");
    let target = dash_runbook::Target::from_env(&dash_runbook::ApiFlags::default())
        .map_err(|e| UsageError(e.to_string()))?;
    let runtime = match args.runtime.as_str() {
        "demo" => {
            let me = std::env::current_exe().context("finding this dashctl binary")?;
            let mut argv = vec![me.display().to_string()];
            argv.extend(args.demo.argv());
            argv
        }
        program => std::iter::once(program.to_string())
            .chain(args.runtime_args.iter().cloned())
            .collect(),
    };
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let settings = WorkerSettings {
        name: (args.name.clone())
            .unwrap_or_else(|| format!("{}-{}", host.trim(), std::process::id())),
        runtime,
        guard: Some(std::env::current_exe().context("finding this dashctl binary")?),
        slots: args.slots,
        lease: args.lease,
        heartbeat: args.heartbeat,
        poll: args.poll,
        caps: Caps {
            global: args.max_concurrent_agents,
            per_swarm: args.max_concurrent_per_swarm,
        },
        drain: args.drain,
        metrics_port: args.metrics_port,
        database: target.candidate_settings(),
    };
    let worker = Worker::new(settings.clone()).map_err(UsageError)?;
    worker
        .migrate(Duration::from_secs(30))
        .await
        .context("bringing the schema up to date")?;
    if let Some(addr) = (worker.serve_metrics().await)
        .with_context(|| format!("binding the metrics port {}", args.metrics_port))?
    {
        eprintln!("dashctl worker: metrics on http://{addr}/metrics");
    }
    eprintln!(
        "dashctl worker {}: {} slot(s), lease {:?}, heartbeat {:?}, runtime {:?}; Ctrl-C to stop",
        settings.name, settings.slots, settings.lease, settings.heartbeat, settings.runtime[0]
    );
    let report = worker.run_until_stopped(shutdown_signal()).await;
    eprintln!(
        "dashctl worker {}: stopped; {} claimed, {} finished here",
        settings.name,
        report.claimed,
        report.ends.len()
    );
    Ok(EXIT_OK)
}

/// `dashctl runtime demo`.
pub fn demo(args: &DemoArgs) -> u8 {
    let stdin = std::io::stdin().lock();
    let code = dash_worker::demo::run(
        &args.options(),
        stdin,
        std::io::stdout().lock(),
        std::io::stderr().lock(),
    );
    code as u8
}
