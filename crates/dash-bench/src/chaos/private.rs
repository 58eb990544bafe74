//! The private platform a local drill runs on (`dashctl chaos` and
//! `dashctl chaos pitr`): a two-node cluster recorded in a temp dir on free
//! loopback ports, started as `dashctl up` starts it, with an API that
//! accepts a fresh token and spawns without a rate limit.

use std::path::PathBuf;
use std::time::Duration;

use dash_platform::{Platform, PlatformError, PlatformOptions, ScratchCluster};
use dash_store::Secret;
use uuid::Uuid;

/// What the drill asks of its platform.
pub struct PrivateOptions {
    pub synchronous: bool,
    /// Writers the drill runs (the pool gets room for them).
    pub concurrency: usize,
    pub keep: bool,
    pub dashctl: PathBuf,
    pub ha_limit: Duration,
    /// A pgBackRest repository beside it (the restore drill).
    pub backups: bool,
}

/// A started private platform. Stop `platform` first, then drop `scratch`
/// (which kills what is left and removes the dir unless kept).
pub struct Private {
    pub scratch: ScratchCluster,
    pub platform: Platform,
    pub home: PathBuf,
    pub token: String,
}

pub async fn start(o: &PrivateOptions, progress: &dyn Fn(&str)) -> Result<Private, PlatformError> {
    let token = Uuid::new_v4().simple().to_string();
    progress("building a private cluster");
    let mut scratch = ScratchCluster::create(1, o.synchronous, Some(token.clone()))?;
    if o.keep {
        scratch.keep();
    }
    let home = scratch.home().to_path_buf();
    progress(&format!("the cluster lives in {}", home.display()));
    let mut api = dash_api::ApiSettings {
        bind: [127, 0, 0, 1].into(),
        api_port: 0,
        metrics_port: 0,
        tokens: vec![Secret::new(token.clone())],
        spawn_rate: 0.0,
        ..dash_api::ApiSettings::default()
    };
    api.database.pool_size = (o.concurrency + 4).max(20);
    let opts = PlatformOptions {
        dashctl: o.dashctl.clone(),
        ha_limit: o.ha_limit,
        backups: o.backups,
    };
    let platform = Platform::start(&home, api, &opts, progress).await?;
    Ok(Private {
        scratch,
        platform,
        home,
        token,
    })
}
