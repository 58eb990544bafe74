//! The drill's traffic and its faults: clients creating swarms through the
//! API (each write's send and acknowledgement times kept), the destructive
//! statement, what survived, and a failover (the primary's processes
//! killed by PID, a standby promoted by the agents).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use dash_platform::Topology;
use dash_runbook::pitr::Setup;
use dash_runbook::{session, RunbookError, Target};

use super::PitrDrillError;

/// One write: the swarm's name, when it was sent, when (if) it was acknowledged.
#[derive(Debug, Clone)]
pub struct Write {
    pub name: String,
    pub sent: DateTime<Utc>,
    pub acked: Option<DateTime<Utc>>,
}

/// How long one write may take before it counts as unacknowledged.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// `clients` writers create swarms named `pitr-r<round>-c<client>-<i>` for
/// `writing`; the point is noted halfway. Bounded by time.
pub async fn drive(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    round: u32,
    clients: usize,
    writing: Duration,
) -> (Vec<Write>, DateTime<Utc>) {
    let end = Instant::now() + writing;
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (http, url, token) = (
            http.clone(),
            format!("{base}/api/v1/swarms"),
            token.to_string(),
        );
        tasks.push(tokio::spawn(async move {
            let mut log = Vec::new();
            let mut i = 0u64;
            while Instant::now() < end {
                i += 1;
                let name = format!("pitr-r{round}-c{c}-{i}");
                let sent = Utc::now();
                let resp = (http.post(&url).bearer_auth(&token).timeout(WRITE_TIMEOUT))
                    .json(&serde_json::json!({ "name": name, "strategy": "parallel" }))
                    .send()
                    .await;
                let ok = resp.is_ok_and(|r| r.status().as_u16() == 201);
                let acked = ok.then(Utc::now);
                log.push(Write { name, sent, acked });
            }
            log
        }));
    }
    tokio::time::sleep(writing / 2).await;
    let point = Utc::now();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap_or_default());
    }
    (all, point)
}

/// The bad statement: every swarm deleted on the primary. Returns how many.
pub async fn destroy(target: &Target) -> Result<u64, RunbookError> {
    let p = session::primary(target).await?;
    let n = (p.client.execute("DELETE FROM swarms", &[]).await)
        .map_err(|e| RunbookError::Invalid(format!("the destructive DELETE failed: {e}")))?;
    Ok(n)
}

/// The names of round `round`'s swarms that exist now.
pub async fn present(target: &Target, round: u32) -> Result<HashSet<String>, RunbookError> {
    let p = session::primary(target).await?;
    let pattern = format!("pitr-r{round}-%");
    let rows = (p
        .client
        .query("SELECT name FROM swarms WHERE name LIKE $1", &[&pattern])
        .await)
        .map_err(|e| RunbookError::Invalid(format!("reading the swarms failed: {e}")))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Kills the leader's PostgreSQL (every process, by PID) and waits until
/// another member leads and a standby streams again. Returns "old -> new".
pub async fn fail_over(
    topo: &Topology,
    setup: &Setup,
    progress: &dyn Fn(&str),
) -> Result<String, PitrDrillError> {
    let etcd = setup
        .etcd
        .clone()
        .ok_or_else(|| PitrDrillError::Other("no etcd".into()))?;
    let dcs = etcd
        .connect()
        .await
        .map_err(|e| PitrDrillError::Other(e.to_string()))?;
    let view = dcs
        .view()
        .await
        .map_err(|e| PitrDrillError::Other(e.to_string()))?;
    let old = view
        .leader
        .map(|l| l.name)
        .ok_or_else(|| PitrDrillError::Other("no leader".into()))?;
    let node = topo
        .node(&old)
        .ok_or_else(|| PitrDrillError::Other(format!("{old} is not recorded")))?;
    progress(&format!(
        "killing {old}'s PostgreSQL (every process of {})",
        node.data_dir.display()
    ));
    dash_pg::kill_data_dir_processes(&node.data_dir);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if let Ok(v) = dcs.view().await {
            let leader = v.leader.as_ref().map(|l| l.name.clone());
            let streaming = v.members.iter().any(|m| m.role == "replica" && m.streaming);
            let primary = leader
                .as_ref()
                .and_then(|l| v.member(l))
                .is_some_and(|m| m.role == "primary");
            if let (Some(new), true, true) = (leader, primary, streaming) {
                if new != old {
                    return Ok(format!("{old} -> {new}"));
                }
            }
        }
        if Instant::now() > deadline {
            return Err(PitrDrillError::Other(format!(
                "no failover from {old} within 120 s"
            )));
        }
    }
}
