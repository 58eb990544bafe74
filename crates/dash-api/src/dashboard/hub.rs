//! The dashboard's live state in one API process: the pool's reachability,
//! watched ten times a second from the pool's own state (no query), and a
//! snapshot rebuilt every half second while someone watches the dashboard
//! (an open stream, or a `GET /dashboard` in the last half minute). The
//! recent events come from the process's event feed.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dash_core::AgentStatus;
use dash_store::model::Order;
use dash_store::EventCursor;
use tokio::sync::{broadcast, watch, Notify};

use super::cluster::ClusterSource;
use super::snapshot::{Body, DatabaseState, EventRow, Snapshot, SwarmRow};
use crate::feed::{FeedMsg, Subscription};
use crate::state::AppState;

/// How often the pool's reachability is looked at.
const WATCH_EVERY: Duration = Duration::from_millis(100);
/// How often the snapshot is rebuilt while someone watches.
const REFRESH_EVERY: Duration = Duration::from_millis(500);
/// A `GET /dashboard` keeps the snapshot fresh this long.
const WANTED_FOR: Duration = Duration::from_secs(30);
/// Bound on each read of swarms and agents.
const READ_TIMEOUT: Duration = Duration::from_secs(1);
/// Swarms shown, newest first.
pub const SWARMS_SHOWN: i64 = 50;
/// Events shown, newest first.
pub const EVENTS_SHOWN: usize = 20;

/// Shared by the refresh task and the routes.
pub struct Dashboard {
    snapshot: watch::Sender<Arc<Snapshot>>,
    database: watch::Sender<DatabaseState>,
    /// Unix ms until which a `GET` asked for fresh snapshots.
    wanted_until: AtomicI64,
    refreshed: Notify,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Default for Dashboard {
    fn default() -> Self {
        Dashboard {
            snapshot: watch::Sender::new(Arc::default()),
            database: watch::Sender::new(DatabaseState::default()),
            wanted_until: AtomicI64::new(0),
            refreshed: Notify::new(),
        }
    }
}

impl Dashboard {
    /// Snapshots as they change (the first is the current one).
    pub fn snapshots(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.snapshot.subscribe()
    }

    /// The pool's reachability as it flips.
    pub fn database(&self) -> watch::Receiver<DatabaseState> {
        self.database.subscribe()
    }

    /// A snapshot at most [`REFRESH_EVERY`] (and a little) old; waits up to
    /// `limit` for one when nobody has been watching.
    pub async fn fresh(&self, limit: Duration) -> Arc<Snapshot> {
        let deadline = now_ms() + WANTED_FOR.as_millis() as i64;
        self.wanted_until.fetch_max(deadline, Ordering::Relaxed);
        let stale = |s: &Snapshot| now_ms() - s.at_ms > 2 * REFRESH_EVERY.as_millis() as i64;
        if stale(&self.snapshot.borrow()) {
            let _ = tokio::time::timeout(limit, self.refreshed.notified()).await;
        }
        self.snapshot.borrow().clone()
    }

    fn watched(&self) -> bool {
        self.snapshot.receiver_count() > 0 || now_ms() < self.wanted_until.load(Ordering::Relaxed)
    }

    fn publish(&self, body: Body) {
        let at_ms = now_ms();
        self.snapshot.send_if_modified(|cur| {
            let changed = cur.body != body;
            // The time moves on every refresh; receivers hear only of changes.
            *cur = Arc::new(Snapshot { at_ms, body });
            changed
        });
        self.refreshed.notify_waiters();
    }
}

/// The pool's state now, read from the pool itself.
pub fn database_state(db: &dash_store::Db) -> DatabaseState {
    let reachable = db.reachable();
    DatabaseState {
        reachable,
        primary: db.primary().map(|p| p.to_string()),
        error: (!reachable).then(|| {
            db.last_error()
                .unwrap_or_else(|| "no primary found yet".into())
        }),
    }
}

/// Runs until the process stops: watches the pool, and rebuilds the
/// snapshot while someone watches. The two loops are apart so that a slow
/// read never delays the `database` event.
pub async fn run(state: AppState) {
    tokio::join!(watch_pool(&state), refresh(&state));
}

async fn watch_pool(state: &AppState) {
    let mut tick = tokio::time::interval(WATCH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let db = database_state(&state.db);
        state.dashboard.database.send_if_modified(|cur| {
            let flipped = cur.reachable != db.reachable || cur.primary != db.primary;
            *cur = db;
            flipped
        });
    }
}

async fn refresh(state: &AppState) {
    let hub = &state.dashboard;
    let mut cluster = ClusterSource::new(&state.settings.etcd, &state.settings.cluster);
    let mut recent = Recent::default();
    let mut last = Body::default();
    let mut database = hub.database();
    let mut tick = tokio::time::interval(WATCH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut since_refresh = REFRESH_EVERY;
    loop {
        tick.tick().await;
        since_refresh += WATCH_EVERY;
        if !hub.watched() {
            recent.stop();
            continue;
        }
        let flipped = database.has_changed().unwrap_or(false);
        if since_refresh < REFRESH_EVERY && !flipped && !recent.has_news() {
            continue;
        }
        since_refresh = Duration::ZERO;
        database.mark_unchanged();
        let db = database_state(&state.db);
        let data = match db.reachable {
            true => read_data(state, &mut recent, last).await,
            // Keep the last values read rather than wait on a database that is away.
            false => Body {
                data_error: Some("the database is unreachable".into()),
                ..last
            },
        };
        last = Body {
            database: db,
            cluster: cluster.read(&state.db).await,
            ..data
        };
        hub.publish(last.clone());
    }
}

/// Swarms, agent counts and events; what cannot be read keeps its last value.
async fn read_data(state: &AppState, recent: &mut Recent, last: Body) -> Body {
    let mut body = last;
    body.data_error = None;
    let db = &state.db;
    let swarms = tokio::time::timeout(
        READ_TIMEOUT,
        db.list_swarms(None, SWARMS_SHOWN, None, Order::Desc),
    );
    match swarms.await {
        Ok(Ok(page)) => body.swarms = page.items.iter().map(SwarmRow::from).collect(),
        Ok(Err(e)) => body.data_error = Some(e.to_string()),
        Err(_) => body.data_error = Some(format!("no answer within {READ_TIMEOUT:?}")),
    }
    if body.data_error.is_none() {
        if let Ok(Ok(counts)) = tokio::time::timeout(READ_TIMEOUT, db.count_agents()).await {
            body.agents = (AgentStatus::ALL.iter())
                .map(|s| (s.as_str().to_string(), 0))
                .collect();
            body.agents.extend(counts);
        }
        recent.update(state).await;
    }
    body.events = recent.events.iter().cloned().collect();
    body
}

/// The newest events: read from the database when watching starts (and
/// after a gap in the feed), then from the event feed's batches.
#[derive(Default)]
struct Recent {
    sub: Option<Subscription>,
    /// Newest first.
    events: VecDeque<EventRow>,
    seeded: bool,
    /// Where the last batch seen ended: the next must start there.
    last_to: Option<EventCursor>,
}

impl Recent {
    fn stop(&mut self) {
        self.sub = None;
        self.seeded = false;
    }

    /// Whether the feed has a batch waiting.
    fn has_news(&self) -> bool {
        self.sub.as_ref().is_some_and(|s| !s.rx.is_empty())
    }

    async fn update(&mut self, state: &AppState) {
        if self.sub.is_none() {
            let sub = state.events.subscribe();
            self.last_to = sub.head;
            self.sub = Some(sub);
        }
        while let Some(sub) = self.sub.as_mut() {
            match sub.rx.try_recv() {
                Ok(FeedMsg::Batch(b)) => {
                    // A batch that does not follow the last one: events were
                    // missed (the feed started or restarted); read them again.
                    if self.last_to != Some(b.from) {
                        self.seeded = false;
                    }
                    self.last_to = Some(b.to);
                    for e in b.events.iter().filter_map(|e| EventRow::from_json(&e.json)) {
                        if self.events.iter().all(|x| x.cursor != e.cursor) {
                            self.events.push_front(e);
                        }
                    }
                }
                Ok(FeedMsg::Unavailable(_)) => {}
                Err(broadcast::error::TryRecvError::Lagged(_)) => self.seeded = false,
                Err(_) => break,
            }
        }
        if !self.seeded {
            let newest = state.db.list_newest_events(EVENTS_SHOWN as i64, None, None);
            if let Ok(Ok(items)) = tokio::time::timeout(READ_TIMEOUT, newest).await {
                // `items` is in log order: the newest last.
                self.events = items.iter().rev().map(EventRow::from).collect();
                self.seeded = true;
            }
        }
        self.events.truncate(EVENTS_SHOWN);
    }
}
