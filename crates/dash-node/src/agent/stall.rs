//! Whether a running standby is stuck: what it has received and replayed
//! has not grown for a while (decide's `cannot_follow` then looks at the
//! timelines). Whether it "streams" is no guide: a standby that cannot
//! follow reconnects, streams for an instant and fails, again and again.
//! After each
//! re-follow the wait doubles, up to five minutes, until the standby
//! streams again, so a standby that cannot stream for another reason (the
//! leader refuses replication, say) is not rewound every ten seconds.

use std::time::{Duration, Instant};

use crate::decide::STALL_LIMIT;

const LONGEST: Duration = Duration::from_secs(300);

#[derive(Debug)]
pub(super) struct Stall {
    since: Option<Instant>,
    /// The position last seen growing.
    lsn: Option<u64>,
    wait: Duration,
}

impl Default for Stall {
    fn default() -> Stall {
        Stall {
            since: None,
            lsn: None,
            wait: STALL_LIMIT,
        }
    }
}

impl Stall {
    /// This tick's look: `standby` runs (in recovery), at `lsn` (the
    /// greater of received and replayed) on `timeline`. The timeline it is
    /// stuck on, once `lsn` has not grown for the wait.
    pub(super) fn observe(
        &mut self,
        now: Instant,
        standby: bool,
        lsn: Option<u64>,
        timeline: Option<u32>,
    ) -> Option<u32> {
        let grew = lsn.is_some_and(|l| self.lsn.is_none_or(|seen| l > seen));
        if grew {
            self.lsn = lsn;
            self.wait = STALL_LIMIT;
        }
        if !standby || grew {
            self.since = if standby { Some(now) } else { None };
            return None;
        }
        let since = *self.since.get_or_insert(now);
        timeline.filter(|_| now.duration_since(since) >= self.wait)
    }

    /// The standby was made to follow again: count afresh, wait longer.
    pub(super) fn refollowed(&mut self) {
        self.since = None;
        self.wait = (self.wait * 2).min(LONGEST);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_standby_is_stuck_after_the_wait_without_growing_and_waits_longer_each_time() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut stall = Stall::default();
        assert_eq!(stall.observe(at(0), true, Some(100), Some(2)), None);
        assert_eq!(stall.observe(at(9), true, Some(100), Some(2)), None);
        assert_eq!(stall.observe(at(10), true, Some(100), Some(2)), Some(2));
        // Growing, or not a standby: never stuck, and the count restarts.
        assert_eq!(stall.observe(at(11), true, Some(101), Some(2)), None);
        assert_eq!(stall.observe(at(20), true, Some(101), Some(2)), None);
        assert_eq!(stall.observe(at(21), true, Some(101), Some(2)), Some(2));
        assert_eq!(stall.observe(at(22), false, Some(101), Some(2)), None);
        assert_eq!(stall.observe(at(23), true, Some(101), Some(2)), None);
        assert_eq!(
            stall.observe(at(40), true, Some(101), None),
            None,
            "timeline unknown"
        );
        // Going back (a fresh clone, a rewind) is not growth.
        assert_eq!(stall.observe(at(41), true, Some(50), Some(2)), Some(2));

        stall.refollowed();
        assert_eq!(stall.observe(at(100), true, Some(101), Some(2)), None);
        assert_eq!(stall.observe(at(119), true, Some(101), Some(2)), None);
        assert_eq!(
            stall.observe(at(120), true, Some(101), Some(2)),
            Some(2),
            "20 s now"
        );
        for _ in 0..10 {
            stall.refollowed();
        }
        assert_eq!(stall.wait, LONGEST);
        // Growing again forgives.
        stall.observe(at(200), true, Some(102), Some(3));
        assert_eq!(stall.wait, STALL_LIMIT);
    }
}
