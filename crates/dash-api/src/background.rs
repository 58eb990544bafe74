//! Background work of an API process: migrations until they succeed, the
//! `pg_up` probe, the by-status gauges, idempotency-key and instance
//! pruning, following the cluster-wide settings ([`follow`]), and the
//! dashboard's live snapshot ([`crate::dashboard`]).

pub mod follow;

use std::time::{Duration, Instant};

use dash_core::{AgentStatus, SwarmStatus};

use crate::metrics::Metrics;
use crate::state::AppState;

/// How often the primary is probed for `pg_up`.
const PROBE_EVERY: Duration = Duration::from_millis(250);
const COUNTS_EVERY: Duration = Duration::from_secs(5);
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
const KEY_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

pub async fn run(state: AppState) {
    let database = async {
        migrate_until_done(&state).await;
        tokio::join!(probe_loop(&state), follow::run(&state));
    };
    // The dashboard shows the cluster and the outage while migrations wait,
    // on its own task so that nothing here delays its database event; it
    // ends with this one (aborted or not).
    let dashboard = AbortOnDrop(tokio::spawn(crate::dashboard::run(state.clone())));
    database.await;
    drop(dashboard);
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn probe_loop(state: &AppState) {
    let mut last_counts = Instant::now() - COUNTS_EVERY;
    let mut last_prune = Instant::now();
    let mut tick = tokio::time::interval(PROBE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let up = probe(state).await;
        state.metrics.pg_up.set(up as i64);
        state.metrics.set_pool(state.db.status());
        if up && last_counts.elapsed() >= COUNTS_EVERY {
            last_counts = Instant::now();
            refresh_counts(state).await;
        }
        if up && last_prune.elapsed() >= PRUNE_EVERY {
            last_prune = Instant::now();
            if let Err(e) = state.db.prune_idempotency_keys(KEY_MAX_AGE).await {
                tracing::warn!(error = %e, "pruning idempotency keys failed");
            }
            if let Err(e) = state.db.prune_instances().await {
                tracing::warn!(error = %e, "pruning old API instances failed");
            }
        }
    }
}

async fn migrate_until_done(state: &AppState) {
    let mut pause = Duration::from_millis(100);
    loop {
        let result = async {
            let mut conn = state.db.conn().await?;
            dash_store::migrate::migrate(&mut conn).await
        }
        .await;
        match result {
            Ok(n) => {
                tracing::info!(applied = n, "schema is current");
                return;
            }
            Err(e) => {
                state.metrics.pg_up.set(0);
                tracing::warn!(error = %dash_core::error_chain(&e), "schema migration waiting for the database");
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

/// Whether the primary answers. A pool whose every connection is busy
/// while its last contact worked counts as up: that is load, and `pg_up`
/// going to 0 under load would page for an outage that is not there.
async fn probe(state: &AppState) -> bool {
    match state.db.conn().await {
        Ok(mut c) => c.query_one("SELECT 1", &[]).await.is_ok(),
        Err(dash_store::StoreError::PoolExhausted(_)) => true,
        Err(_) => false,
    }
}

async fn refresh_counts(state: &AppState) {
    if let Ok(c) = state.db.count_agents().await {
        let known: Vec<&str> = AgentStatus::ALL.iter().map(|s| s.as_str()).collect();
        Metrics::set_counts(&state.metrics.agents, &known, &c);
    }
    if let Ok(c) = state.db.count_swarms().await {
        let known: Vec<&str> = SwarmStatus::ALL.iter().map(|s| s.as_str()).collect();
        Metrics::set_counts(&state.metrics.swarms, &known, &c);
    }
}
