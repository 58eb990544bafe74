//! The runbook's post-incident "Review and optimize connection pool
//! settings": a pool size for each API process from what `diagnose`
//! observed (waiting callers, the in-use peak, acquire timeouts), the number
//! of API processes and what the server can give (`max_connections` less
//! its reserved slots and everyone else's sessions), with the arithmetic
//! shown and every assumed figure named.

use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_postgres::Client;

use super::api_client::ApiClient;
use super::metrics::ApiMetrics;
use super::session::{within, QUERY_DEADLINE};
use super::RunbookError;

/// `DATABASE_POOL_SIZE`'s default, assumed when the metrics do not say.
const DEFAULT_POOL_SIZE: usize = 20;
/// How often the API's metrics are sampled during the observation.
const SAMPLE_EVERY: Duration = Duration::from_millis(200);

/// What the server says about its connection slots.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ServerSlots {
    pub max_connections: usize,
    /// `superuser_reserved_connections` (+ `reserved_connections` from PostgreSQL 16).
    pub reserved: usize,
    /// Client sessions that are not the API's (other applications, this CLI).
    pub other_sessions: usize,
    /// Distinct client addresses among the API's sessions.
    pub api_addresses: usize,
}

/// Everything the advice is computed from (no I/O: unit-tested).
#[derive(Debug, Clone, Default)]
pub struct PoolInputs {
    /// The API's metrics, sampled over the observation.
    pub samples: Vec<ApiMetrics>,
    pub observed: Duration,
    pub server: Option<ServerSlots>,
    /// `--api-replicas`.
    pub api_replicas: Option<usize>,
}

/// The recommendation.
#[derive(Debug, Clone, Serialize)]
pub struct PoolAdvice {
    pub current: usize,
    pub recommended: usize,
    /// The arithmetic, one step a line.
    pub arithmetic: Vec<String>,
    /// Figures that were not observed, and what was assumed instead.
    pub assumptions: Vec<String>,
    /// The command that applies it (none when the size should stay).
    pub command: Option<String>,
}

impl PoolAdvice {
    pub fn render(&self) -> String {
        let mut out = String::from("\nPool size advice (per API process):\n");
        for l in &self.arithmetic {
            out.push_str(&format!("  {l}\n"));
        }
        for a in &self.assumptions {
            out.push_str(&format!("  assumed: {a}\n"));
        }
        if let Some(c) = &self.command {
            out.push_str(&format!("  $ {c}\n"));
        }
        out
    }
}

/// The advice; `None` when the API's metrics were not readable at all.
pub fn advise(i: &PoolInputs) -> Option<PoolAdvice> {
    let pooled: Vec<&ApiMetrics> = i.samples.iter().filter(|m| m.has_pool()).collect();
    if pooled.is_empty() {
        return None;
    }
    let peak = |f: fn(&ApiMetrics) -> Option<f64>| {
        pooled.iter().filter_map(|m| f(m)).fold(0.0, f64::max) as usize
    };
    let mut assumptions = Vec::new();
    let current = match peak(|m| m.pool_max_size) {
        0 => {
            assumptions.push(format!(
                "pool size {DEFAULT_POOL_SIZE} (DATABASE_POOL_SIZE's default)"
            ));
            DEFAULT_POOL_SIZE
        }
        n => n,
    };
    let in_use = peak(|m| m.pool_in_use);
    let waiting = peak(|m| m.pool_waiting);
    if pooled.iter().all(|m| m.pool_waiting.is_none()) {
        assumptions.push("no one waiting (pg_pool_waiting not reported)".into());
    }
    let timeouts = match (pooled.first(), pooled.last()) {
        (Some(a), Some(b)) => match (a.acquire_timeouts, b.acquire_timeouts) {
            (Some(x), Some(y)) => (y - x).max(0.0) as usize,
            _ => 0,
        },
        _ => 0,
    };
    let mut arithmetic = vec![format!(
        "observed {} sample(s) over {:.1}s: in use peak {in_use} of {current}, waiting peak {waiting}, acquire timeouts +{timeouts}",
        pooled.len(),
        i.observed.as_secs_f64()
    )];
    let demand = in_use + waiting;
    let wanted = demand + demand.div_ceil(4);
    arithmetic.push(format!(
        "demand = in use {in_use} + waiting {waiting} = {demand}; with 25% headroom {demand} + ceil({demand} / 4) = {wanted}"
    ));
    let pressure = waiting > 0 || timeouts > 0;
    let target = match pressure {
        true => {
            let grown = current + current.div_ceil(4);
            arithmetic.push(format!(
                "callers waited: grow to max({wanted}, {current} + ceil({current} / 4) = {grown}) = {}",
                wanted.max(grown)
            ));
            wanted.max(grown)
        }
        false => {
            arithmetic.push(format!(
                "no caller waited and no acquire timed out: {current} is enough for what was observed"
            ));
            current
        }
    };
    let replicas = match i.api_replicas {
        Some(n) => n.max(1),
        None => {
            let seen = i.server.as_ref().map_or(0, |s| s.api_addresses);
            assumptions.push(format!(
                "{} API process(es), from {seen} distinct client address(es) among the API's sessions; pass --api-replicas N when several share an address",
                seen.max(1)
            ));
            seen.max(1)
        }
    };
    let mut recommended = target;
    match &i.server {
        None => assumptions.push(
            "no limit from the server: max_connections and its sessions were not read".into(),
        ),
        Some(s) => {
            let budget = s
                .max_connections
                .saturating_sub(s.reserved + s.other_sessions);
            let per = budget / replicas;
            arithmetic.push(format!(
                "server budget = max_connections {} - reserved {} - other sessions {} = {budget}; per API process floor({budget} / {replicas}) = {per}",
                s.max_connections, s.reserved, s.other_sessions
            ));
            if target > per {
                let needed = target * replicas + s.reserved + s.other_sessions;
                arithmetic.push(format!(
                    "{target} does not fit: raise max_connections to at least {target} x {replicas} + {} + {} = {needed}, or find what holds connections (dashctl db connections)",
                    s.reserved, s.other_sessions
                ));
                recommended = per;
            }
            if current * replicas > budget {
                arithmetic.push(format!(
                    "today {replicas} x {current} = {} connections could be opened, more than the {budget} the server leaves",
                    current * replicas
                ));
            }
        }
    }
    arithmetic.push(format!("recommended pool size: {recommended}"));
    let command = (recommended != current && recommended > 0).then(|| {
        format!(
            "dashctl db pool --size {recommended}   # live, per API process; set DATABASE_POOL_SIZE={recommended} to keep it"
        )
    });
    Some(PoolAdvice {
        current,
        recommended,
        arithmetic,
        assumptions,
        command,
    })
}

/// Reads the server's connection slots from a session on the primary.
pub async fn server_slots(client: &Client) -> Result<ServerSlots, RunbookError> {
    let app = dash_store::DbSettings::default().application_name;
    let row = within(
        "read connection slots",
        QUERY_DEADLINE,
        client.query_one(
            "SELECT current_setting('max_connections')::bigint,
                    current_setting('superuser_reserved_connections')::bigint
                      + coalesce(current_setting('reserved_connections', true), '0')::bigint,
                    count(*) FILTER (WHERE application_name IS DISTINCT FROM $1),
                    count(DISTINCT coalesce(host(client_addr), 'local'))
                      FILTER (WHERE application_name = $1)
             FROM pg_stat_activity
             WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
            &[&app],
        ),
    )
    .await?;
    let n = |i: usize| row.get::<_, i64>(i).max(0) as usize;
    Ok(ServerSlots {
        max_connections: n(0),
        reserved: n(1),
        other_sessions: n(2),
        api_addresses: n(3),
    })
}

/// Samples the API's metrics every 200 ms until `until`.
pub async fn sample(api: &ApiClient, until: Instant) -> Vec<ApiMetrics> {
    let mut out = Vec::new();
    loop {
        tokio::time::sleep(SAMPLE_EVERY.min(until.saturating_duration_since(Instant::now()))).await;
        if let Ok(m) = api.metrics().await {
            out.push(m);
        }
        if Instant::now() >= until {
            return out;
        }
    }
}

#[cfg(test)]
mod tests;
