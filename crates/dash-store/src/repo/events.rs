//! The event log: read after a cursor, in commit-safe order. Events of a
//! transaction still running are held back until it ends, so a reader that
//! resumes from a cursor never misses an event that commits late.

use dash_core::ValidationError;
use tokio_postgres::Row;
use uuid::Uuid;

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

fn event_from_row(r: &Row) -> Event {
    let txid: i64 = r.get(1);
    let id: i64 = r.get(0);
    Event {
        id,
        cursor: EventCursor { txid, id }.encode(),
        kind: r.get(2),
        swarm_id: r.get(3),
        agent_id: r.get(4),
        data: r.get(5),
        created_at: r.get(6),
    }
}

impl Db {
    /// Events after `after`, oldest first, at most `limit`, optionally for one swarm or agent.
    pub async fn list_events(
        &self,
        after: EventCursor,
        limit: i64,
        swarm_id: Option<Uuid>,
        agent_id: Option<Uuid>,
    ) -> Result<Vec<Event>, StoreError> {
        let rows = self
            .conn()
            .await?
            .query(
                "SELECT id, txid, kind, swarm_id, agent_id, data, created_at FROM events
                 WHERE (txid, id) > ($1, $2)
                   AND txid < pg_snapshot_xmin(pg_current_snapshot())::text::bigint
                   AND ($3::uuid IS NULL OR swarm_id = $3)
                   AND ($4::uuid IS NULL OR agent_id = $4)
                 ORDER BY txid, id LIMIT $5",
                &[&after.txid, &after.id, &swarm_id, &agent_id, &limit],
            )
            .await?;
        Ok(rows.iter().map(event_from_row).collect())
    }

    /// The newest `limit` events, in log order (for "what just happened" views).
    pub async fn list_newest_events(
        &self,
        limit: i64,
        swarm_id: Option<Uuid>,
        agent_id: Option<Uuid>,
    ) -> Result<Vec<Event>, StoreError> {
        let rows = self
            .conn()
            .await?
            .query(
                "SELECT id, txid, kind, swarm_id, agent_id, data, created_at FROM events
                 WHERE txid < pg_snapshot_xmin(pg_current_snapshot())::text::bigint
                   AND ($1::uuid IS NULL OR swarm_id = $1)
                   AND ($2::uuid IS NULL OR agent_id = $2)
                 ORDER BY txid DESC, id DESC LIMIT $3",
                &[&swarm_id, &agent_id, &limit],
            )
            .await?;
        let mut events: Vec<Event> = rows.iter().map(event_from_row).collect();
        events.reverse();
        Ok(events)
    }

    /// The cursor just after the newest visible event (where a live stream starts).
    pub async fn latest_event_cursor(&self) -> Result<EventCursor, StoreError> {
        let row = self
            .conn()
            .await?
            .query_opt(
                "SELECT txid, id FROM events
                 WHERE txid < pg_snapshot_xmin(pg_current_snapshot())::text::bigint
                 ORDER BY txid DESC, id DESC LIMIT 1",
                &[],
            )
            .await?;
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
