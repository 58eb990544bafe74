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
    /// How often a keep-alive is sent (several times per TTL).
    pub renew_every: Duration,
}

impl LeaseTiming {
    /// Renewal six times per TTL; a margin of a sixth of the TTL, at least
    /// 300 ms. With etcd's default election timeout (1 s, randomized up to
    /// 2 s) a 3 s TTL outlives an election of etcd's own leader: the lease
    /// is certainly valid for 2.0-2.5 s after the fault.
    pub fn for_ttl(ttl: Duration) -> LeaseTiming {
        let ttl = Duration::from_secs(ttl.as_secs_f64().ceil().max(1.0) as u64);
        LeaseTiming {
            ttl,
            margin: (ttl / 6).max(Duration::from_millis(300)),
            renew_every: ttl / 6,
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
    let mut ticker = tokio::time::interval(timing.renew_every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
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
                }
                Err(e) => tracing::warn!(error = %e, "etcd lease grant failed"),
            }
            continue;
        };
        // A few tries per tick, each on the next member after a failure: a
        // dead or partitioned member must not cost the lease.
        for _ in 0..3 {
            match renew_once(&dcs, &mut stream, state.id, timing).await {
                Renewal::Renewed(sent) => {
                    tx.send_replace(Some(LeaseState {
                        id: state.id,
                        valid_until: sent + timing.ttl - timing.margin,
                    }));
                    break;
                }
                Renewal::Expired => {
                    tracing::warn!(lease = state.id, "etcd lease expired; asking for a new one");
                    tx.send_replace(None);
                    stream = None;
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
    match renew(keeper, responses, timing.renew_every.min(dcs.timeout())).await {
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
