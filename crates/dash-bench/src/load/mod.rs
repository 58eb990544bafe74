//! The load driver: N workers create, read and list agents through the API
//! with client-chosen ids, recording every request and every acknowledged write.
//! `dashctl bench` reports its throughput and latency; `dashctl chaos` uses its
//! acknowledgement log to measure write gaps and find lost or duplicated writes.

mod compare;
mod driver;
mod guard;
pub mod list;
pub mod pgbench;
mod report;
mod seed;
mod serve;
mod stats;

use std::time::Duration;

use dash_store::Secret;
use serde::Serialize;

pub use compare::{
    machine_description, peak_rss_of_self, rss_of, Comparison, ComparisonRow, RssFigures, Target,
};
pub use driver::{run, start, LoadHandle, Progress};
pub use guard::check_loopback;
pub use report::{Ack, LoadReport, LoadSummary, Op, OpSummary, Outcome, RequestRecord};
pub use serve::{ServeError, ServeProcess};
pub use stats::{percentile, LatencySummary};

/// Polls `{base}/ready` every 50 ms until it answers 200 (true) or a limit
/// passes (false).
pub use dash_platform::api_ready as wait_ready;

/// What each worker does in a loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mix {
    /// `POST /api/v1/agents` with a fresh client-side uuid v4.
    CreateAgent,
    /// `GET /api/v1/agents/{id}` of agents created (unmeasured) before the clock starts.
    GetAgent,
    /// A create, then a read of the same id once the create is acknowledged.
    CreateThenGet,
    /// `GET /api/v1/agents?swarm_id=S&status=pending&limit=50` of one of the
    /// seeded swarms at random; a 200 counts only with a full page.
    ListAgents,
}

impl Mix {
    /// The CLI spelling: `create`, `get`, `create-then-get`, `list`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mix::CreateAgent => "create",
            Mix::GetAgent => "get",
            Mix::CreateThenGet => "create-then-get",
            Mix::ListAgents => "list",
        }
    }
}

impl std::str::FromStr for Mix {
    type Err = String;
    fn from_str(s: &str) -> Result<Mix, String> {
        match s {
            "create" | "create-agent" => Ok(Mix::CreateAgent),
            "get" | "get-agent" => Ok(Mix::GetAgent),
            "create-then-get" => Ok(Mix::CreateThenGet),
            "list" | "list-agents" => Ok(Mix::ListAgents),
            _ => Err(format!(
                "unknown mix {s:?}: expected create, get, create-then-get or list"
            )),
        }
    }
}

/// What to do when a request answers 503 or fails in transport (refused,
/// reset, timed out): retry the same id, which is safe because creates are
/// idempotent by id. Other statuses are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per operation, the first included; 1 means no retry.
    pub max_attempts: u32,
    /// Pause before the first retry; doubled after each, up to `max_backoff`.
    pub backoff: Duration,
    /// Longest pause between attempts.
    pub max_backoff: Duration,
}

impl RetryPolicy {
    /// One attempt: every failure is reported as it happened (benchmarks).
    pub fn none() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 1,
            backoff: Duration::ZERO,
            max_backoff: Duration::ZERO,
        }
    }

    /// Retry through an outage of a few seconds: 10 ms doubling to 100 ms,
    /// at most 100 attempts (and never past the run's deadline).
    pub fn through_outages() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 100,
            backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(100),
        }
    }

    /// The pause before attempt `attempt + 1` (attempts count from 1).
    pub fn pause_after(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(16);
        self.backoff
            .saturating_mul(1 << doublings)
            .min(self.max_backoff)
    }
}

/// One load run. It stops at `duration` or after `max_requests` operations,
/// whichever comes first, or when [`LoadHandle::stop`] is called.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// The API's base URL, e.g. `http://127.0.0.1:3001`; loopback only.
    pub base_url: String,
    /// Bearer token for the mutating calls.
    pub token: Secret,
    /// Concurrent workers, each with one request in flight.
    pub concurrency: usize,
    /// Longest run (the clock starts after seeding).
    pub duration: Duration,
    /// Most operations to start (`None`: bounded by `duration` only). With
    /// `CreateThenGet` one operation is a create and its read.
    pub max_requests: Option<u64>,
    /// What each worker does.
    pub mix: Mix,
    /// Deadline of one HTTP request.
    pub request_timeout: Duration,
    /// Retries on 503 and transport errors.
    pub retry: RetryPolicy,
    /// Agents created before the clock starts for `GetAgent` (default 1,000).
    pub seed_agents: usize,
    /// The swarms `ListAgents` lists, seeded by the caller (with
    /// [`list::seed_sql`]); when empty, the driver first creates
    /// [`list::SWARMS`] swarms with [`list::HTTP_PENDING_PER_SWARM`] pending
    /// agents each through the API, unmeasured.
    pub list_swarms: Vec<uuid::Uuid>,
    /// The `task` of every created agent.
    pub task: String,
}

impl LoadConfig {
    /// A config with the defaults: 10 s, no request limit, 5 s request
    /// timeout, no retries, 1,000 seed agents.
    pub fn new(base_url: impl Into<String>, token: Secret, concurrency: usize, mix: Mix) -> Self {
        LoadConfig {
            base_url: base_url.into(),
            token,
            concurrency,
            duration: Duration::from_secs(10),
            max_requests: None,
            mix,
            request_timeout: Duration::from_secs(5),
            retry: RetryPolicy::none(),
            seed_agents: 1_000,
            list_swarms: Vec::new(),
            task: "dashctl bench agent".to_string(),
        }
    }

    /// Checks the bounds and the URL; returns the base URL without a trailing `/`.
    pub(crate) fn validate(&self) -> Result<String, LoadError> {
        let bad = |m: &str| Err(LoadError::Config(m.to_string()));
        if self.concurrency == 0 || self.concurrency > 4_096 {
            return bad("concurrency must be between 1 and 4096");
        }
        if self.duration.is_zero() || self.duration > Duration::from_secs(24 * 3600) {
            return bad("duration must be more than 0 and at most 24h");
        }
        if self.request_timeout.is_zero() {
            return bad("request timeout must be more than 0");
        }
        if self.retry.max_attempts == 0 {
            return bad("retry max_attempts must be at least 1");
        }
        if self.mix == Mix::GetAgent && self.seed_agents == 0 {
            return bad("the get mix needs at least one seed agent");
        }
        check_loopback(&self.base_url)
    }
}

/// Why a load run could not start or complete.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The base URL is not a loopback `http://` URL.
    #[error("refusing to send load to {url}: {reason} (the load driver only targets 127.0.0.1, ::1 or localhost)")]
    NotLoopback {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A bound or option is out of range.
    #[error("invalid load configuration: {0}")]
    Config(String),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// Creating the agents that the get or list mix reads failed.
    #[error("seeding {wanted} agents failed after {created}: {reason}")]
    Seed {
        /// Agents asked for.
        wanted: usize,
        /// Agents created before the failure.
        created: usize,
        /// The failing answer.
        reason: String,
    },
    /// A worker task panicked or was cancelled.
    #[error("a load worker failed: {0}")]
    Worker(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let p = RetryPolicy::through_outages();
        let pauses: Vec<u64> = (1..=6)
            .map(|a| p.pause_after(a).as_millis() as u64)
            .collect();
        assert_eq!(pauses, vec![10, 20, 40, 80, 100, 100]);
        assert_eq!(p.pause_after(u32::MAX), Duration::from_millis(100));
        assert_eq!(RetryPolicy::none().pause_after(1), Duration::ZERO);
    }

    #[test]
    fn config_bounds_are_checked() {
        let ok = LoadConfig::new(
            "http://127.0.0.1:3001/",
            Secret::new("t"),
            4,
            Mix::CreateAgent,
        );
        assert_eq!(ok.validate().unwrap(), "http://127.0.0.1:3001");
        let mut c = ok.clone();
        c.concurrency = 0;
        assert!(matches!(c.validate(), Err(LoadError::Config(_))));
        let mut c = ok.clone();
        c.duration = Duration::ZERO;
        assert!(matches!(c.validate(), Err(LoadError::Config(_))));
        let mut c = ok.clone();
        c.mix = Mix::GetAgent;
        c.seed_agents = 0;
        assert!(matches!(c.validate(), Err(LoadError::Config(_))));
        let mut c = ok;
        c.base_url = "http://10.1.2.3:3001".into();
        assert!(matches!(c.validate(), Err(LoadError::NotLoopback { .. })));
    }

    #[test]
    fn mix_names_round_trip() {
        for m in [
            Mix::CreateAgent,
            Mix::GetAgent,
            Mix::CreateThenGet,
            Mix::ListAgents,
        ] {
            assert_eq!(m.as_str().parse::<Mix>(), Ok(m));
        }
        assert_eq!("list-agents".parse::<Mix>(), Ok(Mix::ListAgents));
        assert_eq!("get-agent".parse::<Mix>(), Ok(Mix::GetAgent));
        let err = "lists".parse::<Mix>().unwrap_err();
        assert!(err.contains("or list"), "{err}");
        assert!("delete".parse::<Mix>().is_err());
    }
}
