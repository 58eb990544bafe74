//! Database settings: the `DATABASE_*` contract, `DATABASE_URL`, and the
//! timeouts that keep every database call bounded.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One database endpoint, `host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// A secret that cannot be printed by accident: `Debug` and `Display` mask it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself; call only where it is handed to the database driver.
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "(none)"
        } else {
            "********"
        })
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret(s.to_string())
    }
}

/// Masked, like `Debug`: what `dashctl config check` prints.
impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{self}"))
    }
}

/// Serde for a secret kept in a private file that must read it back
/// (`#[serde(with = "dash_store::config::secret_in_file")]`): the value
/// itself, as a plain string.
pub mod secret_in_file {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::Secret;

    pub fn serialize<S: Serializer>(secret: &Secret, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(secret.expose())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

/// Errors in database configuration.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("DATABASE_HOST is empty")]
    NoHosts,
    #[error("invalid port in {0:?}: expected a number from 1 to 65535")]
    BadPort(String),
    #[error("invalid DATABASE_URL: {0}")]
    BadUrl(String),
    #[error("{name} must be {expected}, got {value:?}")]
    BadValue {
        name: &'static str,
        expected: &'static str,
        value: String,
    },
}

/// Everything the store needs to reach PostgreSQL.
#[derive(Debug, Clone, Serialize)]
pub struct DbSettings {
    /// `DATABASE_HOST` (default `localhost`): candidates; Dash writes to whichever is the writable primary.
    pub hosts: Vec<HostPort>,
    /// `DATABASE_NAME` (default `dashctl`).
    pub dbname: String,
    /// `DATABASE_USER` (default `dash_user`).
    pub user: String,
    /// `DATABASE_PASSWORD` (default none). Never logged.
    pub password: Secret,
    /// `DATABASE_POOL_SIZE` (default 20): maximum pool connections.
    pub pool_size: usize,
    /// `DATABASE_CONNECT_TIMEOUT` (default 1s): one host's TCP connect, startup handshake and read-write check together.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// `DATABASE_ACQUIRE_TIMEOUT` (default 1s): longest wait for a pool connection before answering 503.
    #[serde(with = "humantime_serde")]
    pub acquire_timeout: Duration,
    /// `DATABASE_QUERY_TIMEOUT` (default 5s): client-side deadline for one database call.
    #[serde(with = "humantime_serde")]
    pub query_timeout: Duration,
    /// `DATABASE_STATEMENT_TIMEOUT` (default 4s): server-side `statement_timeout` of the API's sessions.
    #[serde(with = "humantime_serde")]
    pub statement_timeout: Duration,
    /// `DATABASE_IDLE_IN_TRANSACTION_TIMEOUT` (default 10s): server-side `idle_in_transaction_session_timeout`.
    #[serde(with = "humantime_serde")]
    pub idle_in_transaction_timeout: Duration,
    /// `application_name` the API's sessions carry (default `dash-api`).
    pub application_name: String,
}

impl Default for DbSettings {
    fn default() -> Self {
        DbSettings {
            hosts: vec![HostPort {
                host: "localhost".into(),
                port: 5432,
            }],
            dbname: "dash".into(),
            user: "dash_user".into(),
            password: Secret::default(),
            pool_size: 20,
            connect_timeout: Duration::from_secs(1),
            acquire_timeout: Duration::from_secs(1),
            query_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(4),
            idle_in_transaction_timeout: Duration::from_secs(10),
            application_name: "dash-api".into(),
        }
    }
}

/// Parses `DATABASE_HOST`: `a,b:5433,[::1]:5434`; hosts without a port get `default_port`.
pub fn parse_hosts(list: &str, default_port: u16) -> Result<Vec<HostPort>, ConfigError> {
    let mut out = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        out.push(parse_host(item, default_port)?);
    }
    if out.is_empty() {
        return Err(ConfigError::NoHosts);
    }
    Ok(out)
}

fn parse_host(item: &str, default_port: u16) -> Result<HostPort, ConfigError> {
    let port = |p: &str| {
        p.parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| ConfigError::BadPort(item.to_string()))
    };
    if let Some(rest) = item.strip_prefix('[') {
        let (host, tail) = rest
            .split_once(']')
            .ok_or_else(|| ConfigError::BadPort(item.to_string()))?;
        let port = match tail.strip_prefix(':') {
            Some(p) => port(p)?,
            None if tail.is_empty() => default_port,
            None => return Err(ConfigError::BadPort(item.to_string())),
        };
        return Ok(HostPort {
            host: host.to_string(),
            port,
        });
    }
    match item.rsplit_once(':') {
        // A bare IPv6 address has several colons and no port.
        Some((h, _)) if h.contains(':') => Ok(HostPort {
            host: item.to_string(),
            port: default_port,
        }),
        Some((h, p)) => Ok(HostPort {
            host: h.to_string(),
            port: port(p)?,
        }),
        None => Ok(HostPort {
            host: item.to_string(),
            port: default_port,
        }),
    }
}

impl DbSettings {
    /// Reads the `DATABASE_*` variables through `get` (the environment in
    /// production, a map in tests). `DATABASE_URL` overrides the others.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut s = DbSettings::default();
        let port = match get("DATABASE_PORT") {
            Some(p) => p
                .trim()
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or(ConfigError::BadPort(p))?,
            None => 5432,
        };
        if let Some(h) = get("DATABASE_HOST") {
            s.hosts = parse_hosts(&h, port)?;
        } else {
            s.hosts[0].port = port;
        }
        if let Some(v) = get("DATABASE_NAME") {
            s.dbname = v;
        }
        if let Some(v) = get("DATABASE_USER") {
            s.user = v;
        }
        if let Some(v) = get("DATABASE_PASSWORD") {
            s.password = Secret::new(v);
        }
        if let Some(v) = get("DATABASE_POOL_SIZE") {
            s.pool_size = parse_pool_size(&v)?;
        }
        let durations: [(&'static str, &mut Duration); 5] = [
            ("DATABASE_CONNECT_TIMEOUT", &mut s.connect_timeout),
            ("DATABASE_ACQUIRE_TIMEOUT", &mut s.acquire_timeout),
            ("DATABASE_QUERY_TIMEOUT", &mut s.query_timeout),
            ("DATABASE_STATEMENT_TIMEOUT", &mut s.statement_timeout),
            (
                "DATABASE_IDLE_IN_TRANSACTION_TIMEOUT",
                &mut s.idle_in_transaction_timeout,
            ),
        ];
        for (name, slot) in durations {
            if let Some(v) = get(name) {
                *slot = parse_duration(name, &v)?;
            }
        }
        if let Some(url) = get("DATABASE_URL").filter(|u| !u.trim().is_empty()) {
            s.apply_url(&url)?;
        }
        Ok(s)
    }

    /// Applies a libpq URI (`postgresql://user:pass@h1:p1,h2:p2/db?connect_timeout=2`).
    pub fn apply_url(&mut self, raw: &str) -> Result<(), ConfigError> {
        let bad = |m: &str| ConfigError::BadUrl(m.to_string());
        let rest = raw
            .strip_prefix("postgresql://")
            .or_else(|| raw.strip_prefix("postgres://"))
            .ok_or_else(|| bad("it must start with postgresql:// or postgres://"))?;
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let hosts = match authority.rsplit_once('@') {
            Some((userinfo, hosts)) => {
                let (user, pass) = match userinfo.split_once(':') {
                    Some((u, p)) => (u, Some(p)),
                    None => (userinfo, None),
                };
                if !user.is_empty() {
                    self.user = percent_decode(user).map_err(|e| bad(&e))?;
                }
                if let Some(p) = pass {
                    self.password = Secret::new(percent_decode(p).map_err(|e| bad(&e))?);
                }
                hosts
            }
            None => authority,
        };
        if !hosts.is_empty() {
            self.hosts = parse_hosts(hosts, 5432)?;
        }
        let (db, query) = match path.split_once('?') {
            Some((d, q)) => (d, q),
            None => (path, ""),
        };
        let db = db.trim_start_matches('/');
        if !db.is_empty() {
            self.dbname = percent_decode(db).map_err(|e| bad(&e))?;
        }
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "connect_timeout" => {
                    let secs: u64 = v
                        .parse()
                        .map_err(|_| bad("connect_timeout must be whole seconds"))?;
                    self.connect_timeout = Duration::from_secs(secs.max(1));
                }
                "application_name" => {
                    self.application_name = percent_decode(v).map_err(|e| bad(&e))?
                }
                "user" => self.user = percent_decode(v).map_err(|e| bad(&e))?,
                "password" => self.password = Secret::new(percent_decode(v).map_err(|e| bad(&e))?),
                "dbname" => self.dbname = percent_decode(v).map_err(|e| bad(&e))?,
                // Dash always targets the writable primary and manages these itself.
                "target_session_attrs" | "sslmode" => {}
                other => return Err(bad(&format!("unsupported parameter {other:?}"))),
            }
        }
        Ok(())
    }
}

fn parse_pool_size(v: &str) -> Result<usize, ConfigError> {
    v.trim()
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=1000).contains(n))
        .ok_or(ConfigError::BadValue {
            name: "DATABASE_POOL_SIZE",
            expected: "a whole number from 1 to 1000",
            value: v.to_string(),
        })
}

/// Parses a humantime duration (`500ms`, `2s`, `1m`), or bare seconds.
pub fn parse_duration(name: &'static str, v: &str) -> Result<Duration, ConfigError> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(v).map_err(|_| ConfigError::BadValue {
        name,
        expected: "a duration such as 500ms, 2s or 1m",
        value: v.to_string(),
    })
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad percent-escape at byte {i}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "percent-escapes do not form UTF-8".to_string())
}

#[cfg(test)]
mod tests;
