//! `dashctl supervise`: the failover supervisor alone, until SIGTERM or Ctrl-C.

use super::{dash_home, serve::shutdown_signal, EXIT_OK};

pub async fn run() -> anyhow::Result<u8> {
    crate::telemetry::init(false, crate::telemetry::SERVICE);
    let cluster = dash_ha::LocalCluster::open(&dash_home())?;
    let supervisor = dash_ha::supervisor::Supervisor::new(cluster)?;
    supervisor.run(shutdown_signal()).await;
    Ok(EXIT_OK)
}
