//! The cluster-wide halt a physical restore works under (see [`Halt`]):
//! filed only when none stands, marked with the restored member together
//! with a sync record that makes that member the only one that may lead,
//! and lifted by the restore (or by an operator abandoning one).

use etcd_client::{Compare, CompareOp, Txn, TxnOp};

use crate::keyspace::to_json;
use crate::records::{Halt, SyncState};
use crate::{Dcs, DcsError};

impl Dcs {
    /// Files a halt unless one stands. `false`: another halt stands.
    pub async fn file_halt(&self, halt: &Halt) -> Result<bool, DcsError> {
        let key = self.key("halt");
        self.txn(
            Txn::new()
                .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
                .and_then([TxnOp::put(key, to_json(halt), None)]),
        )
        .await
    }

    /// Records that `member` holds the restored cluster, in one transaction
    /// with a sync record naming it leader with no standbys (so it alone may
    /// take the free key), provided the halt read at `revision` still stands
    /// and nobody holds the leader key. `false`: either changed.
    pub async fn mark_restored(
        &self,
        revision: i64,
        halt: &Halt,
        member: &str,
    ) -> Result<bool, DcsError> {
        let key = self.key("halt");
        let leader = self.key("leader");
        let marked = Halt {
            restored: Some(member.to_string()),
            ..halt.clone()
        };
        let sync = SyncState {
            leader: member.to_string(),
            standbys: Vec::new(),
        };
        self.txn(
            Txn::new()
                .when([
                    Compare::mod_revision(key.clone(), CompareOp::Equal, revision),
                    Compare::create_revision(leader, CompareOp::Equal, 0),
                ])
                .and_then([
                    TxnOp::put(key, to_json(&marked), None),
                    TxnOp::put(self.key("sync"), to_json(&sync), None),
                ]),
        )
        .await
    }

    /// Lifts the halt, whatever it says. `false`: none stood.
    pub async fn lift_halt(&self) -> Result<bool, DcsError> {
        let key = self.key("halt");
        self.txn(
            Txn::new()
                .when([Compare::create_revision(key.clone(), CompareOp::Greater, 0)])
                .and_then([TxnOp::delete(key, None)]),
        )
        .await
    }
}
