//! Failing fast while the database is down. Once a search for the primary
//! found every host gone (connection refused or timed out; not a standby
//! that answers, which may be promoted any moment), callers get
//! `Unavailable` at once instead of each waiting out the acquire timeout,
//! so a client fleet backs off instead of piling up. One background probe
//! looks for the primary every [`PROBE_EVERY`] and lets callers through as
//! soon as it answers (or a standby does: a failover is under way).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::connect::{describe, find_primary, AttemptError};
use super::observer::ConnErrorReason;
use super::Shared;

/// How often the probe looks while the breaker is open.
pub const PROBE_EVERY: Duration = Duration::from_millis(100);

#[derive(Default)]
pub(crate) struct Breaker {
    open: AtomicBool,
    probing: AtomicBool,
    stopped: AtomicBool,
}

/// Whether these failures say every host is gone.
pub(crate) fn all_gone(errors: &[AttemptError]) -> bool {
    !errors.is_empty()
        && (errors.iter()).all(|e| {
            matches!(
                e.reason,
                ConnErrorReason::Refused | ConnErrorReason::Timeout
            )
        })
}

impl Breaker {
    /// Whether callers are answered at once.
    pub(crate) fn is_open(&self) -> bool {
        self.open.load(Ordering::SeqCst)
    }

    /// Lets callers through again (the next one searches; if every host
    /// is still gone, it trips the breaker again).
    pub(crate) fn close(&self) {
        self.open.store(false, Ordering::SeqCst);
    }

    /// The pool closed: the probe ends.
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.close();
    }
}

/// Opens the breaker and starts the probe, unless one runs.
pub(crate) fn trip(sh: &Arc<Shared>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    if sh.breaker.stopped.load(Ordering::SeqCst) {
        return;
    }
    sh.breaker.open.store(true, Ordering::SeqCst);
    if !sh.breaker.probing.swap(true, Ordering::SeqCst) {
        runtime.spawn(probe(sh.clone()));
    }
}

async fn probe(sh: Arc<Shared>) {
    loop {
        tokio::time::sleep(PROBE_EVERY).await;
        if sh.breaker.stopped.load(Ordering::SeqCst) {
            break;
        }
        let settings = sh.effective();
        match find_primary(&settings, None, |_| {}).await {
            Ok(found) => {
                // The pool connects for itself: it finds this primary first.
                drop(found.client);
                break;
            }
            Err(errors) if !all_gone(&errors) => break,
            Err(errors) => {
                *sh.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(describe(&errors));
            }
        }
    }
    sh.breaker.close();
    sh.breaker.probing.store(false, Ordering::SeqCst);
}
