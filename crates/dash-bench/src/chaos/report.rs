//! The figures a chaos run is judged by: per round and in summary.

use serde::Serialize;

use super::Scenario;
use crate::load::percentile;

/// One round's figures.
#[derive(Debug, Clone, Serialize, Default)]
pub struct RoundReport {
    pub round: u32,
    pub old_primary: String,
    pub new_primary: String,
    /// Last acknowledged write before the fault to first acknowledged after, ms.
    pub write_gap_ms: f64,
    pub acked_writes: usize,
    /// Acknowledged writes missing afterwards.
    pub lost: usize,
    /// Writes stored more than once.
    pub duplicates: usize,
    /// Writes a fenced node accepted after the fault.
    pub fenced_writes: usize,
    /// From the fault until a replica streams from the primary again, ms.
    pub ha_restored_ms: Option<f64>,
    pub failed_requests: u64,
    /// exhaust-pool: server sessions held idle in transaction from outside the API.
    pub held_sessions: usize,
}

/// Minimum, median, 90th percentile and maximum of a figure over the rounds.
#[derive(Debug, Clone, Serialize)]
pub struct Spread {
    pub min: f64,
    pub median: f64,
    pub p90: f64,
    pub max: f64,
}

impl Spread {
    /// Nearest-rank figures of `values` (the load driver's percentile);
    /// `None` when there are none.
    pub fn of(values: &[f64]) -> Option<Spread> {
        let mut v = values.to_vec();
        v.sort_by(|a, b| a.total_cmp(b));
        Some(Spread {
            min: *v.first()?,
            median: percentile(&v, 50.0)?,
            p90: percentile(&v, 90.0)?,
            max: *v.last()?,
        })
    }
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct ChaosReport {
    pub scenario: Scenario,
    pub synchronous: bool,
    pub rounds: Vec<RoundReport>,
    pub write_gap_ms: Option<Spread>,
    pub ha_restored_ms: Option<Spread>,
    pub acked_writes: usize,
    pub lost: usize,
    pub duplicates: usize,
    pub fenced_writes: usize,
}

impl ChaosReport {
    pub fn new(scenario: Scenario, synchronous: bool, rounds: Vec<RoundReport>) -> ChaosReport {
        let gaps: Vec<f64> = rounds.iter().map(|r| r.write_gap_ms).collect();
        let ha: Vec<f64> = rounds.iter().filter_map(|r| r.ha_restored_ms).collect();
        ChaosReport {
            scenario,
            synchronous,
            write_gap_ms: Spread::of(&gaps),
            ha_restored_ms: Spread::of(&ha),
            acked_writes: rounds.iter().map(|r| r.acked_writes).sum(),
            lost: rounds.iter().map(|r| r.lost).sum(),
            duplicates: rounds.iter().map(|r| r.duplicates).sum(),
            fenced_writes: rounds.iter().map(|r| r.fenced_writes).sum(),
            rounds,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_and_totals() {
        let s = Spread::of(&[300.0, 100.0, 200.0]).unwrap();
        assert_eq!((s.min, s.median, s.max), (100.0, 200.0, 300.0));
        assert!(Spread::of(&[]).is_none());
        let r = ChaosReport::new(
            Scenario::KillPrimary,
            true,
            vec![
                RoundReport {
                    lost: 1,
                    acked_writes: 10,
                    ..RoundReport::default()
                },
                RoundReport {
                    duplicates: 2,
                    acked_writes: 5,
                    ..RoundReport::default()
                },
            ],
        );
        assert_eq!((r.acked_writes, r.lost, r.duplicates), (15, 1, 2));
    }
}
