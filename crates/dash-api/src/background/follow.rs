//! The cluster-settings follower: about once a second, one read of the
//! settings row and one report of what this process applied
//! (`dash_control.instances`), so every API process follows a maintenance
//! or pool change made through any of them within a second or so. Changes
//! made here while the database was out of reach are written first.

use std::time::Duration;

use dash_store::repo::control::{ClusterSettings, InstanceReport};
use dash_store::StoreError;

use crate::state::cluster::Follow;
use crate::state::AppState;

/// How often the settings are read and this process reported.
pub const FOLLOW_EVERY: Duration = Duration::from_secs(1);
/// Bound of one round (each query has its own deadline too).
const ROUND_DEADLINE: Duration = Duration::from_secs(5);

pub async fn run(state: &AppState) {
    let mut tick = tokio::time::interval(FOLLOW_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tick.tick().await;
        let result = tokio::time::timeout(ROUND_DEADLINE, sync_once(state))
            .await
            .unwrap_or_else(|_| Err(StoreError::Deadline(ROUND_DEADLINE)));
        match result {
            Ok(()) if failing => {
                failing = false;
                tracing::info!("following the cluster settings again");
            }
            Ok(()) => {}
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %dash_core::error_chain(&e),
                    "cannot read the cluster settings; keeping the ones applied here");
            }
            Err(_) => {}
        }
    }
}

/// One round: push changes the database has not taken, read the row, apply
/// it (or put it back when a restore rewound it), report.
/// Errors are the caller's to log (once per outage, not every second).
pub async fn sync_once(state: &AppState) -> Result<(), StoreError> {
    push_pending(state).await?;
    let row = state.db.cluster_settings().await?;
    match state.cluster.follow(&row, |maintenance_ours, pool_ours| {
        apply(state, &row, maintenance_ours, pool_ours)
    }) {
        Follow::Applied => {}
        Follow::Rewound(newest) => {
            let by = format!(
                "{} (pid {}): put back the settings a restore had rewound",
                state.cluster.host, state.cluster.pid
            );
            tracing::warn!(
                found = row.version,
                newest = newest.version,
                "the cluster settings went back in time (a restore?); writing back the newest"
            );
            if let Some(put_back) = state.db.rewrite_rewound_settings(&newest, &by).await? {
                state
                    .cluster
                    .follow(&put_back, |m, p| apply(state, &put_back, m, p));
            }
        }
    }
    report(state).await
}

/// Applies `row` here, except what has a pending change of ours.
fn apply(state: &AppState, row: &ClusterSettings, maintenance_ours: bool, pool_ours: bool) {
    if !maintenance_ours && state.local_maintenance() != row.maintenance {
        tracing::warn!(reason = ?row.maintenance, by = %row.changed_by,
            "maintenance mode changed by the cluster setting");
        state.set_local_maintenance(row.maintenance.clone());
    }
    if let (false, Some(size)) = (pool_ours, row.pool_size) {
        let size = usize::try_from(size).unwrap_or(1).clamp(1, 1000);
        if state.db.status().max_size != size {
            tracing::info!(size, by = %row.changed_by, "pool resized by the cluster setting");
            state.set_local_pool_size(size);
        }
    }
}

async fn push_pending(state: &AppState) -> Result<(), StoreError> {
    for p in state.cluster.pending() {
        let stored = state
            .db
            .change_setting(&p.change, &p.by, Some(p.decided_at))
            .await?;
        if stored.is_none() {
            tracing::warn!(change = ?p.change,
                "a change made here while the database was out of reach was overtaken by a later one; following the later one");
        }
        state.cluster.settle(p.seq(), stored);
    }
    Ok(())
}

async fn report(state: &AppState) -> Result<(), StoreError> {
    let link = &state.cluster;
    let r = InstanceReport {
        id: link.id,
        host: link.host.clone(),
        pid: i32::try_from(link.pid).unwrap_or(i32::MAX),
        started_at: link.started_at,
        maintenance: state.local_maintenance(),
        pool_size: i32::try_from(state.db.status().max_size).unwrap_or(i32::MAX),
        settings_version: link.newest().map_or(0, |s| s.version),
    };
    state.db.report_instance(&r).await
}
