//! The drill's verdict per round and overall.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use dash_runbook::pitr::restore::PitrRestoreReport;
use serde::Serialize;

use super::writes::Write;

#[derive(Debug, Clone, Serialize)]
pub struct PitrRound {
    pub round: u32,
    pub point: DateTime<Utc>,
    pub backup: String,
    /// "old -> new" when the round failed over between the backup and the incident.
    pub failover: Option<String>,
    /// Acknowledged before the point: each must be there.
    pub acked_before: usize,
    pub missing: Vec<String>,
    /// Sent after the point: none may be there.
    pub sent_after: usize,
    pub present_after: Vec<String>,
    /// In flight at the point (or never acknowledged): either outcome is right.
    pub in_flight: usize,
    pub in_flight_kept: usize,
    /// Rows the destructive statement deleted.
    pub deleted: u64,
    pub timeline: Option<u32>,
    pub recovery_seconds: f64,
    pub writes_stopped_seconds: f64,
    pub restore_seconds: f64,
}

impl PitrRound {
    #[allow(clippy::too_many_arguments)]
    pub fn judge(
        round: u32,
        log: &[Write],
        point: DateTime<Utc>,
        present: &HashSet<String>,
        deleted: u64,
        backup: String,
        failover: Option<String>,
        restored: &PitrRestoreReport,
        took: Duration,
    ) -> PitrRound {
        let mut r = PitrRound {
            round,
            point,
            backup,
            failover,
            acked_before: 0,
            missing: Vec::new(),
            sent_after: 0,
            present_after: Vec::new(),
            in_flight: 0,
            in_flight_kept: 0,
            deleted,
            timeline: restored.timeline,
            recovery_seconds: restored.recovery_seconds,
            writes_stopped_seconds: restored.writes_stopped_seconds,
            restore_seconds: took.as_secs_f64(),
        };
        for w in log {
            let there = present.contains(&w.name);
            match w.acked {
                Some(acked) if acked < point => {
                    r.acked_before += 1;
                    if !there {
                        r.missing.push(w.name.clone());
                    }
                }
                _ if w.sent > point => {
                    r.sent_after += 1;
                    if there {
                        r.present_after.push(w.name.clone());
                    }
                }
                _ => {
                    r.in_flight += 1;
                    r.in_flight_kept += usize::from(there);
                }
            }
        }
        r
    }

    pub fn clean(&self) -> bool {
        self.missing.is_empty() && self.present_after.is_empty()
    }

    pub fn line(&self, rounds: u32) -> String {
        format!(
            "round {}/{rounds}: {} acked before the point, {} missing; {} sent after, {} present; {} in flight ({} kept); \
             {} deleted and restored{}; recovery {:.1}s, writes stopped {:.1}s",
            self.round,
            self.acked_before,
            self.missing.len(),
            self.sent_after,
            self.present_after.len(),
            self.in_flight,
            self.in_flight_kept,
            self.deleted,
            self.failover.as_ref().map(|f| format!(", failover {f} before the incident")).unwrap_or_default(),
            self.recovery_seconds,
            self.writes_stopped_seconds,
        )
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PitrDrillReport {
    pub rounds: Vec<PitrRound>,
    pub acked_before: usize,
    pub missing: usize,
    pub sent_after: usize,
    pub present_after: usize,
    pub in_flight: usize,
    /// Why the drill stopped early, if it did.
    pub failure: Option<String>,
}

impl PitrDrillReport {
    pub fn new(rounds: Vec<PitrRound>, failure: Option<String>) -> PitrDrillReport {
        let sum = |f: fn(&PitrRound) -> usize| rounds.iter().map(f).sum();
        PitrDrillReport {
            acked_before: sum(|r| r.acked_before),
            missing: sum(|r| r.missing.len()),
            sent_after: sum(|r| r.sent_after),
            present_after: sum(|r| r.present_after.len()),
            in_flight: sum(|r| r.in_flight),
            rounds,
            failure,
        }
    }

    pub fn clean(&self) -> bool {
        self.failure.is_none()
            && !self.rounds.is_empty()
            && self.rounds.iter().all(PitrRound::clean)
    }

    pub fn render(&self) -> String {
        let mut out = String::from("ROUND  FAILOVER        ACKED<T  MISSING  SENT>T  PRESENT  IN-FLIGHT  RECOVERY  WRITES-STOPPED  RESTORE\n");
        for r in &self.rounds {
            out.push_str(&format!(
                "{:<6} {:<15} {:>8} {:>8} {:>7} {:>8} {:>10} {:>8.1}s {:>14.1}s {:>7.1}s\n",
                r.round,
                r.failover.as_deref().unwrap_or("-"),
                r.acked_before,
                r.missing.len(),
                r.sent_after,
                r.present_after.len(),
                r.in_flight,
                r.recovery_seconds,
                r.writes_stopped_seconds,
                r.restore_seconds
            ));
        }
        out.push_str(&format!(
            "total: {} acknowledged before the point, {} missing; {} sent after it, {} present; {} in flight\n",
            self.acked_before, self.missing, self.sent_after, self.present_after, self.in_flight
        ));
        if let Some(f) = &self.failure {
            out.push_str(&format!("stopped early: {f}\n"));
        }
        out.push_str(if self.clean() {
            "CLEAN\n"
        } else {
            "NOT CLEAN\n"
        });
        out
    }
}
