//! The API's live knobs, through its authenticated admin endpoints: the
//! pool's maximum size (scenario 4, no restart) and read-only maintenance
//! mode (scenario 2's "stop all writes").

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use super::api_client::ApiClient;
use super::confirm::confirm;
use super::{exit, RunbookError, Target};

/// `dashctl db pool`.
#[derive(Debug, Clone, Serialize)]
pub struct PoolReport {
    pub api_url: String,
    /// The max size before the change.
    pub previous_max_size: Option<u64>,
    /// The size asked for (`None`: only shown).
    pub requested: Option<usize>,
    /// `pg_pool_max_size` read back from the metrics after the change.
    pub metric_max_size: Option<f64>,
    /// The pool as `GET /api/v1/admin/pool` reports it now.
    pub pool: Value,
}

impl PoolReport {
    /// The metrics show the requested size (or nothing was requested).
    pub fn confirmed(&self) -> bool {
        match self.requested {
            Some(n) => self.metric_max_size == Some(n as f64),
            None => true,
        }
    }

    pub fn exit_code(&self) -> u8 {
        match self.confirmed() {
            true => exit::OK,
            false => exit::CHECK_FAILED,
        }
    }

    pub fn render(&self) -> String {
        let p = |k: &str| {
            self.pool
                .pointer(&format!("/pool/{k}"))
                .map_or("-".into(), Value::to_string)
        };
        let mut out = format!(
            "API pool at {}: max {} size {} idle {} in use {} waiting {} (primary {})\n",
            self.api_url,
            p("max_size"),
            p("size"),
            p("idle"),
            p("in_use"),
            p("waiting"),
            self.pool
                .get("primary")
                .and_then(Value::as_str)
                .unwrap_or("-"),
        );
        if let Some(n) = self.requested {
            out.push_str(&format!(
                "max size {} -> {n}; pg_pool_max_size now reads {}: {}\n",
                self.previous_max_size.map_or("?".into(), |v| v.to_string()),
                self.metric_max_size.map_or("?".into(), |v| v.to_string()),
                if self.confirmed() {
                    "confirmed"
                } else {
                    "NOT CONFIRMED"
                }
            ));
        }
        out
    }
}

/// Shows the pool, and with `size` changes its maximum live.
pub async fn pool(
    target: &Target,
    size: Option<usize>,
    yes: bool,
) -> Result<PoolReport, RunbookError> {
    let api = ApiClient::new(target.api.clone());
    let before = api.pool().await?;
    let current = before.pointer("/pool/max_size").and_then(Value::as_u64);
    let Some(size) = size else {
        return Ok(PoolReport {
            api_url: target.api.api_url.clone(),
            previous_max_size: current,
            requested: None,
            metric_max_size: None,
            pool: before,
        });
    };
    if !(1..=1000).contains(&size) {
        return Err(RunbookError::Usage(format!(
            "--size must be from 1 to 1000 (got {size})"
        )));
    }
    confirm(
        &format!("change the API's pool size to {size}"),
        &format!(
            "Change the pool of the API at {} from max {} to max {size} connections (live, no restart)?",
            target.api.api_url,
            current.map_or("?".into(), |c| c.to_string())
        ),
        yes,
    )?;
    let previous = api.resize_pool(size).await?;
    // The gauge is refreshed on every scrape; allow one retry for a slow scrape.
    let mut metric = None;
    for _ in 0..3 {
        metric = api.metrics().await.ok().and_then(|m| m.pool_max_size);
        if metric == Some(size as f64) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(PoolReport {
        api_url: target.api.api_url.clone(),
        previous_max_size: previous.or(current),
        requested: Some(size),
        metric_max_size: metric,
        pool: api.pool().await?,
    })
}

/// `dashctl db maintenance`.
#[derive(Debug, Clone, Serialize)]
pub struct MaintenanceReport {
    pub api_url: String,
    pub enabled: bool,
    pub reason: Option<String>,
    pub changed: bool,
}

impl MaintenanceReport {
    pub fn render(&self) -> String {
        format!(
            "maintenance mode at {}: {}{}{}\n",
            self.api_url,
            if self.enabled {
                "ON (writes answer 503 maintenance; reads work)"
            } else {
                "off"
            },
            self.reason
                .as_ref()
                .map(|r| format!(", reason: {r}"))
                .unwrap_or_default(),
            if self.changed { " (changed now)" } else { "" },
        )
    }
}

/// Shows maintenance mode, and with `enable` turns it on or off.
pub async fn maintenance(
    target: &Target,
    enable: Option<bool>,
    reason: &str,
    yes: bool,
) -> Result<MaintenanceReport, RunbookError> {
    let api = ApiClient::new(target.api.clone());
    let now = api.maintenance().await?;
    let report = |m: super::api_client::Maintenance, changed| MaintenanceReport {
        api_url: target.api.api_url.clone(),
        enabled: m.enabled,
        reason: m.reason,
        changed,
    };
    let Some(enable) = enable.filter(|e| *e != now.enabled) else {
        return Ok(report(now, false));
    };
    let (action, question) = match enable {
        true => (
            "turn on maintenance mode",
            format!(
                "Put the API at {} into read-only maintenance mode? Every write will answer 503.",
                target.api.api_url
            ),
        ),
        false => (
            "turn off maintenance mode",
            format!(
                "Lift maintenance mode on the API at {}? Writes resume.",
                target.api.api_url
            ),
        ),
    };
    confirm(action, &question, yes)?;
    api.set_maintenance(enable, reason).await?;
    Ok(report(api.maintenance().await?, true))
}
