//! The chaos engine behind `dashctl chaos`: builds a private platform
//! (etcd, a `dashctl node` agent per node, the API) in a temp dir on
//! loopback, drives writes through the API, injects the fault, and measures
//! each round. Everything is torn down at the end, even on error.

mod faults;
pub(crate) mod private;
mod render;
mod report;
mod round;

use std::time::Duration;

use dash_platform::PlatformError;
use serde::Serialize;

pub use faults::{crash, signal_all};
pub use report::{ChaosReport, RoundReport, Spread};

/// The faults `dashctl chaos` can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// The primary node crashes: SIGSTOP every process at once, then SIGKILL them all.
    KillPrimary,
    /// The primary freezes (SIGSTOP); after the failover it is woken (SIGCONT) to prove the fence held.
    HangPrimary,
    /// Immediate stop of the primary's PostgreSQL (runbook scenario 1, a transient restart): its agent restarts it or hands over.
    RestartPrimary,
    /// Every free server connection held idle in transaction from outside the API.
    ExhaustPool,
}

/// What to drill.
#[derive(Debug, Clone)]
pub struct ChaosOptions {
    pub scenario: Scenario,
    /// Fault rounds, 1 to 1000.
    pub rounds: u32,
    /// Writer connections driving the API during each round.
    pub concurrency: usize,
    /// Synchronous replication (the default) or asynchronous.
    pub synchronous: bool,
    /// Keep the private cluster's directory (nodes stopped, logs kept).
    pub keep: bool,
    /// The `dashctl` binary the node agents run (normally this one).
    pub dashctl: std::path::PathBuf,
}

/// Why a chaos run could not start or stopped early.
#[derive(Debug, thiserror::Error)]
pub enum ChaosError {
    #[error("{0}")]
    Usage(String),
    #[error("round {round}: {reason}")]
    Round { round: u32, reason: String },
    #[error("cannot connect to {node}: {reason}")]
    Connect { node: String, reason: String },
    #[error(transparent)]
    Platform(#[from] PlatformError),
    #[error("database: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Load(#[from] crate::load::LoadError),
}

/// A finished run: the rounds that completed and, when it stopped early, why.
pub struct ChaosRun {
    pub report: ChaosReport,
    pub stopped_early: Option<ChaosError>,
}

/// Runs the drill end to end; `progress` gets a line per step and round.
pub async fn run(opts: &ChaosOptions, progress: &dyn Fn(&str)) -> Result<ChaosRun, ChaosError> {
    if opts.rounds == 0 || opts.rounds > 1000 {
        return Err(ChaosError::Usage("--rounds must be from 1 to 1000".into()));
    }
    let private::Private {
        scratch,
        platform,
        token,
        ..
    } = private::start(
        &private::PrivateOptions {
            synchronous: opts.synchronous,
            concurrency: opts.concurrency,
            keep: opts.keep,
            dashctl: opts.dashctl.clone(),
            ha_limit: HA_LIMIT,
            backups: false,
        },
        progress,
    )
    .await?;
    let topo = platform.topology().clone();
    let base_url = platform.base_url().to_string();
    let mut rounds = Vec::new();
    let mut stopped_early = None;
    for n in 1..=opts.rounds {
        match round::round(n, opts, &topo, &base_url, &token).await {
            Ok(r) => {
                progress(&format!(
                    "round {n}/{}: {} -> {}, write gap {:.0} ms, {} acked, {} lost, {} duplicates, {} fenced writes, HA again after {}",
                    opts.rounds,
                    r.old_primary,
                    r.new_primary,
                    r.write_gap_ms,
                    r.acked_writes,
                    r.lost,
                    r.duplicates,
                    r.fenced_writes,
                    r.ha_restored_ms.map_or("never".into(), |v| format!("{v:.0} ms"))
                ));
                rounds.push(r);
            }
            Err(e) => {
                stopped_early = Some(e);
                break;
            }
        }
    }
    platform.stop(&|_| {}).await?;
    drop(scratch);
    Ok(ChaosRun {
        report: ChaosReport::new(opts.scenario, opts.synchronous, rounds),
        stopped_early,
    })
}

/// How long the engine waits for the cluster to be highly available again.
const HA_LIMIT: Duration = Duration::from_secs(60);
