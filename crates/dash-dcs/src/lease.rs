//! Keeping one agent's lease alive, and knowing — on this host's monotonic
//! clock — until when it is certainly still valid.
//!
//! etcd starts a lease's TTL afresh when it *receives* a keep-alive, which is
//! after we *sent* it. So a lease renewed by a keep-alive sent at `t` cannot
//! expire before `t + TTL`, and no other member can take a key under it
//! before then. [`LeaseState::valid_until`] is `t + TTL − margin` for the
//! newest answered keep-alive: a primary that stops acknowledging writes by
//! then has stopped before anyone else can be promoted (self-fencing).

use std::time::{Duration, Instant};

use etcd_client::{LeaseKeepAliveStream, LeaseKeeper};
use tokio::sync::watch;

use crate::{Dcs, DcsError};

/// The lease as last confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseState {
    pub id: i64,
    /// Until when keys under this lease certainly exist.
    pub valid_until: Instant,
}

impl LeaseState {
    /// Whether the lease is certainly valid at `now`.
    pub fn valid_at(&self, now: Instant) -> bool {
        now < self.valid_until
    }
    /// Time left of certain validity (zero once past).
    pub fn remaining(&self, now: Instant) -> Duration {
        self.valid_until.saturating_duration_since(now)
    }
}

/// Timing of a lease.
#[derive(Debug, Clone, Copy)]
pub struct LeaseTiming {
    /// The TTL asked of etcd (rounded up to whole seconds).
    pub ttl: Duration,
    /// Subtracted from every validity: the time a fence needs, plus slack.
    pub margin: Duration,
    /// How often a keep-alive is sent while renewals succeed.
    pub renew_every: Duration,
    /// How soon a renewal that failed is tried again.
    pub retry_every: Duration,
    /// A keep-alive not answered within this is tried on the next member.
    pub answer_within: Duration,
}

impl LeaseTiming {
    /// Renewal three times per TTL (the rate of etcd's own client), a
    /// failed renewal tried again every 100 ms; a margin of a sixth of the
    /// TTL, at least 300 ms.
    ///
    /// The rate decides two things. When the holder's host dies, etcd frees
    /// the key a TTL after the last keep-alive it received, so on average a
    /// TTL minus half a renewal period after the crash: a slower rate frees
    /// it sooner. And an etcd outage (an election of etcd's own leader takes
    /// 1-2 s with its default timeouts) is outlived while a renewal gets
    /// through before the validity ends: a fast retry after a failure keeps
    /// that true as long as before. With a 3 s TTL an outage that starts a
    /// period after the last renewal is outlived up to 1.4 s, one that
    /// starts just after it up to 2.4 s (renewing every 500 ms without
    /// retries: 1.5-2.0 s).
    pub fn for_ttl(ttl: Duration) -> LeaseTiming {
        let ttl = Duration::from_secs(ttl.as_secs_f64().ceil().max(1.0) as u64);
        LeaseTiming {
            ttl,
            margin: (ttl / 6).max(Duration::from_millis(300)),
            renew_every: ttl / 3,
            retry_every: Duration::from_millis(100),
            answer_within: ttl / 6,
        }
    }
}

/// Keeps a lease alive in the background; a lost lease is replaced by a new
/// one. Dropping it stops the renewals (the lease then expires by itself;
/// call [`Dcs::revoke`] first to end it at once).
pub struct LeaseKeeperTask {
    state: watch::Receiver<Option<LeaseState>>,
    task: tokio::task::JoinHandle<()>,
}

impl LeaseKeeperTask {
    /// Starts granting and renewing.
    pub fn start(dcs: Dcs, timing: LeaseTiming) -> LeaseKeeperTask {
        let (tx, rx) = watch::channel(None);
        let task = tokio::spawn(keep(dcs, timing, tx));
        LeaseKeeperTask { state: rx, task }
    }

    /// The lease as last confirmed (`None`: none granted, or it expired).
    pub fn current(&self) -> Option<LeaseState> {
        *self.state.borrow()
    }

    /// A receiver that sees every change.
    pub fn subscribe(&self) -> watch::Receiver<Option<LeaseState>> {
        self.state.clone()
    }
}

impl Drop for LeaseKeeperTask {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn keep(dcs: Dcs, timing: LeaseTiming, tx: watch::Sender<Option<LeaseState>>) {
    let mut stream: Option<(LeaseKeeper, LeaseKeepAliveStream)> = None;
    let mut next = tokio::time::Instant::now();
    loop {
        tokio::time::sleep_until(next).await;
        let started = tokio::time::Instant::now();
        // Unless renewed below, try again soon.
        next = started + timing.retry_every;
        let current = *tx.borrow();
        // Past `valid_until + margin` the lease may have expired in etcd
        // (its TTL runs from a keep-alive's arrival, after its sending):
        // once past sent + TTL + one renewal period it certainly has.
        if current.is_some_and(|s| Instant::now() > s.valid_until + timing.margin + timing.ttl) {
            tracing::warn!("etcd lease certainly expired; asking for a new one");
            tx.send_replace(None);
            stream = None;
        }
        let Some(state) = *tx.borrow() else {
            let sent = Instant::now();
            match dcs.grant(timing.ttl).await {
                Ok(id) => {
                    tracing::info!(lease = id, "etcd lease granted");
                    tx.send_replace(Some(LeaseState {
                        id,
                        valid_until: sent + timing.ttl - timing.margin,
                    }));
                    stream = None;
                    next = started + timing.renew_every;
                }
                Err(e) => tracing::warn!(error = %e, "etcd lease grant failed"),
            }
            continue;
        };
        // A few tries, each on the next member after a failure: a dead or
        // partitioned member must not cost the lease.
        for _ in 0..3 {
            match renew_once(&dcs, &mut stream, state.id, timing).await {
                Renewal::Renewed(sent) => {
                    tx.send_replace(Some(LeaseState {
                        id: state.id,
                        valid_until: sent + timing.ttl - timing.margin,
                    }));
                    next = started + timing.renew_every;
                    break;
                }
                Renewal::Expired => {
                    tracing::warn!(lease = state.id, "etcd lease expired; asking for a new one");
                    tx.send_replace(None);
                    stream = None;
                    next = tokio::time::Instant::now();
                    break;
                }
                Renewal::Failed(e) => {
                    tracing::warn!(error = %e, "etcd lease renewal failed");
                    stream = None;
                    dcs.rotate();
                }
            }
        }
    }
}

enum Renewal {
    Renewed(Instant),
    Expired,
    Failed(DcsError),
}

async fn renew_once(
    dcs: &Dcs,
    stream: &mut Option<(LeaseKeeper, LeaseKeepAliveStream)>,
    id: i64,
    timing: LeaseTiming,
) -> Renewal {
    if stream.is_none() {
        let mut client = dcs.client().lease_client();
        match tokio::time::timeout(dcs.timeout(), client.keep_alive(id)).await {
            Ok(Ok(pair)) => *stream = Some(pair),
            Ok(Err(e)) => return classify(DcsError::from(e)),
            Err(_) => return Renewal::Failed(DcsError::Timeout(dcs.timeout())),
        }
    }
    let (keeper, responses) = stream.as_mut().expect("opened above");
    let sent = Instant::now();
    match renew(keeper, responses, timing.answer_within.min(dcs.timeout())).await {
        Ok(ttl) if ttl > 0 => Renewal::Renewed(sent),
        Ok(_) => Renewal::Expired,
        Err(e) => classify(e),
    }
}

/// etcd says "lease not found" for a lease that expired.
fn classify(e: DcsError) -> Renewal {
    if e.to_string().contains("lease not found") {
        Renewal::Expired
    } else {
        Renewal::Failed(e)
    }
}

async fn renew(
    keeper: &mut LeaseKeeper,
    responses: &mut LeaseKeepAliveStream,
    limit: Duration,
) -> Result<i64, DcsError> {
    let exchange = async {
        keeper.keep_alive().await?;
        match responses.message().await? {
            Some(resp) => Ok(resp.ttl()),
            None => Err(etcd_client::Error::LeaseKeepAliveError(
                "keep-alive stream closed".into(),
            )),
        }
    };
    tokio::time::timeout(limit, exchange)
        .await
        .map_err(|_| DcsError::Timeout(limit))?
        .map_err(DcsError::from)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::LeaseTiming;

    #[test]
    fn a_renewal_and_its_retries_fit_in_the_certain_validity() {
        for secs in [2, 3, 5, 10, 30] {
            let t = LeaseTiming::for_ttl(Duration::from_secs(secs));
            let validity = t.ttl - t.margin;
            // After a renewal, the next one comes with time left to retry it
            // several times before the lease stops being certainly valid.
            assert!(t.renew_every + 3 * t.retry_every < validity, "{t:?}");
            // A keep-alive is given up before the next one is due.
            assert!(t.answer_within < t.renew_every, "{t:?}");
            assert!(t.margin >= Duration::from_millis(300), "{t:?}");
        }
    }
}
