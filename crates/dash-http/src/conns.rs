//! The open connections of one listener: how many, which are idle, and for
//! how long. A connection is idle while no request of it is in flight (its
//! response body included); its idle clock runs from accept or from the end
//! of its last response, and its header clock from the first byte of a new
//! request head. At the cap the oldest idle connection is shed.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

/// A new connection is not shed for this long: its task gets to read the
/// request it came with, and clients that reconnect at once cannot make the
/// server close connections faster than one slot's worth a second.
const SHED_GRACE: Duration = Duration::from_secs(1);

/// What one connection's task and its requests share.
pub struct ConnInfo {
    epoch: Instant,
    /// Milliseconds after `epoch` when it was accepted.
    admitted: u64,
    in_flight: AtomicUsize,
    /// Milliseconds after `epoch` when it last became idle.
    idle_since: AtomicU64,
    /// Milliseconds after `epoch` (plus one, 0 = none) of the first byte read while idle.
    head_started: AtomicU64,
    /// Notified when the registry sheds this connection.
    pub shed: Notify,
    /// Notified when the header clock starts.
    pub clock: Notify,
}

impl ConnInfo {
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// When the connection must close unless something happens first.
    pub fn deadline(&self, header_timeout: Duration, idle_timeout: Duration) -> Instant {
        let ms = |t: u64| self.epoch + Duration::from_millis(t);
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return Instant::now() + idle_timeout;
        }
        match self.head_started.load(Ordering::Acquire) {
            0 => ms(self.idle_since.load(Ordering::Acquire)) + idle_timeout,
            t => ms(t - 1) + header_timeout,
        }
    }

    fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
    }
}

/// Marks a request in flight until dropped (with its response body).
pub struct Busy(Arc<ConnInfo>);

impl Busy {
    pub fn start(info: &Arc<ConnInfo>) -> Busy {
        info.in_flight.fetch_add(1, Ordering::AcqRel);
        info.head_started.store(0, Ordering::Release);
        Busy(info.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let info = &self.0;
        info.idle_since.store(info.now(), Ordering::Release);
        info.head_started.store(0, Ordering::Release);
        info.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The connections of one listener, at most `max`.
pub struct Registry {
    max: usize,
    /// The zero of every connection's clocks, so that they compare.
    epoch: Instant,
    /// How long a new connection is safe from shedding.
    grace: Duration,
    next_id: AtomicU64,
    conns: Mutex<HashMap<u64, Arc<ConnInfo>>>,
}

pub enum Admit {
    Slot(Slot),
    Full { any_idle: bool },
}

impl Admit {
    pub fn slot(self) -> Option<Slot> {
        match self {
            Admit::Slot(s) => Some(s),
            Admit::Full { .. } => None,
        }
    }
}

/// A place in the registry, given back on drop.
pub struct Slot {
    id: u64,
    pub info: Arc<ConnInfo>,
    registry: Arc<Registry>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
    }
}

impl Registry {
    pub fn new(max: usize) -> Arc<Registry> {
        Self::with_grace(max, SHED_GRACE)
    }

    pub fn with_grace(max: usize, grace: Duration) -> Arc<Registry> {
        Arc::new(Registry {
            max: max.max(1),
            epoch: Instant::now(),
            grace,
            next_id: AtomicU64::new(0),
            conns: Mutex::new(HashMap::new()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<ConnInfo>>> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn max(&self) -> usize {
        self.max
    }

    pub fn open(&self) -> usize {
        self.lock().len()
    }

    /// A slot for a new connection: free, or taken from the oldest idle
    /// connection past its grace (which is told to close). At the cap
    /// without one: `Full`, saying whether idle (young) connections hold
    /// slots, or every connection is busy with a request.
    pub fn admit(self: &Arc<Self>) -> Admit {
        let mut conns = self.lock();
        let now = self.epoch.elapsed().as_millis() as u64;
        if conns.len() >= self.max {
            let grace = self.grace.as_millis() as u64;
            let mut any_idle = false;
            let oldest = conns
                .iter()
                .filter(|(_, c)| c.is_idle())
                .inspect(|_| any_idle = true)
                .filter(|(_, c)| now.saturating_sub(c.admitted) >= grace)
                .min_by_key(|(_, c)| c.idle_since.load(Ordering::Acquire))
                .map(|(id, _)| *id);
            let Some(oldest) = oldest else {
                return Admit::Full { any_idle };
            };
            if let Some(shed) = conns.remove(&oldest) {
                shed.shed.notify_one();
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let info = Arc::new(ConnInfo {
            epoch: self.epoch,
            in_flight: AtomicUsize::new(0),
            admitted: now,
            idle_since: AtomicU64::new(now),
            head_started: AtomicU64::new(0),
            shed: Notify::new(),
            clock: Notify::new(),
        });
        conns.insert(id, info.clone());
        Admit::Slot(Slot {
            id,
            info,
            registry: self.clone(),
        })
    }
}

/// A socket that starts its connection's header clock on the first byte of
/// a request head.
pub struct Tracked<T> {
    pub inner: T,
    pub info: Arc<ConnInfo>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let info = &self.info;
        if buf.filled().len() > before && info.is_idle() {
            let now = info.now() + 1;
            let started =
                info.head_started
                    .compare_exchange(0, now, Ordering::AcqRel, Ordering::Acquire);
            if started.is_ok() {
                info.clock.notify_one();
            }
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_the_cap_the_oldest_idle_connection_is_shed_and_busy_ones_never() {
        let reg = Registry::with_grace(2, Duration::ZERO);
        let a = reg.admit().slot().expect("a");
        std::thread::sleep(Duration::from_millis(5));
        let b = reg.admit().slot().expect("b");
        let busy_b = Busy::start(&b.info);
        // a is idle and oldest: it is shed for c.
        let c = reg.admit().slot().expect("c sheds a");
        assert_eq!(reg.open(), 2);
        let _busy_c = Busy::start(&c.info);
        // b and c are busy: nothing to shed.
        assert!(reg.admit().slot().is_none());
        drop(busy_b);
        assert!(reg.admit().slot().is_some(), "b went idle and is shed");
        drop(a);
        assert_eq!(reg.open(), 1, "only c is left");
    }

    #[test]
    fn a_new_connection_is_not_shed_within_its_grace() {
        let reg = Registry::with_grace(1, Duration::from_secs(60));
        let _a = reg.admit().slot().expect("a");
        assert!(
            reg.admit().slot().is_none(),
            "shed a connection just accepted"
        );
    }

    #[test]
    fn deadlines_follow_the_idle_and_header_clocks() {
        let reg = Registry::new(4);
        let s = reg.admit().slot().expect("slot");
        let (head, idle) = (Duration::from_secs(10), Duration::from_secs(60));
        let d = s.info.deadline(head, idle);
        assert!(d > Instant::now() + Duration::from_secs(50), "idle clock");
        s.info.head_started.store(1, Ordering::Release);
        let d = s.info.deadline(head, idle);
        assert!(d < Instant::now() + Duration::from_secs(11), "header clock");
        let busy = Busy::start(&s.info);
        let d = s.info.deadline(head, idle);
        assert!(d > Instant::now() + Duration::from_secs(50), "busy");
        drop(busy);
    }
}
