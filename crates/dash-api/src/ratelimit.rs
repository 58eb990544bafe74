//! Agent-storm protection at the door: a token bucket on `POST /agents`
//! per API process (`DASH_SPAWN_RATE` per second, bursts of
//! `DASH_SPAWN_BURST`). Past it, 429 with `Retry-After`. The running caps
//! that hold across every worker are checked in the database (the claim).

use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct SpawnLimiter {
    /// Tokens per second; 0 turns the limit off.
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl SpawnLimiter {
    pub fn new(rate: f64, burst: u32) -> SpawnLimiter {
        let burst = f64::from(burst.max(1));
        SpawnLimiter {
            rate,
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    /// Takes a token at `now`; else how long until one is there.
    pub fn take_at(&self, now: Instant) -> Result<(), Duration> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, last) = *s;
        let refilled = (tokens + now.saturating_duration_since(last).as_secs_f64() * self.rate)
            .min(self.burst);
        if refilled >= 1.0 {
            *s = (refilled - 1.0, now);
            return Ok(());
        }
        *s = (refilled, now);
        Err(Duration::from_secs_f64((1.0 - refilled) / self.rate))
    }

    pub fn take(&self) -> Result<(), Duration> {
        self.take_at(Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate_and_the_wait_is_said() {
        let l = SpawnLimiter::new(10.0, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(l.take_at(t0).is_ok());
        }
        let wait = l.take_at(t0).unwrap_err();
        assert!(
            wait > Duration::from_millis(90) && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
        assert!(l.take_at(t0 + Duration::from_millis(100)).is_ok());
        assert!(l.take_at(t0 + Duration::from_millis(100)).is_err());
        // Idle time refills up to the burst, no further.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            assert!(l.take_at(later).is_ok());
        }
        assert!(l.take_at(later).is_err());
        assert!(
            SpawnLimiter::new(0.0, 1).take_at(t0).is_ok(),
            "0 turns it off"
        );
    }
}
