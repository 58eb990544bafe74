//! Hearing of a change of the leader key as it happens (an etcd watch), so
//! an agent that looks on a tick does not wait for its next tick to see the
//! key freed. Only a hint: every decision still reads the cluster at one
//! revision (`Dcs::view`). A watch that breaks is opened again on the next
//! member; meanwhile the tick goes on as before.

use std::time::Duration;

use etcd_client::EventType;
use tokio::sync::mpsc;

use crate::Dcs;

/// Pause before a broken watch is opened again (on the next member).
const REOPEN_AFTER: Duration = Duration::from_millis(200);

/// One change of the leader key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaderChange {
    /// The key was deleted: released, or its lease expired.
    Freed,
    /// The key was written; it names this member.
    Taken(String),
}

impl Dcs {
    /// Changes of the leader key from now on, until the receiver is dropped.
    /// Changes made while a broken watch is being opened again are missed.
    pub fn watch_leader(&self) -> mpsc::Receiver<LeaderChange> {
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(watch_loop(self.clone(), tx));
        rx
    }
}

async fn watch_loop(dcs: Dcs, tx: mpsc::Sender<LeaderChange>) {
    let key = dcs.key("leader");
    // Its own turn through the members: the lease keeper's is not moved.
    let mut member = 0usize;
    while !tx.is_closed() {
        let mut client = dcs.clients[member % dcs.clients.len()].watch_client();
        member += 1;
        let opened = tokio::time::timeout(dcs.timeout(), client.watch(key.clone(), None)).await;
        if let Ok(Ok(mut stream)) = opened {
            loop {
                let message = tokio::select! {
                    _ = tx.closed() => return,
                    m = stream.message() => m,
                };
                let Ok(Some(resp)) = message else { break };
                if resp.canceled() {
                    break;
                }
                for event in resp.events() {
                    let change = match event.event_type() {
                        EventType::Delete => LeaderChange::Freed,
                        EventType::Put => LeaderChange::Taken(
                            event
                                .kv()
                                .map(|kv| String::from_utf8_lossy(kv.value()).to_string())
                                .unwrap_or_default(),
                        ),
                    };
                    if tx.send(change).await.is_err() {
                        return;
                    }
                }
            }
        }
        tokio::time::sleep(REOPEN_AFTER).await;
    }
}
