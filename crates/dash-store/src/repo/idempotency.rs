//! `Idempotency-Key`: the first request with a key stores its response in the
//! same transaction as its effect; a retry with the key gets that response
//! back and changes nothing. Concurrent duplicates wait on the key's row.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::StoreError;
use crate::pool::Tx;

/// A create request that carries an `Idempotency-Key`.
#[derive(Debug, Clone)]
pub struct IdemRequest {
    /// What the key is scoped to (route and caller), so keys never collide across routes.
    pub scope: String,
    /// The scope the same caller's keys had before scopes were keyed hashes:
    /// a key stored under it (less than a day ago) still replays.
    pub legacy_scope: Option<String>,
    pub key: String,
    /// Hash of the request body: reusing a key for a different request is refused.
    pub request_hash: String,
}

impl IdemRequest {
    pub fn new(scope: impl Into<String>, key: impl Into<String>, body: &[u8]) -> Self {
        IdemRequest {
            scope: scope.into(),
            legacy_scope: None,
            key: key.into(),
            request_hash: hex::encode(Sha256::digest(body)),
        }
    }

    /// Also honours a key stored under `legacy` before an upgrade.
    pub fn with_legacy_scope(self, legacy: impl Into<String>) -> Self {
        IdemRequest {
            legacy_scope: Some(legacy.into()),
            ..self
        }
    }
}

/// The stored answer for (`scope`, `key`), refused when the key was used
/// for a different request.
async fn stored(
    tx: &mut Tx<'_>,
    scope: &str,
    req: &IdemRequest,
) -> Result<Option<(u16, Value)>, StoreError> {
    let Some(row) = tx
        .query_opt(
            "SELECT request_hash, status, body FROM idempotency_keys WHERE scope = $1 AND key = $2",
            &[&scope, &req.key],
        )
        .await?
    else {
        return Ok(None);
    };
    let hash: String = super::col(&row, 0)?;
    if hash != req.request_hash {
        return Err(StoreError::Conflicting(
            "this Idempotency-Key was already used for a different request".into(),
        ));
    }
    let status: i32 = super::col(&row, 1)?;
    let body: Option<Value> = super::col(&row, 2)?;
    Ok(Some((status as u16, body.unwrap_or(Value::Null))))
}

/// Claims the key in this transaction. `Some((status, body))` means the key
/// was already used: replay that response and do nothing else.
pub(crate) async fn claim(
    tx: &mut Tx<'_>,
    req: &IdemRequest,
) -> Result<Option<(u16, Value)>, StoreError> {
    // No new key is ever stored under a legacy scope, so this lookup cannot
    // race with a concurrent claim.
    if let Some(legacy) = &req.legacy_scope {
        if let Some(found) = stored(tx, legacy, req).await? {
            return Ok(Some(found));
        }
    }
    let inserted = tx
        .execute(
            "INSERT INTO idempotency_keys (scope, key, request_hash) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
            &[&req.scope, &req.key, &req.request_hash],
        )
        .await?;
    if inserted == 1 {
        return Ok(None);
    }
    match stored(tx, &req.scope, req).await? {
        Some(found) => Ok(Some(found)),
        None => Err(StoreError::Conflicting(
            "this Idempotency-Key is being used by a request that has not finished".into(),
        )),
    }
}

/// Stores the response for a claimed key, in the same transaction as the effect.
pub(crate) async fn record(
    tx: &mut Tx<'_>,
    req: &IdemRequest,
    status: u16,
    body: &Value,
) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE idempotency_keys SET status = $3, body = $4 WHERE scope = $1 AND key = $2",
        &[&req.scope, &req.key, &(status as i32), body],
    )
    .await?;
    Ok(())
}

impl crate::pool::Db {
    /// Deletes keys older than `max_age`; returns how many.
    pub async fn prune_idempotency_keys(
        &self,
        max_age: std::time::Duration,
    ) -> Result<u64, StoreError> {
        let secs = max_age.as_secs_f64();
        self.conn()
            .await?
            .execute(
                "DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(secs => $1)",
                &[&secs],
            )
            .await
    }
}
