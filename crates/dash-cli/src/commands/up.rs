//! `dashctl up`: the whole platform on this machine, on the same engine as
//! across machines. Records a new cluster under `$DASH_HOME` (or reuses the
//! recorded one), starts etcd, one `dashctl node` agent per node and the
//! API, prints the URLs, follows its record (a node `dashctl db add-replica`
//! records gets an agent), and on Ctrl-C stops them in order: API, the
//! replicas' agents, the leader's agent, etcd.

use anyhow::Context;
use dash_platform::{ClusterOptions, Platform, PlatformOptions, Topology};

use super::{dash_home, serve::shutdown_signal, settings, UsageError, EXIT_OK};
use crate::cli::UpArgs;

/// How long the first start (initdb, clones) may take to become highly available.
const HA_LIMIT: std::time::Duration = std::time::Duration::from_secs(180);

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
    for (port, var) in [
        (api.api_port, "DASH_API_PORT"),
        (api.metrics_port, "METRICS_PORT"),
    ] {
        if !dash_platform::taken(&[port]).is_empty() {
            return Err(UsageError(format!(
                "port {port} is in use: set {var} to a free port (nothing was started)"
            ))
            .into());
        }
    }
    if Topology::path(&home).exists() {
        say(&format!(
            "reusing the cluster recorded in {}",
            home.display()
        ));
        let mut topo = Topology::load(&home)?;
        topo.api_url = api_url.clone();
        topo.metrics_url = metrics_url.clone();
        if let Some(t) = api.tokens.first() {
            topo.api_token = t.clone();
        }
        topo.save(&home)?;
    } else {
        say(&format!("recording a new cluster in {}", home.display()));
        let nodes = usize::from(args.replicas) + 1;
        let mut chosen = Vec::new();
        let pg_ports = choose_ports("--pg-port", args.pg_port, 54320, nodes, &mut chosen)?;
        let node_ports = choose_ports("--node-port", args.node_port, 8008, nodes, &mut chosen)?;
        let etcd = choose_ports("--etcd-port", args.etcd_port, 2379, 2, &mut chosen)?;
        let opts = ClusterOptions {
            replicas: nodes - 1,
            synchronous: !args.asynchronous,
            pg_ports,
            node_ports,
            etcd_client_port: etcd[0],
            etcd_peer_port: etcd[1],
            api_url: api_url.clone(),
            metrics_url: metrics_url.clone(),
            api_token: api.tokens.first().map(|t| t.expose().to_string()),
        };
        Topology::create(&home, &opts).context("recording the local cluster")?;
    }
    let opts = PlatformOptions {
        dashctl: std::env::current_exe().context("finding this dashctl binary")?,
        ha_limit: HA_LIMIT,
        backups: !args.no_backups,
    };
    let platform = tokio::select! {
        p = Platform::start(&home, api, &opts, &say) => p.context("starting the platform")?,
        _ = shutdown_signal() => {
            // Dropping the half-started platform kills its agents and etcd.
            say("interrupted while starting; stopped");
            return Ok(EXIT_OK);
        }
    };
    let mut platform = platform;
    print_urls(&platform, &api_url, &metrics_url).await;
    follow_until_stopped(&mut platform, &home).await;
    say("stopping: API, the replicas' agents, the leader's agent, etcd");
    platform.stop(&say).await.context("stopping the platform")?;
    say("stopped");
    Ok(EXIT_OK)
}

/// Until Ctrl-C: follows `cluster.json` (a node that `dashctl db
/// add-replica` records gets its agent), saying each failure to read it once.
async fn follow_until_stopped(platform: &mut Platform, home: &std::path::Path) {
    let stop = shutdown_signal();
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut said = String::new();
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tick.tick() => {
                let e = platform.follow_record(home, &say).await.err().map(|e| e.to_string());
                match e {
                    Some(e) if e != said => {
                        say(&format!("following {}: {e}", Topology::path(home).display()));
                        said = e;
                    }
                    Some(_) => {}
                    None => said.clear(),
                }
            }
        }
    }
}

/// `count` consecutive ports from `flag`'s value, refused when one is in
/// use; without the flag, from `default`, or free ports when those are
/// taken (a second platform on this machine). Never one already `chosen`.
fn choose_ports(
    flag: &str,
    given: Option<u16>,
    default: u16,
    count: usize,
    chosen: &mut Vec<u16>,
) -> Result<Vec<u16>, UsageError> {
    let base = given.unwrap_or(default);
    let run: Vec<u16> = (0..count as u16)
        .map_while(|i| base.checked_add(i))
        .collect();
    let clash = run.len() < count
        || run.iter().any(|p| chosen.contains(p))
        || !dash_platform::taken(&run).is_empty();
    let ports = match (clash, given) {
        (false, _) => run,
        (true, Some(p)) => {
            return Err(UsageError(format!(
                "{flag} {p}: port(s) {run:?} are not all free; choose another {flag} (nothing was created)"
            )))
        }
        (true, None) => {
            let free = dash_platform::free_ports(count, chosen);
            say(&format!(
                "ports {run:?} (the {flag} default) are in use; recording free ones instead: {free:?}"
            ));
            free
        }
    };
    chosen.extend(&ports);
    Ok(ports)
}

async fn print_urls(platform: &Platform, api_url: &str, metrics_url: &str) {
    let topo = platform.topology();
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
    println!("  etcd       {}", topo.etcd_endpoints().join(","));
    let statuses = dash_platform::ha::statuses(topo).await;
    for (n, st) in topo.nodes.iter().zip(statuses) {
        let role = st.map_or_else(|| "not answering".to_string(), |s| s.role);
        println!(
            "  {:<10} postgresql://{}@{}:{}/{} ({role}; node API {})",
            n.name,
            topo.user,
            n.host,
            n.port,
            topo.dbname,
            n.node_url()
        );
    }
    println!("  psql       dashctl psql   (or eval \"$(dashctl env)\" for psql, pg_isready, pg_dump as written)");
    println!("Press Ctrl-C to stop.");
}
