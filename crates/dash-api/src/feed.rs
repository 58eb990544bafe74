//! One reader of the event log per API process, fanned out in memory to every
//! live event stream. The reader wakes on LISTEN/NOTIFY (and once a second,
//! for events held back behind a long transaction), reads the new events once
//! from its head cursor, and broadcasts them as a batch that says which span
//! of the log it covers. A stream filters batches for its own subscription and
//! reads the database itself only when it connects or finds a gap (it fell
//! behind, or the reader restarted): the database load of idle streams does
//! not grow with their number.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dash_store::listen::EventBell;
use dash_store::{Db, EventCursor};
use tokio::sync::{broadcast, watch, OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

/// The most events one read of the log takes; a fuller log is read in turns.
pub const READ_LIMIT: i64 = 500;
/// How often the log is read without a notification.
const READ_EVERY: Duration = Duration::from_secs(1);
/// Batches a slow stream may lag before it catches up from the database.
const BACKLOG: usize = 256;

/// One event as every stream sends it: serialized once for all of them.
#[derive(Debug)]
pub struct FeedEvent {
    pub cursor: EventCursor,
    pub kind: String,
    pub swarm_id: Option<Uuid>,
    pub agent_id: Option<Uuid>,
    /// The event's JSON, the SSE `data` line.
    pub json: String,
}

impl FeedEvent {
    pub fn from_event(e: &dash_store::model::Event) -> FeedEvent {
        FeedEvent {
            cursor: EventCursor::parse(&e.cursor).unwrap_or_default(),
            kind: e.kind.clone(),
            swarm_id: e.swarm_id,
            agent_id: e.agent_id,
            json: serde_json::to_string(e).unwrap_or_default(),
        }
    }

    /// True when a stream filtered by `swarm_id` and `agent_id` wants it.
    pub fn matches(&self, swarm_id: Option<Uuid>, agent_id: Option<Uuid>) -> bool {
        swarm_id.is_none_or(|s| self.swarm_id == Some(s))
            && agent_id.is_none_or(|a| self.agent_id == Some(a))
    }
}

/// Every visible event after `from` up to and including `to`, in log order.
#[derive(Debug)]
pub struct Batch {
    pub from: EventCursor,
    pub to: EventCursor,
    pub events: Vec<FeedEvent>,
}

#[derive(Debug, Clone)]
pub enum FeedMsg {
    Batch(Arc<Batch>),
    /// The log could not be read (the database is away): tell the clients.
    Unavailable(Arc<String>),
}

/// A stream's subscription: the feed's head when it subscribed (every event
/// up to it was visible before the subscription) and the batches after it.
pub struct Subscription {
    pub head: Option<EventCursor>,
    pub rx: broadcast::Receiver<FeedMsg>,
}

/// The fan-out hub of one API process.
pub struct EventHub {
    tx: broadcast::Sender<FeedMsg>,
    /// Where the next read starts; `None` until the first read (and while no
    /// stream listens: nobody needs the feed then).
    head: Mutex<Option<EventCursor>>,
    streams: Arc<Semaphore>,
    max_streams: usize,
}

impl EventHub {
    pub fn new(max_streams: usize) -> Arc<EventHub> {
        let (tx, _) = broadcast::channel(BACKLOG);
        Arc::new(EventHub {
            tx,
            head: Mutex::new(None),
            streams: Arc::new(Semaphore::new(max_streams)),
            max_streams,
        })
    }

    /// A slot for one more stream, or `None` at the cap.
    pub fn admit(&self) -> Option<OwnedSemaphorePermit> {
        self.streams.clone().try_acquire_owned().ok()
    }

    /// Streams open now.
    pub fn open_streams(&self) -> usize {
        self.max_streams - self.streams.available_permits()
    }

    pub fn max_streams(&self) -> usize {
        self.max_streams
    }

    pub fn subscribe(&self) -> Subscription {
        let head = self.head.lock().unwrap_or_else(|p| p.into_inner());
        Subscription {
            head: *head,
            rx: self.tx.subscribe(),
        }
    }

    fn head(&self) -> Option<EventCursor> {
        *self.head.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_head(&self, to: Option<EventCursor>) {
        *self.head.lock().unwrap_or_else(|p| p.into_inner()) = to;
    }

    /// Sends a batch and moves the head, as one step for [`Self::subscribe`].
    fn publish(&self, batch: Batch) {
        let mut head = self.head.lock().unwrap_or_else(|p| p.into_inner());
        *head = Some(batch.to);
        let _ = self.tx.send(FeedMsg::Batch(Arc::new(batch)));
    }

    fn unavailable(&self, e: &dash_store::StoreError) {
        let _ = self.tx.send(FeedMsg::Unavailable(Arc::new(e.to_string())));
    }

    /// Reads what is new after the head and broadcasts it; after a failed
    /// read (`recovering`) an empty batch tells lagging streams to catch up
    /// now. Returns whether the log could be read.
    async fn read_new(&self, db: &Db, recovering: bool) -> bool {
        let mut head = match self.head() {
            Some(h) => h,
            None => match db.latest_event_cursor().await {
                Ok(c) => {
                    // Streams that subscribed before the feed had a head
                    // catch up from their own cursors on this empty batch.
                    self.publish(Batch {
                        from: c,
                        to: c,
                        events: Vec::new(),
                    });
                    c
                }
                Err(e) => {
                    self.unavailable(&e);
                    return false;
                }
            },
        };
        loop {
            match db.list_events(head, READ_LIMIT, None, None).await {
                Ok(events) if events.is_empty() => {
                    if recovering {
                        self.publish(Batch {
                            from: head,
                            to: head,
                            events: Vec::new(),
                        });
                    }
                    return true;
                }
                Ok(events) => {
                    let full = events.len() as i64 == READ_LIMIT;
                    let events: Vec<_> = events.iter().map(FeedEvent::from_event).collect();
                    let to = events.last().map_or(head, |e| e.cursor);
                    self.publish(Batch {
                        from: head,
                        to,
                        events,
                    });
                    head = to;
                    if !full {
                        return true;
                    }
                }
                Err(e) => {
                    self.unavailable(&e);
                    return false;
                }
            }
        }
    }
}

/// The reader task: runs until `stop` turns true.
pub async fn run(hub: Arc<EventHub>, db: Db, bell: EventBell, mut stop: watch::Receiver<bool>) {
    let mut bell = bell.subscribe();
    let mut bell_alive = true;
    let mut failing = false;
    let mut tick = tokio::time::interval(READ_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            r = bell.changed(), if bell_alive => bell_alive = r.is_ok(),
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        if hub.tx.receiver_count() == 0 {
            // Nobody listens: forget the head rather than read for no one.
            hub.set_head(None);
            continue;
        }
        failing = !hub.read_new(&db, failing).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(swarm: Option<Uuid>, agent: Option<Uuid>) -> FeedEvent {
        FeedEvent {
            cursor: EventCursor { txid: 1, id: 1 },
            kind: "swarm.created".into(),
            swarm_id: swarm,
            agent_id: agent,
            json: "{}".into(),
        }
    }

    #[test]
    fn filters_match_only_their_swarm_and_agent() {
        let (s, a, other) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let e = event(Some(s), Some(a));
        assert!(e.matches(None, None));
        assert!(e.matches(Some(s), None));
        assert!(e.matches(Some(s), Some(a)));
        assert!(!e.matches(Some(other), None));
        assert!(!e.matches(None, Some(other)));
        assert!(!event(None, None).matches(Some(s), None));
    }

    #[test]
    fn the_stream_cap_admits_up_to_its_size() {
        let hub = EventHub::new(2);
        let a = hub.admit().expect("first");
        let _b = hub.admit().expect("second");
        assert!(hub.admit().is_none());
        assert_eq!(hub.open_streams(), 2);
        drop(a);
        assert!(hub.admit().is_some());
    }
}
