//! The figures of a kill-worker run, and their text form.

use serde::Serialize;

use super::journal::JournalFigures;
use crate::load::percentile;

/// An agent whose worker was killed while it ran.
#[derive(Debug, Clone, Serialize)]
pub struct KilledAgent {
    pub agent: String,
    /// The attempt that died with the worker.
    pub attempt: i32,
    /// From the kill until its lease was reclaimed (the agent pending
    /// again, claimable after the retry delay), ms.
    pub released_ms: Option<f64>,
    /// From the kill until another worker claimed a later attempt
    /// (`agent.started`), ms; `None` if none ever did.
    pub reclaim_ms: Option<f64>,
}

/// One round: a worker killed, a replacement started.
#[derive(Debug, Clone, Serialize)]
pub struct KillRound {
    pub round: u32,
    pub killed_worker: String,
    pub replacement: String,
    pub killed: Vec<KilledAgent>,
}

/// Minimum, median, 99th percentile (nearest rank) and maximum.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub min: f64,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Latency {
    pub fn of(values: &[f64]) -> Option<Latency> {
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        Some(Latency {
            min: *v.first()?,
            p50: percentile(&v, 50.0)?,
            p99: percentile(&v, 99.0)?,
            max: *v.last()?,
        })
    }
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct KillWorkerReport {
    pub scenario: &'static str,
    pub agents: u32,
    pub workers: usize,
    pub slots: usize,
    /// MAX_CONCURRENT_AGENTS every worker was given.
    pub cap: u32,
    pub lease_ms: u64,
    pub heartbeat_ms: u64,
    pub rounds: Vec<KillRound>,
    /// Attempts that died with their worker.
    pub killed_attempts: usize,
    pub completed: i64,
    /// Agents that never completed (after the final wait).
    pub lost: i64,
    /// Agents by number of `agent.completed` events: exactly one, none.
    pub completed_once: i64,
    pub never_completed: i64,
    /// Completions beyond the first, over all agents.
    pub duplicates: i64,
    /// Late completions or failures of a superseded attempt, rejected
    /// (`agent.fenced` with `rejected` completion or failure).
    pub stale_completions_rejected: i64,
    /// Leases that expired and were reclaimed (`agent.fenced` by the reaper).
    pub leases_reclaimed: i64,
    pub reclaim_ms: Option<Latency>,
    /// The same, for attempts that were the agent's first (no retry
    /// backoff before them: a repeat kill adds 2 s, 4 s, ...).
    pub reclaim_first_attempt_ms: Option<Latency>,
    /// From the kill until the lease was reclaimed (the worker's part:
    /// the rest of a re-claim is the retry delay and a free slot).
    pub released_ms: Option<Latency>,
    /// Killed attempts whose agent no other worker ever claimed again.
    pub not_reclaimed: usize,
    /// The journal's resolution: one demo step, ms.
    pub journal_resolution_ms: u64,
    pub journal_bad_lines: usize,
    pub journal: JournalFigures,
    /// Runs of one agent overlapping in time (journal), plus double starts.
    pub overlaps: usize,
    /// Highest `running` count sampled (every 50 ms) during the run.
    pub max_running: i64,
    pub running_samples: u64,
    pub seconds: f64,
}

impl KillWorkerReport {
    /// Nothing lost, nothing doubled, no overlap, the cap held.
    pub fn clean(&self) -> bool {
        self.lost == 0
            && self.duplicates == 0
            && self.overlaps == 0
            && self.max_running <= i64::from(self.cap)
    }

    /// The summary as `dashctl chaos kill-worker` prints it.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let r = self;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "scenario kill-worker, {} round(s): {} agents, {} workers x {} slots, cap {}, lease {} ms, heartbeat {} ms",
            r.rounds.len(), r.agents, r.workers, r.slots, r.cap, r.lease_ms, r.heartbeat_ms
        );
        for k in &r.rounds {
            let ms: Vec<String> = (k.killed.iter())
                .map(|a| match a.reclaim_ms {
                    Some(v) => format!("{v:.0} (a{})", a.attempt),
                    None => format!("never (a{})", a.attempt),
                })
                .collect();
            let _ = writeln!(
                out,
                "  round {:>3}: killed {} ({} running) -> {}; re-claimed after ms: {}",
                k.round,
                k.killed_worker,
                k.killed.len(),
                k.replacement,
                ms.join(" ")
            );
        }
        let ms = |l: &Option<Latency>| {
            l.as_ref().map_or("none measured".into(), |l| {
                format!(
                    "min {:.0}  p50 {:.0}  p99 {:.0}  max {:.0}",
                    l.min, l.p50, l.p99, l.max
                )
            })
        };
        let rows: [(&str, String); 13] = [
            ("killed attempts", r.killed_attempts.to_string()),
            ("completed", format!("{} of {}", r.completed, r.agents)),
            ("lost", r.lost.to_string()),
            (
                "completions/agent",
                format!(
                    "{} exactly once, {} never, {} duplicates",
                    r.completed_once, r.never_completed, r.duplicates
                ),
            ),
            (
                "stale rejected",
                format!(
                    "{} late completions/failures fenced",
                    r.stale_completions_rejected
                ),
            ),
            ("leases reclaimed", r.leases_reclaimed.to_string()),
            (
                "re-claim ms",
                format!("{}  ({} not re-claimed)", ms(&r.reclaim_ms), r.not_reclaimed),
            ),
            ("  of attempt 1", ms(&r.reclaim_first_attempt_ms)),
            ("lease released ms", ms(&r.released_ms)),
            (
                "journal",
                format!(
                    "{} runs of {} agents, {} ended normally ({} agents more than once), {} double starts",
                    r.journal.runs,
                    r.journal.agents,
                    r.journal.ended,
                    r.journal.ended_more_than_once,
                    r.journal.double_starts
                ),
            ),
            (
                "overlaps",
                format!(
                    "{} (journal resolution: one step, {} ms)",
                    r.overlaps, r.journal_resolution_ms
                ),
            ),
            (
                "max running",
                format!(
                    "{} (cap {}; {} samples, every 50 ms)",
                    r.max_running, r.cap, r.running_samples
                ),
            ),
            ("took", format!("{:.1} s", r.seconds)),
        ];
        for (k, v) in rows {
            let _ = writeln!(out, "  {k:<18} {v}");
        }
        let _ = writeln!(
            out,
            "  verdict            {}",
            if r.clean() {
                "clean: every agent completed exactly once, no overlap, cap held"
            } else {
                "NOT CLEAN"
            }
        );
        out
    }
}
