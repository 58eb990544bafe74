//! Fault injection for `dashctl chaos`: the faults themselves (by PID, on the
//! local cluster only) and the per-round and summary figures Dash is judged by.

use std::path::Path;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::Serialize;

use dash_pg::data_dir_pids;

/// The faults `dashctl chaos` can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// The primary node crashes: SIGSTOP every process at once, then SIGKILL them all.
    KillPrimary,
    /// The primary freezes (SIGSTOP); after the failover it is woken (SIGCONT) to prove the fence held.
    HangPrimary,
    /// Immediate stop then start of the primary (runbook scenario 1, a transient restart).
    RestartPrimary,
    /// Every free server connection held idle in transaction from outside the API.
    ExhaustPool,
}

/// Sends `sig` to every process running in `data_dir`; returns how many.
pub fn signal_all(data_dir: &Path, sig: Signal) -> usize {
    let pids = data_dir_pids(data_dir);
    for pid in &pids {
        let _ = kill(Pid::from_raw(*pid), sig);
    }
    pids.len()
}

/// A node crash: freeze every process first so none keeps committing while
/// the others die (backends call setsid and outlive a killed postmaster).
pub fn crash(data_dir: &Path) -> usize {
    let n = signal_all(data_dir, Signal::SIGSTOP);
    signal_all(data_dir, Signal::SIGKILL);
    n
}

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

#[derive(Debug, Clone, Serialize)]
pub struct Spread {
    pub min: f64,
    pub median: f64,
    pub p90: f64,
    pub max: f64,
}

impl Spread {
    pub fn of(values: &[f64]) -> Option<Spread> {
        if values.is_empty() {
            return None;
        }
        let mut v = values.to_vec();
        v.sort_by(|a, b| a.total_cmp(b));
        let at = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
        Some(Spread {
            min: v[0],
            median: at(0.5),
            p90: at(0.9),
            max: v[v.len() - 1],
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

/// How long a round may take before it is abandoned as failed.
pub const ROUND_LIMIT: Duration = Duration::from_secs(60);

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
