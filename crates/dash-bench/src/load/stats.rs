//! Latency statistics over a sorted vector of samples: exact nearest-rank
//! percentiles (a run holds at most a few million samples, so no sketch).

use std::time::Duration;

use serde::Serialize;

/// The nearest-rank `p`-th percentile (0 < p <= 100) of ascending `sorted`:
/// the smallest sample with at least p % of the samples at or below it.
/// `None` when there are no samples.
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let p = p.clamp(0.0, 100.0);
    // p * n first: (p / 100) * n turns 90 % of 100 into 90.000...01 and rank 91.
    let rank = (p * sorted.len() as f64 / 100.0).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Latency of a set of requests, in milliseconds (JSON) or as durations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Samples summarised.
    pub count: u64,
    /// Mean, milliseconds.
    pub mean_ms: f64,
    /// Median, milliseconds.
    pub p50_ms: f64,
    /// 90th percentile, milliseconds.
    pub p90_ms: f64,
    /// 99th percentile, milliseconds.
    pub p99_ms: f64,
    /// Slowest, milliseconds.
    pub max_ms: f64,
}

impl LatencySummary {
    /// Summarises `samples` (sorted in place).
    pub fn of(samples: &mut [Duration]) -> LatencySummary {
        samples.sort_unstable();
        let ms = |d: Option<Duration>| d.map_or(0.0, |d| d.as_secs_f64() * 1e3);
        let total: Duration = samples.iter().sum();
        LatencySummary {
            count: samples.len() as u64,
            mean_ms: match samples.len() {
                0 => 0.0,
                n => total.as_secs_f64() * 1e3 / n as f64,
            },
            p50_ms: ms(percentile(samples, 50.0)),
            p90_ms: ms(percentile(samples, 90.0)),
            p99_ms: ms(percentile(samples, 99.0)),
            max_ms: ms(samples.last().copied()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&m| Duration::from_millis(m)).collect()
    }

    #[test]
    fn nearest_rank_percentiles() {
        let s = ms(&(1..=100).collect::<Vec<_>>());
        assert_eq!(percentile(&s, 50.0), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&s, 90.0), Some(Duration::from_millis(90)));
        assert_eq!(percentile(&s, 99.0), Some(Duration::from_millis(99)));
        assert_eq!(percentile(&s, 99.9), Some(Duration::from_millis(100)));
        assert_eq!(percentile(&s, 100.0), Some(Duration::from_millis(100)));
        assert_eq!(percentile(&s, 0.0), Some(Duration::from_millis(1)));
    }

    #[test]
    fn small_and_empty_sets() {
        assert_eq!(percentile::<Duration>(&[], 50.0), None);
        let one = ms(&[7]);
        for p in [0.0, 1.0, 50.0, 99.0, 100.0] {
            assert_eq!(percentile(&one, p), Some(Duration::from_millis(7)));
        }
        let four = ms(&[1, 2, 3, 4]);
        assert_eq!(percentile(&four, 50.0), Some(Duration::from_millis(2)));
        assert_eq!(percentile(&four, 51.0), Some(Duration::from_millis(3)));
        assert_eq!(percentile(&four, 99.0), Some(Duration::from_millis(4)));
        // Out-of-range p is clamped rather than panicking.
        assert_eq!(percentile(&four, 250.0), Some(Duration::from_millis(4)));
        assert_eq!(percentile(&four, -3.0), Some(Duration::from_millis(1)));
    }

    #[test]
    fn a_single_outlier_shows_in_p99_only_when_it_is_over_one_percent() {
        let mut s = ms(&[1; 99]);
        s.push(Duration::from_millis(500));
        let sum = LatencySummary::of(&mut s);
        assert_eq!(sum.p99_ms, 1.0);
        assert_eq!(sum.max_ms, 500.0);
        s.push(Duration::from_millis(500));
        let sum = LatencySummary::of(&mut s);
        assert_eq!(sum.p99_ms, 500.0);
    }

    #[test]
    fn summary_sorts_and_averages() {
        let mut s = ms(&[30, 10, 20]);
        let sum = LatencySummary::of(&mut s);
        assert_eq!(sum.count, 3);
        assert!((sum.mean_ms - 20.0).abs() < 1e-9);
        assert_eq!(sum.p50_ms, 20.0);
        assert_eq!(sum.max_ms, 30.0);
        assert_eq!(LatencySummary::of(&mut []), LatencySummary::default());
    }
}
