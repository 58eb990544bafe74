//! `dashctl serve`: the API and metrics listeners until SIGTERM or Ctrl-C.

use super::{settings, EXIT_OK};

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

pub async fn run() -> anyhow::Result<u8> {
    let s = settings()?;
    crate::telemetry::init(s.log_format == "json", crate::telemetry::SERVICE);
    let hosts: Vec<String> = s.database.hosts.iter().map(|h| h.to_string()).collect();
    let app = dash_api::App::build(s.clone()).await?;
    tracing::info!(
        api = %format!("http://{}:{}", s.bind, app.port()),
        metrics = %format!("http://{}:{}/metrics", s.bind, app.metrics_port()),
        database = %hosts.join(","),
        "dashctl serve is listening"
    );
    app.run_until_stopped(shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(EXIT_OK)
}
