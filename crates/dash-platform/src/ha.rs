//! What the local agents say, read from their node APIs: every node's
//! `/status`, who leads, and when the cluster is highly available again.

use std::time::{Duration, Instant};

use dash_node::Status;

use crate::topology::{NodeInfo, Topology};

/// How long one `/status` may take.
const STATUS_TIMEOUT: Duration = Duration::from_millis(500);

/// Every node's `/status` in the record's order (`None`: no answer).
pub async fn statuses(topo: &Topology) -> Vec<Option<Status>> {
    let Some(http) = client() else {
        return vec![None; topo.nodes.len()];
    };
    futures::future::join_all(topo.nodes.iter().map(|n| status_with(&http, n))).await
}

/// Node `n`'s `/status` (`None`: no answer within [`STATUS_TIMEOUT`]).
pub async fn status(n: &NodeInfo) -> Option<Status> {
    status_with(&client()?, n).await
}

fn client() -> Option<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(STATUS_TIMEOUT)
        .no_proxy()
        .build()
        .ok()
}

async fn status_with(http: &reqwest::Client, n: &NodeInfo) -> Option<Status> {
    let resp = http
        .get(format!("{}/status", n.node_url()))
        .send()
        .await
        .ok()?;
    resp.json::<Status>().await.ok()
}

/// The leader and a standby that makes the cluster highly available.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaPair {
    pub leader: String,
    /// `None` only in a one-node cluster.
    pub standby: Option<String>,
}

/// The node that holds the key as a writable primary, if one does now.
pub async fn leader(topo: &Topology) -> Option<String> {
    statuses(topo)
        .await
        .into_iter()
        .flatten()
        .find(|s| s.role == "primary" && s.holds_key)
        .map(|s| s.name)
}

/// Polls until the cluster is highly available (see
/// [`dash_node::Status::ha_pair`]; a one-node cluster only needs its
/// leader); `progress` gets each new reason it is not yet. Stops early
/// with the reason `give_up` returns, or after `limit` with the last reason.
pub async fn wait_ha(
    topo: &Topology,
    limit: Duration,
    progress: &dyn Fn(&str),
    give_up: &mut dyn FnMut() -> Option<String>,
) -> Result<HaPair, String> {
    let deadline = Instant::now() + limit;
    let mut said = String::new();
    loop {
        let all: Vec<Status> = statuses(topo).await.into_iter().flatten().collect();
        let why = match Status::ha_pair(&all, topo.synchronous) {
            Ok((l, s)) => {
                return Ok(HaPair {
                    leader: all[l].name.clone(),
                    standby: Some(all[s].name.clone()),
                })
            }
            Err(why) => why,
        };
        let lone = all.iter().find(|s| s.role == "primary" && s.holds_key);
        if let (1, Some(l)) = (topo.nodes.len(), lone) {
            return Ok(HaPair {
                leader: l.name.clone(),
                standby: None,
            });
        }
        if why != said {
            progress(&why);
            said = why;
        }
        if let Some(reason) = give_up() {
            return Err(reason);
        }
        if Instant::now() > deadline {
            return Err(said);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
