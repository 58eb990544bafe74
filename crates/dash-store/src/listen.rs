//! LISTEN/NOTIFY: one dedicated connection per API process listens on
//! `dash_events` on whichever node is the primary and wakes the process's
//! one reader of the event log (`dash-api`'s `feed.rs`), which fans events
//! out to every stream. Wake-ups carry no data: the log is read from a
//! cursor, so a notification lost during a failover loses nothing.

use std::time::Duration;

use futures::StreamExt;
use tokio::sync::watch;
use tokio_postgres::{AsyncMessage, NoTls};

use crate::config::DbSettings;
use crate::pool::{driver_config, find_primary};

/// Wakes the reader of the event log. The value counts wake-ups; only changes matter.
#[derive(Clone)]
pub struct EventBell {
    rx: watch::Receiver<u64>,
}

impl EventBell {
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.rx.clone()
    }
}

/// Starts the listener of `dash_events`; it runs until `shutdown` resolves.
pub fn spawn_listener(
    settings: DbSettings,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> EventBell {
    spawn_channel_listener(settings, "dash_events", shutdown)
}

/// Starts a listener of `channel` (also rung at every reconnect, when
/// notifications may have been missed); it runs until `shutdown` resolves.
pub fn spawn_channel_listener(
    settings: DbSettings,
    channel: &'static str,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> EventBell {
    let (tx, rx) = watch::channel(0u64);
    tokio::spawn(async move {
        tokio::select! {
            _ = shutdown => {}
            _ = listen_forever(settings, channel, tx) => {}
        }
    });
    EventBell { rx }
}

async fn listen_forever(settings: DbSettings, channel: &'static str, tx: watch::Sender<u64>) {
    let mut backoff = Duration::from_millis(50);
    loop {
        match listen_once(&settings, channel, &tx).await {
            Ok(()) => backoff = Duration::from_millis(50),
            Err(e) => tracing::debug!(error = %e, "event listener disconnected; reconnecting"),
        }
        // Streams catch up from their cursors after a reconnect.
        tx.send_modify(|n| *n += 1);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}

async fn listen_once(
    settings: &DbSettings,
    channel: &str,
    tx: &watch::Sender<u64>,
) -> Result<(), String> {
    let found = find_primary(settings, None, |_| {})
        .await
        .map_err(|e| crate::pool::describe(&e))?;
    drop(found.client);
    let host = &found.host;
    let (client, mut conn) = tokio::time::timeout(
        settings.connect_timeout,
        driver_config(settings, host).connect(NoTls),
    )
    .await
    .map_err(|_| "connect timed out".to_string())?
    .map_err(|e| e.to_string())?;
    let mut messages = futures::stream::poll_fn(move |cx| conn.poll_message(cx));
    let listen_sql = format!("LISTEN {channel}");
    let listen = client.batch_execute(&listen_sql);
    tokio::pin!(listen);
    // Drive the connection while LISTEN runs.
    loop {
        tokio::select! {
            r = &mut listen => { r.map_err(|e| e.to_string())?; break; }
            m = messages.next() => match m {
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.to_string()),
                None => return Err("connection closed".into()),
            }
        }
    }
    tx.send_modify(|n| *n += 1);
    // A hung or demoted node sends nothing: probe it under a deadline, while
    // the connection keeps being driven by the message stream.
    let mut check = tokio::time::interval(Duration::from_millis(500));
    let mut probe: Option<futures::future::BoxFuture<'_, _>> = None;
    let mut probe_deadline = tokio::time::Instant::now();
    loop {
        tokio::select! {
            m = messages.next() => match m {
                Some(Ok(AsyncMessage::Notification(_))) => tx.send_modify(|n| *n += 1),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.to_string()),
                None => return Err("connection closed".into()),
            },
            _ = check.tick(), if probe.is_none() => {
                probe = Some(Box::pin(client.query_one("SELECT pg_is_in_recovery()", &[])));
                probe_deadline = tokio::time::Instant::now() + settings.connect_timeout;
            }
            r = async { probe.as_mut().expect("guarded").await }, if probe.is_some() => {
                probe = None;
                match r {
                    Ok(row) if !row.get::<_, bool>(0) => {}
                    Ok(_) => return Err("node became a standby".into()),
                    Err(e) => return Err(e.to_string()),
                }
            }
            _ = tokio::time::sleep_until(probe_deadline), if probe.is_some() => {
                return Err("probe timed out".into());
            }
        }
    }
}
