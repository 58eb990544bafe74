//! `dashctl node`: the HA agent of one PostgreSQL host. It owns its local
//! PostgreSQL (init or clone, start, restart after a crash with backoff,
//! promote, demote, rewind or re-clone to rejoin), holds or follows the
//! leader key in etcd, fences itself when it cannot be sure it leads, keeps
//! the synchronous standby set, and serves the node API on port 8008.
//!
//! `decide.rs` and `sync.rs` are pure and unit-tested; `agent.rs` carries
//! their decisions out; `local.rs` is the PostgreSQL side, `api.rs` the HTTP
//! side. Leadership is etcd's (`dash-dcs`); Dash implements no consensus.

mod agent;
mod api;
mod archive;
mod backoff;
mod backup_api;
mod control;
pub mod decide;
pub mod guard;
mod kube;
pub mod layout;
mod local;
mod metrics;
mod options;
pub mod sync;
mod watchdog;

use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use dash_dcs::{Dcs, LeaseKeeperTask, LeaseTiming};

pub use api::Status;
pub use local::split_host_port;
pub use metrics::NodeMetrics;
pub use options::NodeOptions;

/// Why the agent could not run.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("invalid setting: {0}")]
    Invalid(String),
    #[error("PostgreSQL: {0}")]
    Pg(#[from] dash_pg::PgError),
    #[error("node API on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// Runs the agent until `shutdown` resolves; then a leader stops its server
/// cleanly and releases the key, and every member ends its lease.
pub async fn run(opts: NodeOptions, shutdown: impl Future<Output = ()>) -> Result<(), NodeError> {
    opts.validate().map_err(NodeError::Invalid)?;
    let pg = local::LocalPg::new(&opts)?;
    let listener = tokio::net::TcpListener::bind(opts.api_bind)
        .await
        .map_err(|source| NodeError::Bind {
            addr: opts.api_bind,
            source,
        })?;
    let status = Arc::new(RwLock::new(Status {
        name: opts.name.clone(),
        role: "starting".into(),
        ..Status::default()
    }));
    let metrics = Arc::new(metrics::NodeMetrics::new());
    let backups = opts.backrest.clone().map(|repo| {
        let server = dash_backrest::PgServer {
            data_dir: opts.pg_data.clone(),
            port: opts.pg_port,
            socket_dir: dash_pg::socket_dir_for(&opts.pg_data),
            user: opts.superuser.clone(),
        };
        Arc::new(backup_api::BackupService::new(
            repo,
            server,
            opts.node_token.clone(),
        ))
    });
    let app = api::router(status.clone(), metrics.clone(), backups);
    // The hardened listener the API uses: a client that never finishes its
    // request, or a crowd of idle ones, cannot take the agent's descriptors.
    let (_serving, stop) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(dash_http::serve(listener, app, api::LIMITS, stop));
    tokio::pin!(shutdown);

    let dcs = loop {
        match Dcs::connect(&opts.etcd, &opts.cluster, opts.etcd_timeout).await {
            Ok(d) => break d,
            Err(e) => {
                tracing::warn!(error = %e, endpoints = ?opts.etcd, "etcd not reachable yet; retrying");
                tokio::select! {
                    _ = &mut shutdown => { server.abort(); return Ok(()); }
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    };
    let lease = LeaseKeeperTask::start(dcs.clone(), LeaseTiming::for_ttl(opts.ttl));
    let tick = opts.tick;
    let kube_pod = opts.kube_pod.clone();
    let armed = Arc::new(watchdog::Armed::default());
    let guard = match guard::Guard::start(&opts.pg_data) {
        Ok(g) => Some(g),
        Err(e) => {
            tracing::warn!(error = %e, "no fence guard process: a frozen agent could not fence");
            None
        }
    };
    let watchdog = watchdog::start(
        pg.ctl.clone(),
        lease.subscribe(),
        armed.clone(),
        metrics.clone(),
        guard,
    );
    // A freed leader key is acted on at once, not at the next tick. A newly
    // taken one is not: its holder is still promoting, and a follower that
    // tried to rewind against it now would fail and back off.
    let mut leader_changes = dcs.watch_leader();
    let mut agent = agent::Agent::new(opts, dcs, lease, pg, status, metrics, armed);
    if let Some((namespace, pod)) = kube_pod {
        agent.label_pod(namespace, pod);
    }
    tracing::info!(name = %agent.opts.name, "node agent running");
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = ticker.tick() => agent.tick().await,
            Some(change) = leader_changes.recv() => {
                if change == dash_dcs::LeaderChange::Freed {
                    agent.tick().await;
                    ticker.reset();
                }
            }
        }
    }
    tracing::info!("node agent stopping");
    watchdog.abort();
    agent.shutdown().await;
    server.abort();
    Ok(())
}
