//! `dashctl chaos pitr`: proves that a point-in-time restore keeps exactly
//! what was acknowledged before the point. On a private `dashctl up`-style
//! cluster with its pgBackRest repository, every round: a differential
//! backup (and, in the rounds `failover_every` names, a failover: the
//! primary's processes SIGKILLed and a standby promoted, so recovery
//! crosses a timeline switch between the backup and the incident), then
//! writes through the API from several clients, a point noted mid-way, a
//! destructive `DELETE FROM swarms`, and `dashctl db restore --to` that
//! point. Afterwards every write acknowledged before the point must be
//! there and none sent after it; writes in flight at the point may go
//! either way and are counted apart.

mod report;
mod writes;

use std::time::{Duration, Instant};

use dash_platform::{PlatformError, Topology};

use crate::chaos::private::{Private, PrivateOptions};
use dash_runbook::pitr::restore::PitrRestoreOptions;
use dash_runbook::pitr::target::Wanted;
use dash_runbook::pitr::Setup;
use dash_runbook::{ApiEndpoint, RunbookError, Target};
use dash_store::Secret;

pub use report::{PitrDrillReport, PitrRound};

/// What to drill.
#[derive(Debug, Clone)]
pub struct PitrDrillOptions {
    pub rounds: u32,
    pub concurrency: usize,
    /// Rounds whose number is a multiple of this fail over first (0: none).
    pub failover_every: u32,
    /// How long the clients write in each round (the point is in the middle).
    pub writing: Duration,
    pub keep: bool,
    pub dashctl: std::path::PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum PitrDrillError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Platform(#[from] PlatformError),
    #[error(transparent)]
    Runbook(#[from] RunbookError),
    #[error("{0}")]
    Other(String),
}

/// Runs the drill; the cluster is stopped and removed on return.
pub async fn run(
    o: &PitrDrillOptions,
    progress: &dyn Fn(&str),
) -> Result<PitrDrillReport, PitrDrillError> {
    if o.rounds == 0 || o.rounds > 100 {
        return Err(PitrDrillError::Usage(
            "--rounds must be from 1 to 100".into(),
        ));
    }
    let Private {
        scratch,
        platform,
        home,
        token,
    } = crate::chaos::private::start(
        &PrivateOptions {
            synchronous: true,
            concurrency: o.concurrency,
            keep: o.keep,
            dashctl: o.dashctl.clone(),
            ha_limit: Duration::from_secs(120),
            backups: true,
        },
        progress,
    )
    .await?;
    let topo = platform.topology().clone();
    let base = platform.base_url().to_string();
    let (target, setup) = wiring(&topo, &home, &base, &token)?;
    let mut rounds = Vec::new();
    let mut failure = None;
    for n in 1..=o.rounds {
        match round(n, o, &topo, &target, &setup, &base, &token, progress).await {
            Ok(r) => {
                progress(&r.line(o.rounds));
                rounds.push(r);
            }
            Err(e) => {
                failure = Some(dash_core::error_chain(&e));
                break;
            }
        }
    }
    platform.stop(&|_| {}).await?;
    drop(scratch);
    Ok(PitrDrillReport::new(rounds, failure))
}

/// The runbook's view of the private cluster: its API and etcd, every node local.
fn wiring(
    topo: &Topology,
    home: &std::path::Path,
    base: &str,
    token: &str,
) -> Result<(Target, Setup), PitrDrillError> {
    let endpoint = ApiEndpoint {
        api_url: base.to_string(),
        metrics_url: String::new(),
        token: Some(Secret::new(token.to_string())),
    };
    let repo = dash_platform::backrest_repo(home).ok_or_else(|| {
        PitrDrillError::Other("the platform made no pgBackRest repository".into())
    })?;
    let setup = Setup::for_platform(topo, repo);
    let mut target = Target::for_settings(topo.db_settings(), endpoint);
    target.etcd = setup.etcd.clone();
    Ok((target, setup))
}

#[allow(clippy::too_many_arguments)]
async fn round(
    n: u32,
    o: &PitrDrillOptions,
    topo: &Topology,
    target: &Target,
    setup: &Setup,
    base: &str,
    token: &str,
    progress: &dyn Fn(&str),
) -> Result<PitrRound, PitrDrillError> {
    let ty = if n == 1 {
        dash_backrest::BackupType::Full
    } else {
        dash_backrest::BackupType::Diff
    };
    let backup = dash_runbook::pitr::backup::backup(
        setup,
        &dash_runbook::pitr::backup::PhysicalBackupOptions {
            ty,
            from_primary: false,
            retention: None,
        },
    )
    .await?;
    let failed_over = match o.failover_every {
        0 => None,
        every if n.is_multiple_of(every) => Some(writes::fail_over(topo, setup, progress).await?),
        _ => None,
    };
    let client = reqwest::Client::new();
    let (log, point) = writes::drive(&client, base, token, n, o.concurrency, o.writing).await;
    let deleted = writes::destroy(target).await?;
    let started = Instant::now();
    let ropts = PitrRestoreOptions {
        wanted: Wanted::Time(point),
        on: None,
        dry_run: false,
        yes: true,
        wait: Duration::from_secs(300),
        api_stopped: false,
        allow_missing: false,
    };
    let restored = dash_runbook::pitr::restore::restore(target, setup, &ropts).await?;
    let present = writes::present(target, n).await?;
    Ok(PitrRound::judge(
        n,
        &log,
        point,
        &present,
        deleted,
        backup.label,
        failed_over,
        &restored,
        started.elapsed(),
    ))
}
