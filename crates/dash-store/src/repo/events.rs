//! The event log: read after a cursor, in commit-safe order. Events of a
//! transaction still running are held back until it ends, so a reader that
//! resumes from a cursor never misses an event that commits late.

use dash_core::ValidationError;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;
use uuid::Uuid;

use super::col;
use crate::error::StoreError;
use crate::model::Event;
use crate::pool::Db;

/// A position in the log: (transaction id, event id), shown as `txid-id`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct EventCursor {
    pub txid: i64,
    pub id: i64,
}

impl EventCursor {
    /// The start of the log.
    pub const START: EventCursor = EventCursor { txid: 0, id: 0 };

    pub fn parse(s: &str) -> Result<EventCursor, StoreError> {
        let bad = || {
            ValidationError::new(
                "after",
                "is not an event cursor; pass an event's `cursor` unchanged",
            )
        };
        let s = s.trim();
        if s.is_empty() || s == "0" {
            return Ok(EventCursor::START);
        }
        let (t, i) = s.split_once('-').ok_or_else(bad)?;
        let txid = t.parse::<i64>().ok().filter(|v| *v >= 0).ok_or_else(bad)?;
        let id = i.parse::<i64>().ok().filter(|v| *v >= 0).ok_or_else(bad)?;
        Ok(EventCursor { txid, id })
    }

    pub fn encode(&self) -> String {
        format!("{}-{}", self.txid, self.id)
    }
}

const EVENT_COLUMNS: &str = "id, txid, kind, swarm_id, agent_id, data, created_at";

/// Holds back the events of transactions still running (see the module docs).
const VISIBLE: &str = "txid < pg_snapshot_xmin(pg_current_snapshot())::text::bigint";

fn event_from_row(r: &Row) -> Result<Event, StoreError> {
    let txid: i64 = col(r, 1)?;
    let id: i64 = col(r, 0)?;
    Ok(Event {
        id,
        cursor: EventCursor { txid, id }.encode(),
        kind: col(r, 2)?,
        swarm_id: col(r, 3)?,
        agent_id: col(r, 4)?,
        data: col(r, 5)?,
        created_at: col(r, 6)?,
    })
}

impl Db {
    /// The visible events of `swarm_id` and of `agent_id` (`None`: any) that
    /// also meet `condition`, whose parameters are `$4` on, in `order`, at
    /// most `limit`.
    async fn select_events(
        &self,
        condition: &str,
        order: &str,
        (limit, swarm_id, agent_id): (i64, Option<Uuid>, Option<Uuid>),
        more: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Event>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events
             WHERE {condition} AND {VISIBLE}
               AND ($1::uuid IS NULL OR swarm_id = $1) AND ($2::uuid IS NULL OR agent_id = $2)
             ORDER BY {order} LIMIT $3"
        );
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&swarm_id, &agent_id, &limit];
        params.extend_from_slice(more);
        let rows = self.conn().await?.query(&sql, &params).await?;
        rows.iter().map(event_from_row).collect()
    }

    /// Events after `after`, oldest first, at most `limit`, optionally for one swarm or agent.
    pub async fn list_events(
        &self,
        after: EventCursor,
        limit: i64,
        swarm_id: Option<Uuid>,
        agent_id: Option<Uuid>,
    ) -> Result<Vec<Event>, StoreError> {
        let filter = (limit, swarm_id, agent_id);
        let more: [&(dyn ToSql + Sync); 2] = [&after.txid, &after.id];
        self.select_events("(txid, id) > ($4, $5)", "txid, id", filter, &more)
            .await
    }

    /// The newest `limit` events, in log order (for "what just happened" views).
    pub async fn list_newest_events(
        &self,
        limit: i64,
        swarm_id: Option<Uuid>,
        agent_id: Option<Uuid>,
    ) -> Result<Vec<Event>, StoreError> {
        let filter = (limit, swarm_id, agent_id);
        let mut events = self
            .select_events("TRUE", "txid DESC, id DESC", filter, &[])
            .await?;
        events.reverse();
        Ok(events)
    }

    /// The cursor just after the newest visible event (where a live stream starts).
    pub async fn latest_event_cursor(&self) -> Result<EventCursor, StoreError> {
        let sql = format!(
            "SELECT txid, id FROM events WHERE {VISIBLE} ORDER BY txid DESC, id DESC LIMIT 1"
        );
        let row = self.conn().await?.query_opt(&sql, &[]).await?;
        Ok(row.map_or(EventCursor::START, |r| EventCursor {
            txid: r.get(0),
            id: r.get(1),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_roundtrip_and_garbage() {
        let c = EventCursor { txid: 745, id: 12 };
        assert_eq!(EventCursor::parse(&c.encode()).unwrap(), c);
        assert_eq!(EventCursor::parse("").unwrap(), EventCursor::START);
        for bad in ["x", "1-", "-1-2", "1-2-3", "a-b"] {
            assert!(EventCursor::parse(bad).is_err(), "{bad}");
        }
        assert!(EventCursor { txid: 2, id: 1 } > EventCursor { txid: 1, id: 99 });
    }
}
