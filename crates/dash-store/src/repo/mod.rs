//! Queries: each public operation is one short transaction on the primary,
//! with its events appended in the same transaction.

mod agents;
mod events;
mod idempotency;
mod swarms;

use dash_core::{EventKind, ValidationError};
use serde_json::Value;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::error::StoreError;
use crate::model::{Created, Order, Page};
use crate::pool::{Db, Tx};

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

/// Where a keyset page starts and which way it runs: the comparison and
/// direction to put in the query, and the cursor's key (or NULLs for the
/// first page).
pub(crate) struct Keyset {
    pub cmp: &'static str,
    pub dir: &'static str,
    pub t: Option<chrono::DateTime<chrono::Utc>>,
    pub id: Option<Uuid>,
}

impl Keyset {
    pub(crate) fn new(cursor: Option<&str>, order: Order) -> Result<Keyset, StoreError> {
        let after = decode_time_cursor(cursor)?;
        let (cmp, dir) = match order {
            Order::Asc => (">", "ASC"),
            Order::Desc => ("<", "DESC"),
        };
        Ok(Keyset {
            cmp,
            dir,
            t: after.map(|a| a.0),
            id: after.map(|a| a.1),
        })
    }
}

/// A page from `limit + 1` fetched items: the extra one only says whether
/// there is a next page, whose cursor is the last kept item's key.
fn page<T>(
    mut items: Vec<T>,
    limit: i64,
    key: impl Fn(&T) -> (chrono::DateTime<chrono::Utc>, Uuid),
) -> Page<T> {
    let next_cursor = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(|i| {
            let (t, id) = key(i);
            encode_time_cursor(t, id)
        })
    } else {
        None
    };
    Page { items, next_cursor }
}

pub(crate) fn not_found(entity: &'static str, id: Uuid) -> StoreError {
    StoreError::NotFound {
        entity,
        id: id.to_string(),
    }
}

/// The one row `sql` finds for `id` (its `$1`), or `NotFound` for `entity`.
pub(crate) async fn lock_by_id<T>(
    tx: &mut Tx<'_>,
    sql: &str,
    id: Uuid,
    entity: &'static str,
    from_row: fn(&Row) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let row = tx
        .query_opt(sql, &[&id])
        .await?
        .ok_or_else(|| not_found(entity, id))?;
    from_row(&row)
}

impl Db {
    /// The one row `sql` finds for `id` (its `$1`), or `NotFound` for `entity`.
    pub(crate) async fn get_by_id<T>(
        &self,
        sql: &str,
        id: Uuid,
        entity: &'static str,
        from_row: fn(&Row) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let row = self
            .conn()
            .await?
            .query_opt(sql, &[&id])
            .await?
            .ok_or_else(|| not_found(entity, id))?;
        from_row(&row)
    }

    /// One keyset page: `sql` fetches `limit + 1` rows, `key` is an item's
    /// (time, id) sort key.
    pub(crate) async fn list_page<T>(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        limit: i64,
        from_row: fn(&Row) -> Result<T, StoreError>,
        key: impl Fn(&T) -> (chrono::DateTime<chrono::Utc>, Uuid),
    ) -> Result<Page<T>, StoreError> {
        let rows = self.conn().await?.query(sql, params).await?;
        let items = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
        Ok(page(items, limit, key))
    }
}

/// Starts a create that carries an `Idempotency-Key`: claims the key, or,
/// when it was used before, returns the answer stored for it to replay.
pub(crate) async fn replay(
    tx: &mut Tx<'_>,
    idem: Option<&IdemRequest>,
) -> Result<Option<Created>, StoreError> {
    let Some(req) = idem else {
        return Ok(None);
    };
    Ok(idempotency::claim(tx, req)
        .await?
        .map(|(status, body)| Created {
            status,
            body,
            replayed: true,
        }))
}

/// Ends a create: stores the response for its `Idempotency-Key` in the same
/// transaction, commits, and returns it.
pub(crate) async fn finish_create(
    mut tx: Tx<'_>,
    idem: Option<&IdemRequest>,
    status: u16,
    body: Value,
) -> Result<Created, StoreError> {
    if let Some(req) = idem {
        idempotency::record(&mut tx, req, status, &body).await?;
    }
    tx.commit().await?;
    Ok(Created {
        status,
        body,
        replayed: false,
    })
}
