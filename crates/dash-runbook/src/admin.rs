//! The API's live knobs, through its authenticated admin endpoints: the
//! pool's maximum size (scenario 4, no restart) and read-only maintenance
//! mode (scenario 2's "stop all writes"). Both are cluster-wide: after a
//! change, every live API process is waited for ([`follow`]).

pub mod follow;

use std::time::Duration;

use reqwest::Method;
use serde::Serialize;
use serde_json::{json, Value};

use super::api_client::ApiClient;
use super::confirm::confirm;
use super::{exit, RunbookError, Target};
pub use follow::{ensure_writes_stopped, ClusterView, Followed, FOLLOW_WAIT};

const POOL: &str = "/api/v1/admin/pool";
const MAINTENANCE: &str = "/api/v1/admin/maintenance";

/// A change's answer: whether it reached the settings row every process
/// follows (`false`: it applies only on the process that answered).
fn cluster_wide(answer: &Value) -> bool {
    answer.get("cluster_wide").and_then(Value::as_bool) == Some(true)
}

const NOT_CLUSTER_WIDE: &str = "NOT CLUSTER-WIDE: only the API process that answered applied it \
    (it cannot reach the database); the others follow once it can\n";

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
    /// Whether the change reached the cluster setting (`None`: no change).
    pub cluster_wide: Option<bool>,
    /// Every API instance and what it applied (waited for after a change).
    pub followed: Followed,
}

impl PoolReport {
    /// The metrics show the requested size, and every live instance
    /// follows it (or nothing was requested).
    pub fn confirmed(&self) -> bool {
        match self.requested {
            Some(n) => {
                self.metric_max_size == Some(n as f64)
                    && self.cluster_wide == Some(true)
                    && self.followed.all
            }
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
                if self.metric_max_size == Some(n as f64) {
                    "confirmed"
                } else {
                    "NOT CONFIRMED"
                }
            ));
            if self.cluster_wide == Some(false) {
                out.push_str(NOT_CLUSTER_WIDE);
            }
        }
        out.push_str(&self.followed.render());
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
            followed: shown(&before),
            pool: before,
            cluster_wide: None,
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
            "Change the pool of every API process (through {}) from max {} to max {size} connections (live, no restart)?",
            target.api.api_url,
            current.map_or("?".into(), |c| c.to_string())
        ),
        yes,
    )?;
    let answer = api
        .admin(Method::PUT, POOL, Some(json!({ "size": size })))
        .await?;
    let previous = answer.get("previous_max_size").and_then(Value::as_u64);
    let followed = follow_change(
        &api,
        POOL,
        &answer,
        |v| v.cluster_pool_size() == Some(size as i64),
        |i| i.applied && i.pool_size == Some(size as i64),
    )
    .await?;
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
        cluster_wide: Some(cluster_wide(&answer)),
        followed,
    })
}

/// A view shown without waiting.
fn shown(answer: &Value) -> Followed {
    let view = ClusterView::parse(answer);
    let all = view.live().all(|i| i.applied);
    Followed {
        view,
        all,
        waited_secs: 0.0,
    }
}

/// After a change: waits for every live instance, unless the change did not
/// reach the cluster setting (then there is nothing for the others to follow).
async fn follow_change(
    api: &ApiClient,
    path: &str,
    answer: &Value,
    cluster_ok: impl Fn(&ClusterView) -> bool,
    instance_ok: impl Fn(&follow::InstanceState) -> bool,
) -> Result<Followed, RunbookError> {
    match cluster_wide(answer) {
        true => follow::wait_until_followed(api, path, FOLLOW_WAIT, cluster_ok, instance_ok).await,
        false => Ok(Followed {
            all: false,
            ..shown(&api.admin(Method::GET, path, None).await?)
        }),
    }
}

/// `dashctl db maintenance`.
#[derive(Debug, Clone, Serialize)]
pub struct MaintenanceReport {
    pub api_url: String,
    pub enabled: bool,
    pub reason: Option<String>,
    pub changed: bool,
    /// Whether the change reached the cluster setting (`None`: no change).
    pub cluster_wide: Option<bool>,
    /// Every API instance and what it applied (waited for after a change).
    pub followed: Followed,
}

impl MaintenanceReport {
    /// 0, or 3 when a change did not reach every live API process.
    pub fn exit_code(&self) -> u8 {
        match self.changed && (self.cluster_wide != Some(true) || !self.followed.all) {
            true => exit::CHECK_FAILED,
            false => exit::OK,
        }
    }

    pub fn render(&self) -> String {
        let mut out = format!(
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
        );
        if self.cluster_wide == Some(false) {
            out.push_str(NOT_CLUSTER_WIDE);
        }
        out.push_str(&self.followed.render());
        out
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
    let now = api.admin(Method::GET, MAINTENANCE, None).await?;
    let report = |m: &Value, changed, cluster_wide, followed| MaintenanceReport {
        api_url: target.api.api_url.clone(),
        enabled: m.get("enabled").and_then(Value::as_bool) == Some(true),
        reason: m.get("reason").and_then(Value::as_str).map(str::to_string),
        changed,
        cluster_wide,
        followed,
    };
    // Asked for the state the cluster already has: nothing to change.
    let view = ClusterView::parse(&now);
    let settled = |e: bool| {
        view.cluster_maintenance().unwrap_or(!e) == e
            && view.live().all(|i| i.maintenance.is_some() == e)
    };
    let Some(enable) = enable.filter(|e| !settled(*e)) else {
        return Ok(report(&now, false, None, shown(&now)));
    };
    let (action, question) = match enable {
        true => (
            "turn on maintenance mode",
            format!(
                "Put every API process (through {}) into read-only maintenance mode? Every write will answer 503.",
                target.api.api_url
            ),
        ),
        false => (
            "turn off maintenance mode",
            format!(
                "Lift maintenance mode on every API process (through {})? Writes resume.",
                target.api.api_url
            ),
        ),
    };
    confirm(action, &question, yes)?;
    let body = json!({ "enabled": enable, "reason": reason });
    let answer = api.admin(Method::PUT, MAINTENANCE, Some(body)).await?;
    let followed = follow_change(
        &api,
        MAINTENANCE,
        &answer,
        |v| v.cluster_maintenance() == Some(enable),
        |i| i.applied && i.maintenance.is_some() == enable,
    )
    .await?;
    Ok(report(&answer, true, Some(cluster_wide(&answer)), followed))
}
