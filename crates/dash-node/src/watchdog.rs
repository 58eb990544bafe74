//! Self-fencing that does not wait for the tick. The tick may be busy (an
//! etcd read that hangs until its deadline, a slow observation), so a
//! separate task checks every 20 ms: while the server may be writable
//! ("armed" by the tick) and the lease is no longer certainly valid, it
//! kills the server at once. The lease's certain validity ends a margin
//! before etcd can let anyone else take the key (`dash_dcs::LeaseState`),
//! so the old primary stops before a new one can be promoted.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dash_dcs::LeaseState;
use tokio::sync::watch;

use crate::control::PgControl;
use crate::metrics::NodeMetrics;

/// How often the watchdog looks.
const EVERY: Duration = Duration::from_millis(20);

/// Set by the tick while this member's server may be writable.
#[derive(Default)]
pub struct Armed(AtomicBool);

impl Armed {
    pub fn set(&self, on: bool) {
        self.0.store(on, Ordering::SeqCst);
    }
    pub fn get(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Starts the watchdog for `ctl`'s server. It also keeps the out-of-process
/// guard (`guard.rs`) told until when the server may stay writable, from
/// this task rather than the tick, so a slow tick never starves it.
pub fn start(
    ctl: PgControl,
    lease: watch::Receiver<Option<LeaseState>>,
    armed: Arc<Armed>,
    metrics: Arc<NodeMetrics>,
    mut guard: Option<crate::guard::Guard>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(EVERY);
        loop {
            ticker.tick().await;
            let current = *lease.borrow();
            if let Some(g) = guard.as_mut() {
                let until = current.map_or_else(Instant::now, |l| l.valid_until);
                g.tell(armed.get().then_some(until));
            }
            let valid = current.is_some_and(|l| l.valid_at(Instant::now()));
            if valid || !armed.get() {
                continue;
            }
            armed.set(false);
            let ctl = ctl.clone();
            let result = tokio::task::spawn_blocking(move || ctl.fence()).await;
            let ok = matches!(result, Ok(Ok(())));
            metrics.decision("fence", ok);
            tracing::warn!(
                ok,
                "fenced by the watchdog: the etcd lease is no longer certainly valid"
            );
        }
    })
}
