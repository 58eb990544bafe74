//! Restart backoff for a PostgreSQL that keeps crashing: 0.5 s, doubling to
//! 30 s; forgiven once it has answered for 2 s (a server that ran that long
//! and then crashed is restarted at once; one that cannot stay up backs off).

use std::time::{Duration, Instant};

const FIRST: Duration = Duration::from_millis(500);
const MAX: Duration = Duration::from_secs(30);
/// A server that answered this long started fine: a crash-looping one dies
/// or fails its checks within its first second. Longer (5 s before) counted
/// a promoted server that was killed 3 s later as a crash loop, and its
/// rejoin waited out up to 30 s of backoff.
const FORGIVEN_AFTER: Duration = Duration::from_secs(2);

#[derive(Debug, Default)]
pub struct Backoff {
    next_allowed: Option<Instant>,
    delay: Option<Duration>,
    up_since: Option<Instant>,
}

impl Backoff {
    /// Whether a start may be tried at `now`.
    pub fn ready(&self, now: Instant) -> bool {
        self.next_allowed.is_none_or(|t| now >= t)
    }

    /// A start was tried (whatever its outcome): the next waits longer.
    pub fn attempted(&mut self, now: Instant) {
        let delay = self.delay.map_or(FIRST, |d| (d * 2).min(MAX));
        self.delay = Some(delay);
        self.next_allowed = Some(now + delay);
        self.up_since = None;
    }

    /// The server is running at `now`; a long enough run forgives the past.
    pub fn running(&mut self, now: Instant) {
        let since = *self.up_since.get_or_insert(now);
        if now.duration_since(since) >= FORGIVEN_AFTER {
            self.delay = None;
            self.next_allowed = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_forgives_a_long_run() {
        let t0 = Instant::now();
        let mut b = Backoff::default();
        assert!(b.ready(t0));
        b.attempted(t0);
        assert!(!b.ready(t0 + Duration::from_millis(400)));
        assert!(b.ready(t0 + FIRST));
        b.attempted(t0);
        assert!(!b.ready(t0 + FIRST));
        assert!(b.ready(t0 + FIRST * 2));
        for _ in 0..20 {
            b.attempted(t0);
        }
        assert!(b.ready(t0 + MAX));
        b.running(t0);
        b.running(t0 + FORGIVEN_AFTER);
        assert!(b.ready(t0));
    }
}
