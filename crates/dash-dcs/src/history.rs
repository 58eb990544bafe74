//! The recent history of HA decisions, kept in etcd so an incident's
//! timeline survives the database being down.

use etcd_client::{DeleteOptions, GetOptions, SortOrder, SortTarget};

use crate::keyspace::{parse, to_json};
use crate::{Dcs, DcsError, HistoryEntry};

/// How many history entries etcd keeps.
const HISTORY_KEEP: usize = 200;

impl Dcs {
    /// Appends a decision to the history, keeping the newest entries.
    pub async fn record(&self, e: &HistoryEntry) -> Result<(), DcsError> {
        let key = self.key(&format!("history/{:016}-{}", e.at_ms.max(0), e.member));
        self.put(key, to_json(e), None).await?;
        let prefix = self.key("history/");
        let keys = self
            .call(|c| {
                let prefix = prefix.clone();
                let opts = GetOptions::new()
                    .with_prefix()
                    .with_keys_only()
                    .with_sort(SortTarget::Key, SortOrder::Descend);
                async move { c.kv_client().get(prefix, Some(opts)).await }
            })
            .await?;
        for old in keys.kvs().iter().skip(HISTORY_KEEP) {
            let key = old.key().to_vec();
            self.call(|c| {
                let key = key.clone();
                async move { c.kv_client().delete(key, None::<DeleteOptions>).await }
            })
            .await?;
        }
        Ok(())
    }

    /// The recorded decisions, oldest first.
    pub async fn history(&self) -> Result<Vec<HistoryEntry>, DcsError> {
        let prefix = self.key("history/");
        let resp = self
            .call(|c| {
                let prefix = prefix.clone();
                async move {
                    c.kv_client()
                        .get(prefix, Some(GetOptions::new().with_prefix()))
                        .await
                }
            })
            .await?;
        resp.kvs()
            .iter()
            .map(|item| parse(&String::from_utf8_lossy(item.key()), item.value()))
            .collect()
    }
}
