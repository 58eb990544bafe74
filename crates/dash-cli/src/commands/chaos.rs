//! `dashctl chaos`: runs the chaos engine (`dash_bench::chaos`) and prints
//! its report; the exit code says whether a synchronous run stayed clean.

use dash_bench::chaos::{self, ChaosError, ChaosOptions};

use super::{UsageError, EXIT_FAILURE, EXIT_OK};
use crate::cli::ChaosArgs;

pub async fn run(args: ChaosArgs) -> anyhow::Result<u8> {
    crate::telemetry::init(false, crate::telemetry::QUIET);
    let opts = ChaosOptions {
        scenario: args.scenario.into(),
        rounds: args.rounds,
        concurrency: args.concurrency,
        synchronous: !args.asynchronous,
        keep: args.keep,
    };
    let run = match chaos::run(&opts, &|m| eprintln!("dashctl chaos: {m}")).await {
        Err(ChaosError::Usage(m)) => return Err(UsageError(m).into()),
        other => other?,
    };
    let report = &run.report;
    if args.json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print!("{}", report.render());
    }
    if let Some(e) = run.stopped_early {
        return Err(anyhow::Error::new(e).context("chaos run stopped early"));
    }
    let clean = report.lost == 0 && report.duplicates == 0 && report.fenced_writes == 0;
    Ok(if clean || args.asynchronous {
        EXIT_OK
    } else {
        EXIT_FAILURE
    })
}
