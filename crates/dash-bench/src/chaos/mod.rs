//! The chaos engine behind `dashctl chaos`: builds a private platform
//! (cluster, supervisor, API) in a temp dir on loopback, drives writes
//! through the API, injects the fault, and measures each round. Everything
//! is torn down at the end, even on error.

mod faults;
mod render;
mod report;
mod round;

use std::time::Duration;

use dash_ha::{ClusterOptions, LocalCluster};
use dash_platform::{Platform, PlatformError, ScratchCluster};
use dash_store::Secret;
use serde::Serialize;
use uuid::Uuid;

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
    /// Immediate stop then start of the primary (runbook scenario 1, a transient restart).
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
}

/// Why a chaos run could not start or stopped early.
#[derive(Debug, thiserror::Error)]
pub enum ChaosError {
    #[error("{0}")]
    Usage(String),
    #[error("the private platform's API was not ready: {0}")]
    NotReady(String),
    #[error("round {round}: {reason}")]
    Round { round: u32, reason: String },
    #[error("cannot connect to {node}: {reason}")]
    Connect { node: String, reason: String },
    #[error(transparent)]
    Platform(#[from] PlatformError),
    #[error(transparent)]
    Cluster(#[from] dash_ha::ClusterError),
    #[error(transparent)]
    Topology(#[from] dash_ha::TopologyError),
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
    let token = Uuid::new_v4().simple().to_string();
    let cluster_opts = ClusterOptions {
        replicas: 1,
        synchronous: opts.synchronous,
        base_port: 0,
        ports: None,
        api_url: String::new(),
        metrics_url: String::new(),
        api_token: Some(token.clone()),
    };
    progress("building a private cluster");
    let (mut scratch, cluster) =
        tokio::task::block_in_place(|| ScratchCluster::create(cluster_opts, progress))?;
    if opts.keep {
        scratch.keep();
    }
    let home = scratch.home().to_path_buf();
    progress(&format!("the cluster lives in {}", home.display()));
    let mut api = dash_api::ApiSettings {
        bind: [127, 0, 0, 1].into(),
        api_port: 0,
        metrics_port: 0,
        tokens: vec![Secret::new(token.clone())],
        ..dash_api::ApiSettings::default()
    };
    api.database.pool_size = (opts.concurrency + 4).max(20);
    let platform = Platform::start(cluster, api).await?;
    let base_url = platform.base_url().to_string();
    // Writes before the schema is migrated would fail as errors, not outages.
    if !crate::load::wait_ready(&base_url, HA_LIMIT).await {
        platform.stop().await?;
        return Err(ChaosError::NotReady(format!(
            "{base_url} within {HA_LIMIT:?}"
        )));
    }
    let mut rounds = Vec::new();
    let mut stopped_early = None;
    for n in 1..=opts.rounds {
        match round::round(n, opts, &home, &base_url, &token).await {
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
    platform.stop().await?;
    let final_cluster = LocalCluster::open(&home)?;
    tokio::task::block_in_place(|| final_cluster.stop_all(&|_| {}));
    drop(scratch);
    Ok(ChaosRun {
        report: ChaosReport::new(opts.scenario, opts.synchronous, rounds),
        stopped_early,
    })
}

/// How long the engine waits for the cluster to be highly available again.
const HA_LIMIT: Duration = Duration::from_secs(60);
