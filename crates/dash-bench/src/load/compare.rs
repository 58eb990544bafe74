//! The API-versus-pgbench comparison that `dashctl bench compare` prints, the
//! issue's targets judged against it, and process RSS from `/proc`.

use std::fmt;

use serde::Serialize;

use super::pgbench::PgbenchResult;
use super::report::OpSummary;

/// Target: create-agent through the API at no less than this share of pgbench's TPS.
const MIN_CREATE_RATIO: f64 = 0.5;
/// Target: API p99 at most this, milliseconds.
const MAX_P99_MS: f64 = 10.0;
/// Target: idle RSS of `dashctl serve` at most this, kB (30 MB).
const MAX_IDLE_RSS_KB: u64 = 30 * 1024;

/// One workload: the API's figures beside pgbench's.
#[derive(Debug, Clone, Serialize)]
pub struct ComparisonRow {
    /// `create-agent`, `get-agent` or `list-agents`.
    pub workload: String,
    /// API successful requests per second.
    pub api_per_sec: f64,
    /// API median latency, ms.
    pub api_p50_ms: f64,
    /// API 99th percentile latency, ms.
    pub api_p99_ms: f64,
    /// API failed requests.
    pub api_errors: u64,
    /// pgbench transactions per second.
    pub pgbench_tps: f64,
    /// pgbench median transaction latency, ms.
    pub pgbench_p50_ms: f64,
    /// pgbench 99th percentile transaction latency, ms.
    pub pgbench_p99_ms: f64,
    /// pgbench failed transactions.
    pub pgbench_failed: u64,
    /// `api_per_sec / pgbench_tps`.
    pub ratio: f64,
}

impl ComparisonRow {
    /// Sets an API op summary beside a pgbench result.
    pub fn new(workload: &str, api: &OpSummary, pgbench: &PgbenchResult) -> ComparisonRow {
        ComparisonRow {
            workload: workload.to_string(),
            api_per_sec: api.ok_per_sec,
            api_p50_ms: api.latency.p50_ms,
            api_p99_ms: api.latency.p99_ms,
            api_errors: api.requests - api.ok,
            pgbench_tps: pgbench.tps,
            pgbench_p50_ms: pgbench.latency.p50_ms,
            pgbench_p99_ms: pgbench.latency.p99_ms,
            pgbench_failed: pgbench.failed,
            ratio: match pgbench.tps {
                t if t > 0.0 => api.ok_per_sec / t,
                _ => 0.0,
            },
        }
    }
}

/// Resident memory, kB.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct RssFigures {
    /// A separate `dashctl serve` process once ready, before any request.
    pub serve_idle_kb: Option<u64>,
    /// Its peak (VmHWM) after the load, when the load went to it.
    pub serve_peak_kb: Option<u64>,
    /// The bench process (API in-process, load driver, runtime) once the
    /// API is ready, before any load (`--in-process` only).
    pub in_process_idle_kb: Option<u64>,
    /// The bench process's peak after the load (`--in-process` only).
    pub in_process_peak_kb: Option<u64>,
}

/// One of the targets, judged.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    /// What is measured.
    pub name: String,
    /// The goal.
    pub goal: String,
    /// What was measured.
    pub measured: String,
    /// Whether the goal was met.
    pub met: bool,
}

/// Everything `dashctl bench compare` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// Connections on both sides (API workers and pool; pgbench clients).
    pub concurrency: usize,
    /// Seconds per workload per side.
    pub duration_s: u64,
    /// The machine: CPUs and model.
    pub machine: String,
    /// PostgreSQL version and the settings both sides ran with.
    pub postgres: String,
    /// Where the API ran and with which pool.
    pub api: String,
    /// pgbench's protocol and threads.
    pub pgbench: String,
    /// One row per workload.
    pub rows: Vec<ComparisonRow>,
    /// Memory.
    pub rss: RssFigures,
    /// The targets.
    pub targets: Vec<Target>,
}

impl Comparison {
    /// Judges the targets from the rows and RSS figures.
    pub fn judge(&mut self) {
        let mut targets = Vec::new();
        if let Some(row) = self.rows.iter().find(|r| r.workload == "create-agent") {
            targets.push(Target {
                name: "create-agent throughput vs pgbench".into(),
                goal: format!(">= {:.0} % of pgbench TPS", MIN_CREATE_RATIO * 100.0),
                measured: format!("{:.0} %", row.ratio * 100.0),
                met: row.ratio >= MIN_CREATE_RATIO,
            });
        }
        for row in &self.rows {
            targets.push(Target {
                name: format!("{} p99 at {} connections", row.workload, self.concurrency),
                goal: format!("<= {MAX_P99_MS} ms"),
                measured: format!("{:.2} ms", row.api_p99_ms),
                met: row.api_p99_ms <= MAX_P99_MS && row.api_errors == 0,
            });
        }
        if let Some(kb) = self.rss.serve_idle_kb.or(self.rss.in_process_idle_kb) {
            let which = match self.rss.serve_idle_kb {
                Some(_) => "idle RSS of `dashctl serve`",
                None => "idle RSS (in-process API + driver)",
            };
            targets.push(Target {
                name: which.into(),
                goal: format!("<= {} MB", MAX_IDLE_RSS_KB / 1024),
                measured: format!("{:.1} MB", kb as f64 / 1024.0),
                met: kb <= MAX_IDLE_RSS_KB,
            });
        }
        self.targets = targets;
    }
}

fn mb(kb: Option<u64>) -> String {
    kb.map_or("n/a".into(), |kb| format!("{:.1} MB", kb as f64 / 1024.0))
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "machine:    {}", self.machine)?;
        writeln!(f, "postgres:   {}", self.postgres)?;
        writeln!(f, "API:        {}", self.api)?;
        writeln!(f, "pgbench:    {}", self.pgbench)?;
        writeln!(
            f,
            "load:       {} connections, {} s per workload per side",
            self.concurrency, self.duration_s
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "{:<13} | {:>9} {:>8} {:>8} {:>6} | {:>9} {:>8} {:>8} {:>6} | {:>7}",
            "workload",
            "API req/s",
            "p50 ms",
            "p99 ms",
            "errors",
            "pgbench",
            "p50 ms",
            "p99 ms",
            "failed",
            "API/pgb"
        )?;
        writeln!(f, "{}", "-".repeat(95))?;
        for r in &self.rows {
            writeln!(
                f,
                "{:<13} | {:>9.0} {:>8.2} {:>8.2} {:>6} | {:>9.0} {:>8.2} {:>8.2} {:>6} | {:>6.0} %",
                r.workload,
                r.api_per_sec,
                r.api_p50_ms,
                r.api_p99_ms,
                r.api_errors,
                r.pgbench_tps,
                r.pgbench_p50_ms,
                r.pgbench_p99_ms,
                r.pgbench_failed,
                r.ratio * 100.0
            )?;
        }
        writeln!(f)?;
        write!(
            f,
            "RSS: `dashctl serve` idle {}, peak after load {}",
            mb(self.rss.serve_idle_kb),
            mb(self.rss.serve_peak_kb)
        )?;
        if self.rss.in_process_idle_kb.is_some() {
            write!(
                f,
                "; this process (API in-process + driver) idle {}, peak {}",
                mb(self.rss.in_process_idle_kb),
                mb(self.rss.in_process_peak_kb)
            )?;
        }
        writeln!(f)?;
        writeln!(f)?;
        writeln!(f, "targets:")?;
        for t in &self.targets {
            let verdict = if t.met { "met" } else { "NOT MET" };
            writeln!(
                f,
                "  {:<40} {:<22} measured {:<10} {verdict}",
                t.name, t.goal, t.measured
            )?;
        }
        Ok(())
    }
}

/// This machine in one line: CPU count and model, architecture.
pub fn machine_description() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|r| r.trim_start_matches([' ', '\t', ':']).to_string())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{cpus} CPUs ({model}), {}", std::env::consts::ARCH)
}

/// `VmRSS` of process `pid` (this process when `None`), kB.
pub fn rss_of(pid: Option<u32>) -> Option<u64> {
    status_field(pid, "VmRSS:")
}

/// `VmHWM` (peak RSS) of this process, kB.
pub fn peak_rss_of_self() -> Option<u64> {
    status_field(None, "VmHWM:")
}

pub(crate) fn status_field(pid: Option<u32>, field: &str) -> Option<u64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/status"),
        None => "/proc/self/status".to_string(),
    };
    parse_status_field(&std::fs::read_to_string(path).ok()?, field)
}

fn parse_status_field(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_proc_status_fields() {
        let status = "Name:\tdash\nVmHWM:\t   20480 kB\nVmRSS:\t   12345 kB\n";
        assert_eq!(parse_status_field(status, "VmRSS:"), Some(12345));
        assert_eq!(parse_status_field(status, "VmHWM:"), Some(20480));
        assert_eq!(parse_status_field(status, "VmSwap:"), None);
        assert!(rss_of(None).is_some_and(|kb| kb > 0));
    }

    #[test]
    fn judges_targets() {
        let row = |workload: &str, ratio: f64, p99: f64| ComparisonRow {
            workload: workload.into(),
            api_per_sec: ratio * 1000.0,
            api_p50_ms: 1.0,
            api_p99_ms: p99,
            api_errors: 0,
            pgbench_tps: 1000.0,
            pgbench_p50_ms: 1.0,
            pgbench_p99_ms: 2.0,
            pgbench_failed: 0,
            ratio,
        };
        let mut c = Comparison {
            concurrency: 32,
            duration_s: 10,
            machine: String::new(),
            postgres: String::new(),
            api: String::new(),
            pgbench: String::new(),
            rows: vec![row("create-agent", 0.6, 12.0), row("get-agent", 0.3, 4.0)],
            rss: RssFigures {
                serve_idle_kb: Some(20_000),
                in_process_idle_kb: Some(50_000),
                ..RssFigures::default()
            },
            targets: Vec::new(),
        };
        c.judge();
        let met: Vec<bool> = c.targets.iter().map(|t| t.met).collect();
        assert_eq!(met, vec![true, false, true, true]);
        assert!(c.to_string().contains("NOT MET"));
    }
}
