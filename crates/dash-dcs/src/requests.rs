//! Operator requests (the `request` key): one at a time, each under a lease
//! of its own, so that a request outlives neither its command's wait nor
//! a command that was killed while waiting. An agent that acts on a request
//! clears it; the command withdraws one that nobody acted on.

use std::time::Duration;

use etcd_client::{Compare, CompareOp, PutOptions, Txn, TxnOp};

use crate::keyspace::to_json;
use crate::{Dcs, DcsError, Request};

impl Dcs {
    /// Files an operator request unless one is pending. etcd deletes it
    /// after `lifetime` (whole seconds, at least etcd's minimum TTL) if
    /// nobody cleared it before. `false`: another request is pending.
    pub async fn file_request(&self, r: &Request, lifetime: Duration) -> Result<bool, DcsError> {
        let lease = self.grant(lifetime).await?;
        let key = self.key("request");
        let filed = self
            .txn(
                Txn::new()
                    .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
                    .and_then([TxnOp::put(
                        key,
                        to_json(r),
                        Some(PutOptions::new().with_lease(lease)),
                    )]),
            )
            .await;
        if !matches!(filed, Ok(true)) {
            let _ = self.revoke(lease).await;
        }
        filed
    }

    /// Removes the request read at `revision` (done, refused or withdrawn).
    pub async fn clear_request(&self, revision: i64) -> Result<bool, DcsError> {
        let key = self.key("request");
        self.txn(
            Txn::new()
                .when([Compare::mod_revision(
                    key.clone(),
                    CompareOp::Equal,
                    revision,
                )])
                .and_then([TxnOp::delete(key, None)]),
        )
        .await
    }
}
