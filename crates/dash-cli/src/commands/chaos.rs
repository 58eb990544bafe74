//! `dashctl chaos`: runs the chaos engine (`dash_bench::chaos` on one
//! machine, `dash_bench::hosts` with `--hosts`) and prints its report; the
//! exit code says whether a synchronous run stayed clean.

use std::sync::Arc;

use dash_bench::chaos::{self, ChaosError, ChaosOptions};
use dash_bench::hosts::{self, HostsError, HostsOptions};
use dash_bench::pitr_drill::{self, PitrDrillError, PitrDrillOptions};
use dash_bench::worker_chaos::{self, KillWorkerError, KillWorkerOptions};

use super::{UsageError, EXIT_FAILURE, EXIT_OK};
use crate::cli::{ChaosArgs, ScenarioArg};

/// kill-worker: workers running at once, and the slots of each.
const KILL_WORKERS: usize = 3;
const KILL_SLOTS: usize = 4;

pub async fn run(args: ChaosArgs) -> anyhow::Result<u8> {
    crate::telemetry::init(false, crate::telemetry::QUIET);
    if let Some(n) = args.hosts {
        return run_hosts(args, n).await;
    }
    if args.scenario == ScenarioArg::KillWorker {
        return run_kill_worker(args).await;
    }
    if args.scenario == ScenarioArg::Pitr {
        return run_pitr(args).await;
    }
    let Some(scenario) = args.scenario.local() else {
        return Err(UsageError(format!(
            "{:?} runs on several hosts: add --hosts 3",
            args.scenario
        ))
        .into());
    };
    let opts = ChaosOptions {
        scenario,
        rounds: args.rounds,
        concurrency: args.concurrency,
        synchronous: !args.asynchronous,
        keep: args.keep,
        dashctl: std::env::current_exe()?,
    };
    let run = match chaos::run(&opts, &|m| eprintln!("dashctl chaos: {m}")).await {
        Err(ChaosError::Usage(m)) => return Err(UsageError(m).into()),
        other => other?,
    };
    let report = &run.report;
    let clean = report.lost == 0 && report.duplicates == 0 && report.fenced_writes == 0;
    finish(&args, report, report.render(), run.stopped_early, clean)
}

async fn run_hosts(args: ChaosArgs, members: usize) -> anyhow::Result<u8> {
    let Some(scenario) = args.scenario.hosts() else {
        return Err(UsageError(format!(
            "{:?} runs on one machine: drop --hosts (on hosts, try host-crash, pg-crash or partition)",
            args.scenario
        ))
        .into());
    };
    let opts = HostsOptions {
        scenario,
        rounds: args.rounds,
        concurrency: args.concurrency,
        synchronous: !args.asynchronous,
        members,
        ttl: args.ttl,
        duration: args.duration,
        dashctl: std::env::current_exe()?,
        keep: args.keep,
    };
    let progress: Arc<dyn Fn(&str) + Send + Sync> =
        Arc::new(|m: &str| eprintln!("dashctl chaos: {m}"));
    let run = match tokio::task::spawn_blocking(move || hosts::run(&opts, progress)).await? {
        Err(HostsError::Usage(m)) => return Err(UsageError(m).into()),
        other => other?,
    };
    let report = &run.report;
    finish(
        &args,
        report,
        report.render(),
        run.stopped_early,
        report.clean(),
    )
}

async fn run_kill_worker(args: ChaosArgs) -> anyhow::Result<u8> {
    let opts = KillWorkerOptions {
        rounds: args.rounds,
        agents: args.agents,
        workers: KILL_WORKERS,
        slots: KILL_SLOTS,
        cap: args.cap,
        lease: args.lease,
        heartbeat: args.heartbeat,
        keep: args.keep,
        dashctl: std::env::current_exe()?,
    };
    let report = match worker_chaos::run(&opts, &|m| eprintln!("dashctl chaos: {m}")).await {
        Err(KillWorkerError::Usage(m)) => return Err(UsageError(m).into()),
        other => other?,
    };
    let clean = report.clean();
    finish(
        &args,
        &report,
        report.render(),
        None::<KillWorkerError>,
        clean,
    )
}

async fn run_pitr(args: ChaosArgs) -> anyhow::Result<u8> {
    let opts = PitrDrillOptions {
        rounds: args.rounds,
        concurrency: args.concurrency,
        failover_every: args.failover_every,
        writing: std::time::Duration::from_secs(4),
        keep: args.keep,
        dashctl: std::env::current_exe()?,
    };
    let report = match pitr_drill::run(&opts, &|m| eprintln!("dashctl chaos: {m}")).await {
        Err(PitrDrillError::Usage(m)) => return Err(UsageError(m).into()),
        other => other?,
    };
    let clean = report.clean();
    finish(
        &args,
        &report,
        report.render(),
        None::<PitrDrillError>,
        clean,
    )
}

/// Prints the report (JSON or text); a run that stopped early is an error,
/// an unclean synchronous one exits 1.
fn finish<E: std::error::Error + Send + Sync + 'static>(
    args: &ChaosArgs,
    report: &impl serde::Serialize,
    text: String,
    stopped_early: Option<E>,
    clean: bool,
) -> anyhow::Result<u8> {
    if args.json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print!("{text}");
    }
    if let Some(e) = stopped_early {
        return Err(anyhow::Error::new(e).context("chaos run stopped early"));
    }
    Ok(if clean || args.asynchronous {
        EXIT_OK
    } else {
        EXIT_FAILURE
    })
}
