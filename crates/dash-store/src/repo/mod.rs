//! Queries: each public operation is one short transaction on the primary,
//! with its events appended in the same transaction.

mod agents;
mod events;
mod idempotency;
mod swarms;

use dash_core::{EventKind, ValidationError};
use serde_json::Value;
use uuid::Uuid;

use crate::error::StoreError;
use crate::pool::Tx;

pub use events::EventCursor;
pub use idempotency::IdemRequest;

/// Appends one event in the caller's transaction.
pub(crate) async fn emit(
    tx: &mut Tx<'_>,
    kind: EventKind,
    swarm_id: Option<Uuid>,
    agent_id: Option<Uuid>,
    data: Value,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO events (kind, swarm_id, agent_id, data) VALUES ($1, $2, $3, $4)",
        &[&kind.as_str(), &swarm_id, &agent_id, &data],
    )
    .await?;
    Ok(())
}

/// Decodes a list cursor whose key is an RFC 3339 timestamp.
pub(crate) fn decode_time_cursor(
    raw: Option<&str>,
) -> Result<Option<(chrono::DateTime<chrono::Utc>, Uuid)>, StoreError> {
    let Some(raw) = raw.filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let c = dash_core::Cursor::decode(raw)?;
    let t = chrono::DateTime::parse_from_rfc3339(&c.key)
        .map_err(|_| ValidationError::new("cursor", "is not a valid page cursor"))?;
    Ok(Some((t.with_timezone(&chrono::Utc), c.id)))
}

pub(crate) fn encode_time_cursor(t: chrono::DateTime<chrono::Utc>, id: Uuid) -> String {
    dash_core::Cursor::new(t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true), id).encode()
}

/// Refuses JSON that PostgreSQL's `jsonb` cannot store: a NUL character
/// (`\u0000`) in any string or key. Without this check it fails as a 500.
pub(crate) fn validate_json(field: &str, v: &Value) -> Result<(), ValidationError> {
    let bad = || ValidationError::new(field, "must not contain the NUL character (\\u0000)");
    match v {
        Value::String(s) if s.contains('\0') => Err(bad()),
        Value::Array(items) => items.iter().try_for_each(|i| validate_json(field, i)),
        Value::Object(map) => map.iter().try_for_each(|(k, i)| {
            if k.contains('\0') {
                return Err(bad());
            }
            validate_json(field, i)
        }),
        _ => Ok(()),
    }
}

/// Keeps a non-negative, finite amount, or says which field is wrong.
pub(crate) fn money(field: &str, v: Option<f64>) -> Result<f64, StoreError> {
    let v = v.unwrap_or(0.0);
    dash_core::validate_money(field, v)?;
    Ok(v)
}

/// The comparison and direction of a keyset page in `order`.
pub(crate) fn keyset(order: crate::model::Order) -> (&'static str, &'static str) {
    match order {
        crate::model::Order::Asc => (">", "ASC"),
        crate::model::Order::Desc => ("<", "DESC"),
    }
}

/// A page from `limit + 1` fetched items: the extra one only says whether
/// there is a next page, whose cursor is the last kept item's key.
pub(crate) fn page<T>(
    mut items: Vec<T>,
    limit: i64,
    key: impl Fn(&T) -> (chrono::DateTime<chrono::Utc>, Uuid),
) -> crate::model::Page<T> {
    let next_cursor = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(|i| {
            let (t, id) = key(i);
            encode_time_cursor(t, id)
        })
    } else {
        None
    };
    crate::model::Page { items, next_cursor }
}

/// Ends a create: stores the response for its `Idempotency-Key` in the same
/// transaction, commits, and returns it.
pub(crate) async fn finish_create(
    mut tx: Tx<'_>,
    idem: Option<&IdemRequest>,
    status: u16,
    body: Value,
) -> Result<crate::model::Created, StoreError> {
    if let Some(req) = idem {
        idempotency::record(&mut tx, req, status, &body).await?;
    }
    tx.commit().await?;
    Ok(crate::model::Created {
        status,
        body,
        replayed: false,
    })
}
