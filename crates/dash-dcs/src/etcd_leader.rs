//! Where etcd's own leader runs, when etcd shares hosts with PostgreSQL.

use crate::{Dcs, DcsError};

impl Dcs {
    /// When etcd's own leader runs on one of `avoid` (etcd co-located with
    /// the primary or its synchronous standby), asks it to hand its
    /// leadership to a member elsewhere. A crash of the primary's host would
    /// otherwise take etcd's leader with it, and etcd's next leader extends
    /// every lease by a full TTL (the failover waits an election plus a
    /// TTL); a crash of the standby's host would stall the sync-set change
    /// that lets writes go on. Returns the new leader's id if it moved.
    pub async fn move_etcd_leader_off(&self, avoid: &[String]) -> Result<Option<u64>, DcsError> {
        for client in self.clients.iter() {
            let mut maintenance = client.maintenance_client();
            let Ok(Ok(status)) = tokio::time::timeout(self.timeout, maintenance.status()).await
            else {
                continue;
            };
            let me = status.header().map_or(0, |h| h.member_id());
            if status.leader() != me || me == 0 {
                continue;
            }
            // This client talks to etcd's leader.
            let members = tokio::time::timeout(self.timeout, client.cluster_client().member_list())
                .await
                .map_err(|_| DcsError::Timeout(self.timeout))??;
            let avoided = |urls: &[String]| {
                urls.iter()
                    .any(|u| avoid.iter().any(|h| url_host(u) == h.as_str()))
            };
            let leader_avoided = members
                .members()
                .iter()
                .any(|m| m.id() == me && avoided(m.client_urls()));
            if !leader_avoided {
                return Ok(None);
            }
            let Some(target) = members
                .members()
                .iter()
                .find(|m| m.id() != me && !avoided(m.client_urls()))
            else {
                return Ok(None);
            };
            tokio::time::timeout(self.timeout, maintenance.move_leader(target.id()))
                .await
                .map_err(|_| DcsError::Timeout(self.timeout))??;
            return Ok(Some(target.id()));
        }
        Ok(None)
    }

    /// The host of etcd's own leader and its raft term (a new term: a new
    /// leader, which extended every lease by its election timeout), as the
    /// first member that answers sees them.
    pub async fn etcd_leader(&self) -> Result<(String, u64), DcsError> {
        self.call(|c| async move {
            let status = c.maintenance_client().status().await?;
            let members = c.cluster_client().member_list().await?;
            let host = members
                .members()
                .iter()
                .find(|m| m.id() == status.leader())
                .and_then(|m| m.client_urls().first())
                .map(|u| url_host(u).to_string())
                .unwrap_or_default();
            Ok((host, status.raft_term()))
        })
        .await
    }
}

/// The host of `http://host:port`.
fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let hostport = rest.split('/').next().unwrap_or(rest);
    match hostport.rsplit_once(':') {
        Some((h, _)) => h.trim_start_matches('[').trim_end_matches(']'),
        None => hostport,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_host_of_a_client_url() {
        assert_eq!(super::url_host("http://198.18.0.2:2379"), "198.18.0.2");
        assert_eq!(super::url_host("http://[::1]:2379/"), "::1");
        assert_eq!(super::url_host("etcd-0.etcd:2379"), "etcd-0.etcd");
    }
}
