//! `dashctl serve`: the API and metrics listeners until SIGTERM or Ctrl-C.

use super::{settings, EXIT_OK};

pub fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DASH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tokio_postgres=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        let _ = builder.json().try_init();
    } else {
        let _ = builder.try_init();
    }
}

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
    init_tracing(s.log_format == "json");
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
