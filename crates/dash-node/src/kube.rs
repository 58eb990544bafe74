//! In Kubernetes, the agent keeps its own pod's `dash.io/role` label
//! current (`dash-kube`), so the Services `postgres` and `postgres-replica`
//! follow a failover. A background task applies the newest wanted role, so
//! a slow or failing API server never delays a tick; failures are retried.

use std::time::Duration;

use dash_kube::{PodRole, RoleLabeler};
use tokio::sync::watch;

/// The label a member should carry: primary only while it certainly holds
/// the key with a writable server, replica while it streams, none otherwise.
pub fn wanted(role: &str, holds_key: bool, streaming: bool) -> Option<PodRole> {
    match role {
        "primary" if holds_key => Some(PodRole::Primary),
        "replica" if streaming => Some(PodRole::Replica),
        _ => None,
    }
}

/// Starts the labelling task for `pod` in `namespace`; send wanted roles
/// into the returned channel.
pub fn start(namespace: String, pod: String) -> watch::Sender<Option<PodRole>> {
    let (tx, mut rx) = watch::channel(None);
    tokio::spawn(async move {
        let mut labeler = loop {
            match RoleLabeler::in_cluster(&namespace, &pod).await {
                Ok(l) => break l,
                Err(e) => {
                    tracing::warn!(error = %e, "Kubernetes client not ready; retrying");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        };
        loop {
            let want = *rx.borrow_and_update();
            let result = match want {
                Some(role) => labeler.set_role(role).await,
                None => labeler.clear().await,
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, "pod role label not updated; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    });
    tx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_certain_leader_is_labelled_primary() {
        assert_eq!(wanted("primary", true, false), Some(PodRole::Primary));
        assert_eq!(wanted("primary", false, false), None);
        assert_eq!(wanted("replica", false, true), Some(PodRole::Replica));
        assert_eq!(wanted("replica", false, false), None);
        assert_eq!(wanted("fenced", false, false), None);
    }
}
