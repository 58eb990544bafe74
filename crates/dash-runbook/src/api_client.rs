//! The running API, over HTTP: its metrics, its health endpoints, and the
//! authenticated admin endpoints (live pool size, read-only maintenance mode).

use std::time::{Duration, Instant};

use reqwest::Method;
use serde::Serialize;
use serde_json::{json, Value};

use super::metrics::ApiMetrics;
use super::{ApiEndpoint, RunbookError};

/// Deadline of one HTTP call.
const HTTP_DEADLINE: Duration = Duration::from_secs(10);

/// One HTTP answer: status, body (JSON when it parses) and latency.
#[derive(Debug, Clone, Serialize)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub millis: f64,
}

impl Answer {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// `error.code` of a Dash error body, if any.
    pub fn error_code(&self) -> Option<&str> {
        self.body.pointer("/error/code").and_then(Value::as_str)
    }

    /// A short description for reports: `503 maintenance: writes are paused`.
    pub fn describe(&self) -> String {
        match (self.error_code(), self.body.pointer("/error/message")) {
            (Some(code), Some(msg)) => format!("{} {code}: {}", self.status, text(msg)),
            _ => format!("{} {}", self.status, text(&self.body)),
        }
    }
}

fn text(v: &Value) -> String {
    let s = v.as_str().map_or_else(|| v.to_string(), str::to_string);
    s.chars().take(200).collect()
}

/// The maintenance state as `GET /api/v1/admin/maintenance` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct Maintenance {
    pub enabled: bool,
    pub reason: Option<String>,
    /// The pool's connections checked out right now.
    pub pool_in_use: Option<u64>,
}

/// A client for one API process.
#[derive(Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    pub endpoint: ApiEndpoint,
}

impl ApiClient {
    pub fn new(endpoint: ApiEndpoint) -> ApiClient {
        let http = reqwest::Client::builder()
            .timeout(HTTP_DEADLINE)
            .connect_timeout(Duration::from_secs(3))
            .build()
            .expect("a plain HTTP client always builds");
        ApiClient { http, endpoint }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.endpoint.api_url)
    }

    fn api_error(&self, url: &str, message: impl Into<String>) -> RunbookError {
        RunbookError::Api {
            url: url.to_string(),
            message: message.into(),
        }
    }

    /// Sends one request; `auth` adds the bearer token (an error if there is none).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        auth: bool,
    ) -> Result<Answer, RunbookError> {
        let url = match path.starts_with("http") {
            true => path.to_string(),
            false => self.url(path),
        };
        let mut req = self.http.request(method, &url);
        if auth {
            let token = self.endpoint.token.as_ref().ok_or_else(|| {
                RunbookError::Usage(
                    "this needs an API token: pass --token or set DASH_API_TOKEN".into(),
                )
            })?;
            req = req
                .bearer_auth(token.expose())
                .header(ACTOR_HEADER, actor());
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let started = Instant::now();
        let resp = req
            .send()
            .await
            .map_err(|e| self.api_error(&url, describe_reqwest(&e)))?;
        let status = resp.status().as_u16();
        let raw = resp
            .text()
            .await
            .map_err(|e| self.api_error(&url, describe_reqwest(&e)))?;
        let body = match raw.is_empty() {
            true => Value::Null,
            false => serde_json::from_str(&raw).unwrap_or(Value::String(raw)),
        };
        Ok(Answer {
            status,
            body,
            millis: started.elapsed().as_secs_f64() * 1000.0,
        })
    }

    /// [`ApiClient::call`] with the token when there is one (reads may not
    /// need it; a write without one answers 401 and says so).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Answer, RunbookError> {
        let auth = self.endpoint.token.is_some();
        self.call(method, path, body, auth).await
    }

    /// Opens a long-lived GET such as `/api/v1/events/stream` (with the token
    /// when there is one): a connect deadline but none on the body, which
    /// may stream for hours. A non-2xx answer is an error naming it.
    pub async fn open_stream(&self, path: &str) -> Result<reqwest::Response, RunbookError> {
        let url = self.url(path);
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .build()
            .map_err(|e| self.api_error(&url, describe_reqwest(&e)))?;
        let mut req = http.get(&url).header("accept", "text/event-stream");
        if let Some(token) = &self.endpoint.token {
            req = req.bearer_auth(token.expose());
        }
        let resp = (req.send().await).map_err(|e| self.api_error(&url, describe_reqwest(&e)))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let raw = resp.text().await.unwrap_or_default();
        let body = serde_json::from_str(&raw).unwrap_or(Value::String(raw));
        let answer = Answer {
            status,
            body,
            millis: 0.0,
        };
        Err(self.api_error(&url, answer.describe()))
    }

    /// An authenticated call that must succeed (2xx).
    pub(crate) async fn admin(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, RunbookError> {
        let a = self.call(method, path, body, true).await?;
        match a.status {
            200..=299 => Ok(a.body),
            401 => Err(self.api_error(
                &self.url(path),
                format!("token rejected ({})", a.describe()),
            )),
            _ => Err(self.api_error(&self.url(path), a.describe())),
        }
    }

    /// Scrapes the metrics endpoint.
    pub async fn metrics(&self) -> Result<ApiMetrics, RunbookError> {
        Ok(ApiMetrics::parse(&self.metrics_text().await?))
    }

    /// The raw metrics exposition.
    pub async fn metrics_text(&self) -> Result<String, RunbookError> {
        let url = &self.endpoint.metrics_url;
        let resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| self.api_error(url, describe_reqwest(&e)))?;
        if !resp.status().is_success() {
            return Err(self.api_error(url, format!("answered {}", resp.status())));
        }
        resp.text()
            .await
            .map_err(|e| self.api_error(url, describe_reqwest(&e)))
    }

    /// `GET /api/v1/admin/pool`: the pool's max size and usage.
    pub async fn pool(&self) -> Result<Value, RunbookError> {
        self.admin(Method::GET, "/api/v1/admin/pool", None).await
    }

    /// `PUT /api/v1/admin/pool`; returns the previous max size.
    pub async fn resize_pool(&self, size: usize) -> Result<Option<u64>, RunbookError> {
        let v = self
            .admin(
                Method::PUT,
                "/api/v1/admin/pool",
                Some(json!({ "size": size })),
            )
            .await?;
        Ok(v.get("previous_max_size").and_then(Value::as_u64))
    }

    /// `GET /api/v1/admin/maintenance`.
    pub async fn maintenance(&self) -> Result<Maintenance, RunbookError> {
        let v = self
            .admin(Method::GET, "/api/v1/admin/maintenance", None)
            .await?;
        Ok(Maintenance {
            enabled: v.get("enabled").and_then(Value::as_bool).unwrap_or(false),
            reason: v.get("reason").and_then(Value::as_str).map(str::to_string),
            pool_in_use: v.pointer("/pool/in_use").and_then(Value::as_u64),
        })
    }

    /// `PUT /api/v1/admin/maintenance`.
    pub async fn set_maintenance(&self, enabled: bool, reason: &str) -> Result<(), RunbookError> {
        self.admin(
            Method::PUT,
            "/api/v1/admin/maintenance",
            Some(json!({ "enabled": enabled, "reason": reason })),
        )
        .await
        .map(drop)
    }
}

/// Names who made an admin change in the API's change log.
const ACTOR_HEADER: &str = "x-dash-actor";

/// `dashctl by USER on HOST`, for the API's change log.
fn actor() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "?".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let text = format!("dashctl by {user} on {}", host.trim());
    text.chars().filter(|c| !c.is_control()).take(100).collect()
}

/// reqwest's error with its causes (its Display alone says little).
fn describe_reqwest(e: &reqwest::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let t = s.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        source = s.source();
    }
    parts.join(": ")
}
