//! What a load run records (every request, every acknowledged write) and
//! the summary it prints.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use serde::Serialize;
use uuid::Uuid;

use super::stats::LatencySummary;
use super::Mix;

/// The API call a request made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Op {
    /// `POST /api/v1/agents`.
    Create,
    /// `GET /api/v1/agents/{id}`.
    Get,
    /// `GET /api/v1/agents?swarm_id=S&status=pending&limit=50`.
    List,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Create => "create-agent",
            Op::Get => "get-agent",
            Op::List => "list-agents",
        }
    }
}

/// How one HTTP request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx answer (the status).
    Ok(u16),
    /// Any other status.
    Status(u16),
    /// A 200 list page with fewer items than asked for (the status).
    ShortPage(u16),
    /// No answer within the request timeout: the outcome of a write is unknown.
    Timeout,
    /// The connection could not be made.
    Connect,
    /// Any other transport failure (connection reset, unreadable body).
    Transport,
}

impl Outcome {
    /// A 2xx answer.
    pub fn is_ok(self) -> bool {
        matches!(self, Outcome::Ok(_))
    }

    /// Worth retrying with the same id: 503 (database unavailable) or no answer.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            Outcome::Status(503) | Outcome::Timeout | Outcome::Connect | Outcome::Transport
        )
    }

    /// The error kind for counts: `status 503`, `timeout`, `connect`, `transport`.
    pub fn kind(self) -> String {
        match self {
            Outcome::Ok(s) | Outcome::Status(s) => format!("status {s}"),
            Outcome::ShortPage(s) => format!("status {s}, short page"),
            Outcome::Timeout => "timeout".into(),
            Outcome::Connect => "connect".into(),
            Outcome::Transport => "transport".into(),
        }
    }
}

/// One HTTP request (one attempt of an operation).
#[derive(Debug, Clone, Copy)]
pub struct RequestRecord {
    /// The call made.
    pub op: Op,
    /// The agent id it carried (the swarm listed, for [`Op::List`]).
    pub id: Uuid,
    /// 1 for the first attempt, 2 for the first retry, ...
    pub attempt: u32,
    /// When the request was sent.
    pub start: Instant,
    /// When its answer (or failure) arrived.
    pub end: Instant,
    /// How it ended.
    pub outcome: Outcome,
}

impl RequestRecord {
    /// `end - start`.
    pub fn latency(&self) -> Duration {
        self.end.saturating_duration_since(self.start)
    }
}

/// A create the API acknowledged: the agent must exist from then on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    /// The agent id (client-chosen).
    pub id: Uuid,
    /// When its first attempt was sent.
    pub sent: Instant,
    /// When the acknowledging answer arrived.
    pub at: Instant,
    /// 201 (created now) or 200 (an earlier attempt had already created it).
    pub status: u16,
    /// Attempts it took.
    pub attempts: u32,
}

/// Everything a run recorded.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// When the clock started (after seeding).
    pub started: Instant,
    /// When the last worker stopped.
    pub finished: Instant,
    /// Every request, ordered by `start`.
    pub records: Vec<RequestRecord>,
    /// Every acknowledged create, ordered by `at`.
    pub acks: Vec<Ack>,
    /// Creates attempted but never acknowledged: each may or may not exist.
    pub unacked: Vec<Uuid>,
    /// Acknowledged creates whose read-back answered 404 (`CreateThenGet`).
    pub read_misses: Vec<Uuid>,
    /// Agents created before the clock started (`GetAgent`), or the swarms
    /// listed (`ListAgents`).
    pub seeded: Vec<Uuid>,
    /// The figures.
    pub summary: LoadSummary,
}

impl LoadReport {
    /// The ids of every acknowledged create, in acknowledgement order.
    pub fn acked_ids(&self) -> impl Iterator<Item = Uuid> + '_ {
        self.acks.iter().map(|a| a.id)
    }

    /// The last write acknowledged at or before `t`.
    pub fn last_ack_before(&self, t: Instant) -> Option<&Ack> {
        let n = self.acks.partition_point(|a| a.at <= t);
        n.checked_sub(1).map(|i| &self.acks[i])
    }

    /// The first write acknowledged after `t`.
    pub fn first_ack_after(&self, t: Instant) -> Option<&Ack> {
        self.acks.get(self.acks.partition_point(|a| a.at <= t))
    }

    /// Ids acknowledged more than once (the driver acknowledges each id at
    /// most once, so a non-empty answer is a driver bug).
    pub fn duplicate_acks(&self) -> Vec<Uuid> {
        let mut ids: Vec<Uuid> = self.acked_ids().collect();
        ids.sort_unstable();
        let mut dups: Vec<Uuid> = ids
            .windows(2)
            .filter(|w| w[0] == w[1])
            .map(|w| w[0])
            .collect();
        dups.dedup();
        dups
    }
}

/// Throughput and latency of one kind of call.
#[derive(Debug, Clone, Serialize)]
pub struct OpSummary {
    /// `create-agent`, `get-agent` or `list-agents`.
    pub op: Op,
    /// HTTP requests made (retries included).
    pub requests: u64,
    /// 2xx answers.
    pub ok: u64,
    /// 2xx answers per second of the run.
    pub ok_per_sec: f64,
    /// Latency of the 2xx answers.
    pub latency: LatencySummary,
}

/// The figures of a run, as printed and as `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct LoadSummary {
    /// What the workers did.
    pub mix: Mix,
    /// Workers.
    pub concurrency: usize,
    /// How long the run lasted, seconds.
    pub elapsed_s: f64,
    /// HTTP requests made (retries included).
    pub requests: u64,
    /// 2xx answers.
    pub ok: u64,
    /// 2xx answers per second.
    pub ok_per_sec: f64,
    /// Latency of the 2xx answers.
    pub latency: LatencySummary,
    /// Failed requests by kind (`status 503`, `timeout`, ...).
    pub errors: BTreeMap<String, u64>,
    /// Retries made (requests after an operation's first).
    pub retries: u64,
    /// Creates acknowledged.
    pub acked: u64,
    /// Of those, acknowledged with 200: an earlier, unanswered attempt had created it.
    pub acked_replayed: u64,
    /// Creates never acknowledged (outcome unknown).
    pub unacked: u64,
    /// Acknowledged creates whose read-back answered 404.
    pub read_misses: u64,
    /// Per call.
    pub ops: Vec<OpSummary>,
}

impl LoadSummary {
    /// Summarises the records of a run that lasted `elapsed`.
    pub(crate) fn of(
        mix: Mix,
        concurrency: usize,
        elapsed: Duration,
        records: &[RequestRecord],
        acks: &[Ack],
        unacked: usize,
        read_misses: usize,
    ) -> LoadSummary {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let mut errors = BTreeMap::new();
        let mut per_op: BTreeMap<Op, (u64, Vec<Duration>)> = BTreeMap::new();
        let mut all_ok = Vec::with_capacity(records.len());
        for r in records {
            let entry = per_op.entry(r.op).or_default();
            entry.0 += 1;
            if r.outcome.is_ok() {
                entry.1.push(r.latency());
                all_ok.push(r.latency());
            } else {
                *errors.entry(r.outcome.kind()).or_insert(0) += 1;
            }
        }
        let ops = per_op
            .into_iter()
            .map(|(op, (requests, mut lat))| OpSummary {
                op,
                requests,
                ok: lat.len() as u64,
                ok_per_sec: lat.len() as f64 / secs,
                latency: LatencySummary::of(&mut lat),
            })
            .collect();
        LoadSummary {
            mix,
            concurrency,
            elapsed_s: elapsed.as_secs_f64(),
            requests: records.len() as u64,
            ok: all_ok.len() as u64,
            ok_per_sec: all_ok.len() as f64 / secs,
            latency: LatencySummary::of(&mut all_ok),
            errors,
            retries: records.iter().filter(|r| r.attempt > 1).count() as u64,
            acked: acks.len() as u64,
            acked_replayed: acks.iter().filter(|a| a.status == 200).count() as u64,
            unacked: unacked as u64,
            read_misses: read_misses as u64,
            ops,
        }
    }
}

impl fmt::Display for LoadSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "mix {}, concurrency {}, {:.1} s: {} requests, {} ok, {:.0} ok/s",
            self.mix.as_str(),
            self.concurrency,
            self.elapsed_s,
            self.requests,
            self.ok,
            self.ok_per_sec
        )?;
        writeln!(
            f,
            "{:<14} {:>9} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8}",
            "call", "requests", "ok", "ok/s", "p50 ms", "p90 ms", "p99 ms", "max ms"
        )?;
        for o in &self.ops {
            let l = &o.latency;
            writeln!(
                f,
                "{:<14} {:>9} {:>9} {:>9.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
                o.op.name(),
                o.requests,
                o.ok,
                o.ok_per_sec,
                l.p50_ms,
                l.p90_ms,
                l.p99_ms,
                l.max_ms
            )?;
        }
        if self.errors.is_empty() {
            writeln!(f, "errors: none")?;
        } else {
            let list: Vec<String> = self
                .errors
                .iter()
                .map(|(k, n)| format!("{k}: {n}"))
                .collect();
            writeln!(f, "errors: {}", list.join(", "))?;
        }
        if self.acked > 0 || self.unacked > 0 {
            writeln!(
                f,
                "writes: {} acknowledged ({} on a retry whose first attempt had committed), {} unacknowledged, {} retries",
                self.acked, self.acked_replayed, self.unacked, self.retries
            )?;
        }
        if self.read_misses > 0 {
            writeln!(
                f,
                "READ MISSES: {} acknowledged agents answered 404",
                self.read_misses
            )?;
        }
        Ok(())
    }
}
