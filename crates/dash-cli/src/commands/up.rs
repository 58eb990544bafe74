//! `dashctl up`: the whole platform on this machine. Creates (or reuses) the
//! cluster under `$DASH_HOME`, starts it, the API and the supervisor, prints
//! the URLs, and on Ctrl-C stops them in order: supervisor, API, nodes.

use anyhow::Context;
use dash_ha::{ClusterOptions, LocalCluster, Topology};
use dash_platform::Platform;

use super::{dash_home, serve::shutdown_signal, settings, EXIT_OK};
use crate::cli::UpArgs;

fn say(m: &str) {
    eprintln!("dashctl up: {m}");
}

pub async fn run(args: UpArgs) -> anyhow::Result<u8> {
    let api = settings()?;
    crate::telemetry::init(api.log_format == "json", crate::telemetry::SERVICE);
    let home = dash_home();
    let host = if api.bind.is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        api.bind.to_string()
    };
    let api_url = format!("http://{host}:{}", api.api_port);
    let metrics_url = format!("http://{host}:{}/metrics", api.metrics_port);
    let exists = Topology::path(&home).exists();
    let cluster = tokio::task::block_in_place(|| -> anyhow::Result<LocalCluster> {
        if exists {
            say(&format!(
                "reusing the cluster recorded in {}",
                home.display()
            ));
            let mut c = LocalCluster::open(&home)?;
            c.topo.api_url = api_url.clone();
            c.topo.metrics_url = metrics_url.clone();
            if let Some(t) = api.tokens.first() {
                c.topo.api_token = t.clone();
            }
            c.topo.save(&c.home)?;
            c.start_all(&say)?;
            Ok(c)
        } else {
            say(&format!("creating a new cluster in {}", home.display()));
            let opts = ClusterOptions {
                replicas: args.replicas,
                synchronous: !args.asynchronous,
                base_port: args.pg_port,
                ports: None,
                api_url: api_url.clone(),
                metrics_url: metrics_url.clone(),
                api_token: api.tokens.first().map(|t| t.expose().to_string()),
            };
            Ok(LocalCluster::create(&home, &opts, &say).context("creating the local cluster")?)
        }
    })?;
    let result = run_platform(cluster, api, api_url, metrics_url).await;
    // Whatever happened above, the nodes stop: the supervisor may have
    // changed roles, so stop what the record says now.
    let final_cluster = LocalCluster::open(&home)?;
    tokio::task::block_in_place(|| final_cluster.stop_all(&say));
    say("stopped");
    result
}

async fn run_platform(
    cluster: LocalCluster,
    api: dash_api::ApiSettings,
    api_url: String,
    metrics_url: String,
) -> anyhow::Result<u8> {
    let topo = cluster.topo.clone();
    let platform = Platform::start(cluster, api)
        .await
        .context("starting the supervisor and the API")?;
    let mode = if topo.synchronous {
        "synchronous"
    } else {
        "asynchronous"
    };
    println!(
        "Dash is up ({} node(s), {mode} replication)",
        topo.nodes.len()
    );
    println!("  API        {api_url}/api/v1");
    println!("  Dashboard  {api_url}/");
    println!("  Metrics    {metrics_url}");
    println!("  API token  {}", topo.api_token.expose());
    for n in &topo.nodes {
        println!(
            "  {:<10} postgresql://{}@{}:{}/{} ({:?})",
            n.name, topo.user, n.host, n.port, topo.dbname, n.role
        );
    }
    println!("Press Ctrl-C to stop.");
    shutdown_signal().await;
    say("stopping: supervisor, API, then the database nodes");
    if let Err(e) = platform.stop().await {
        say(&format!("API stopped with an error: {e}"));
    }
    Ok(EXIT_OK)
}
