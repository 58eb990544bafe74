//! API settings: ports, bind address, tokens, limits, and the database.

use std::net::IpAddr;
use std::time::Duration;

use dash_store::config::{parse_duration, ConfigError};
use dash_store::{DbSettings, Secret};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct ApiSettings {
    /// `DASH_BIND` (default `0.0.0.0`): address both listeners bind.
    pub bind: IpAddr,
    /// `DASH_API_PORT` (default 3001; 0 picks a free port).
    pub api_port: u16,
    /// `METRICS_PORT` (default 9090; 0 picks a free port).
    pub metrics_port: u16,
    /// `DASH_API_TOKENS` (comma list) plus the lines of `DASH_API_TOKEN_FILE`: bearer tokens for mutating calls.
    pub tokens: Vec<Secret>,
    /// `DASH_AUTH_READS` (default false): also require a token for reads.
    pub auth_reads: bool,
    /// `DASH_IDEMPOTENCY_SECRET` (default none): key of the HMAC that turns a
    /// token into the caller's idempotency scope; without it each token keys
    /// its own HMAC. Setting or changing it stops older keys from replaying.
    pub idempotency_secret: Option<Secret>,
    /// `DASH_SHUTDOWN_TIMEOUT` (default 10s): longest drain of in-flight requests on shutdown.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// `DASH_REQUEST_TIMEOUT` (default 15s): longest any non-streaming request may take.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// `DASH_LOG_FORMAT` (default `text`; `json` for JSON lines).
    pub log_format: String,
    /// `DASH_HEADER_READ_TIMEOUT` (default 10s): longest a client may take to send a request's head, from its first byte.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// `DASH_KEEPALIVE_TIMEOUT` (default 60s): an idle connection (no request in flight, no bytes of a new one) is closed after this.
    #[serde(with = "humantime_serde")]
    pub keepalive_timeout: Duration,
    /// `DASH_MAX_CONNECTIONS` (default 16384): most open API connections; lowered to fit the descriptor limit. Past it the oldest idle connection is closed, or, when none is idle, the new one is answered 503.
    pub max_connections: usize,
    /// `DASH_MAX_EVENT_STREAMS` (default 10000): most open event streams; at most three quarters of the connections. Past it 503.
    pub max_event_streams: usize,
    /// `DASH_ETCD_ENDPOINTS` (comma list, default none): etcd client URLs of
    /// the node agents' cluster; the dashboard reads the leader, members,
    /// sync set and HA history there. Without it the dashboard shows what
    /// the pool sees (its hosts, the primary, `pg_stat_replication`).
    pub etcd: Vec<String>,
    /// `DASH_CLUSTER` (default `dash`, as `dashctl node`): the agents' etcd prefix `/dash/<cluster>/`.
    pub cluster: String,
    /// `DASH_SPAWN_RATE` (default 100): agents `POST /agents` may spawn per second in this process; past it (and the burst), 429 with `Retry-After`. 0 turns the limit off.
    pub spawn_rate: f64,
    /// `DASH_SPAWN_BURST` (default 200): spawns allowed at once before the rate applies.
    pub spawn_burst: u32,
    pub database: DbSettings,
}

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            bind: IpAddr::from([0, 0, 0, 0]),
            api_port: 3001,
            metrics_port: 9090,
            tokens: Vec::new(),
            auth_reads: false,
            idempotency_secret: None,
            shutdown_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(15),
            log_format: "text".into(),
            header_read_timeout: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(60),
            max_connections: 16_384,
            max_event_streams: 10_000,
            etcd: Vec::new(),
            cluster: "dash".into(),
            spawn_rate: 100.0,
            spawn_burst: 200,
            database: DbSettings::default(),
        }
    }
}

fn bad(name: &'static str, expected: &'static str, value: &str) -> ConfigError {
    ConfigError::BadValue {
        name,
        expected,
        value: value.to_string(),
    }
}

impl ApiSettings {
    /// Reads every variable through `get` (the environment, or a map in tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut s = ApiSettings {
            database: DbSettings::from_lookup(&get)?,
            ..ApiSettings::default()
        };
        let port = |name: &'static str, v: String| {
            v.trim()
                .parse::<u16>()
                .map_err(|_| bad(name, "a port number from 0 to 65535", &v))
        };
        if let Some(v) = get("DASH_BIND") {
            s.bind = v
                .trim()
                .parse()
                .map_err(|_| bad("DASH_BIND", "an IP address", &v))?;
        }
        if let Some(v) = get("DASH_API_PORT") {
            s.api_port = port("DASH_API_PORT", v)?;
        }
        if let Some(v) = get("METRICS_PORT") {
            s.metrics_port = port("METRICS_PORT", v)?;
        }
        if let Some(v) = get("DASH_API_TOKENS") {
            s.tokens.extend(
                v.split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(Secret::new),
            );
        }
        if let Some(path) = get("DASH_API_TOKEN_FILE") {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                bad(
                    "DASH_API_TOKEN_FILE",
                    "a readable file",
                    &format!("{path}: {e}"),
                )
            })?;
            s.tokens.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|t| !t.is_empty() && !t.starts_with('#'))
                    .map(Secret::new),
            );
        }
        if let Some(v) = get("DASH_AUTH_READS") {
            s.auth_reads = match v.trim() {
                "1" | "true" | "yes" => true,
                "0" | "false" | "no" | "" => false,
                _ => return Err(bad("DASH_AUTH_READS", "true or false", &v)),
            };
        }
        if let Some(v) = get("DASH_IDEMPOTENCY_SECRET").filter(|v| !v.trim().is_empty()) {
            s.idempotency_secret = Some(Secret::new(v.trim()));
        }
        if let Some(v) = get("DASH_SHUTDOWN_TIMEOUT") {
            s.shutdown_timeout = parse_duration("DASH_SHUTDOWN_TIMEOUT", &v)?;
        }
        if let Some(v) = get("DASH_REQUEST_TIMEOUT") {
            s.request_timeout = parse_duration("DASH_REQUEST_TIMEOUT", &v)?;
        }
        let timeout = |name: &'static str, v: String| match parse_duration(name, &v)? {
            d if d.is_zero() => Err(bad(name, "a duration above 0", &v)),
            d => Ok(d),
        };
        if let Some(v) = get("DASH_HEADER_READ_TIMEOUT") {
            s.header_read_timeout = timeout("DASH_HEADER_READ_TIMEOUT", v)?;
        }
        if let Some(v) = get("DASH_KEEPALIVE_TIMEOUT") {
            s.keepalive_timeout = timeout("DASH_KEEPALIVE_TIMEOUT", v)?;
        }
        let count = |name: &'static str, v: String| {
            v.trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| bad(name, "a whole number above 0", &v))
        };
        if let Some(v) = get("DASH_MAX_CONNECTIONS") {
            s.max_connections = count("DASH_MAX_CONNECTIONS", v)?;
        }
        if let Some(v) = get("DASH_MAX_EVENT_STREAMS") {
            s.max_event_streams = count("DASH_MAX_EVENT_STREAMS", v)?;
        }
        if let Some(v) = get("DASH_SPAWN_RATE") {
            s.spawn_rate = (v.trim().parse::<f64>().ok())
                .filter(|r| r.is_finite() && *r >= 0.0)
                .ok_or_else(|| {
                    bad(
                        "DASH_SPAWN_RATE",
                        "a number of spawns per second, 0 for no limit",
                        &v,
                    )
                })?;
        }
        if let Some(v) = get("DASH_SPAWN_BURST") {
            s.spawn_burst = count("DASH_SPAWN_BURST", v)?.min(u32::MAX as usize) as u32;
        }
        if let Some(v) = get("DASH_ETCD_ENDPOINTS") {
            s.etcd = (v.split(',').map(str::trim))
                .filter(|e| !e.is_empty())
                .map(str::to_string)
                .collect();
        }
        if let Some(v) = get("DASH_CLUSTER") {
            match v.trim() {
                c if c.is_empty() || c.contains('/') => {
                    return Err(bad("DASH_CLUSTER", "a name without '/'", &v))
                }
                c => s.cluster = c.to_string(),
            }
        }
        if let Some(v) = get("DASH_LOG_FORMAT") {
            match v.trim() {
                "text" | "json" => s.log_format = v.trim().to_string(),
                _ => return Err(bad("DASH_LOG_FORMAT", "text or json", &v)),
            }
        }
        Ok(s)
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pairs: &[(&str, &str)]) -> Result<ApiSettings, ConfigError> {
        ApiSettings::from_lookup(|k| {
            (pairs.iter())
                .find(|(name, _)| *name == k)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn etcd_endpoints_and_cluster_default_to_none_and_dash() {
        let s = with(&[]).unwrap();
        assert!(s.etcd.is_empty());
        assert_eq!(s.cluster, "dash");
        let s = with(&[
            ("DASH_ETCD_ENDPOINTS", " http://a:2379, ,http://b:2379 "),
            ("DASH_CLUSTER", "prod"),
        ])
        .unwrap();
        assert_eq!(s.etcd, ["http://a:2379", "http://b:2379"]);
        assert_eq!(s.cluster, "prod");
        assert!(with(&[("DASH_CLUSTER", "a/b")]).is_err());
        assert!(with(&[("DASH_CLUSTER", " ")]).is_err());
    }
}
