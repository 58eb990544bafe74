//! Whether every API process followed a cluster-wide setting: the view
//! `GET /api/v1/admin/{maintenance,pool}` gives (the settings row and every
//! instance seen lately), polled until every live instance applied it.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde::Serialize;
use serde_json::Value;

use crate::api_client::ApiClient;
use crate::output::{seconds, Progress, Table};
use crate::{RunbookError, Target};

/// How long a change waits for every live API process to follow it. An
/// instance stops counting as live 5 s after its last report, so a process
/// that died is not waited for past this.
pub const FOLLOW_WAIT: Duration = Duration::from_secs(10);
/// Instances not seen for longer than this are left out of reports.
const SHOW_STALE_FOR: f64 = 120.0;

/// One API process as it last reported itself.
#[derive(Debug, Clone, Serialize)]
pub struct InstanceState {
    pub id: String,
    pub host: String,
    pub pid: i64,
    /// Reported within the last few seconds (only these are waited for).
    pub live: bool,
    pub seen_secs_ago: f64,
    /// The maintenance reason it applies (`None`: it accepts writes).
    pub maintenance: Option<String>,
    pub pool_size: Option<i64>,
    /// It applies the cluster setting.
    pub applied: bool,
    /// The process that answered the API call.
    pub this: bool,
}

/// The cluster as one API process sees it.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterView {
    /// The settings row (`None`: the API could not read it).
    pub cluster: Option<Value>,
    pub instances: Vec<InstanceState>,
}

impl ClusterView {
    pub fn parse(v: &Value) -> ClusterView {
        let text = |i: &Value, k: &str| i.get(k).and_then(Value::as_str).map(str::to_string);
        let instances = v
            .get("instances")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .map(|i| InstanceState {
                        id: text(i, "id").unwrap_or_default(),
                        host: text(i, "host").unwrap_or_default(),
                        pid: i.get("pid").and_then(Value::as_i64).unwrap_or(0),
                        live: i.get("live").and_then(Value::as_bool).unwrap_or(false),
                        seen_secs_ago: i
                            .get("seen_secs_ago")
                            .and_then(Value::as_f64)
                            .unwrap_or(0.0),
                        maintenance: text(i, "reason"),
                        pool_size: i.get("pool_size").and_then(Value::as_i64),
                        applied: i.get("applied").and_then(Value::as_bool).unwrap_or(false),
                        this: i.get("this").and_then(Value::as_bool).unwrap_or(false),
                    })
                    .filter(|i| i.live || i.seen_secs_ago <= SHOW_STALE_FOR)
                    .collect()
            })
            .unwrap_or_default();
        ClusterView {
            cluster: v.get("cluster").filter(|c| c.is_object()).cloned(),
            instances,
        }
    }

    pub fn live(&self) -> impl Iterator<Item = &InstanceState> {
        self.instances.iter().filter(|i| i.live)
    }

    /// The cluster's maintenance state: `Some(true)` when on.
    pub fn cluster_maintenance(&self) -> Option<bool> {
        self.cluster.as_ref()?.get("enabled")?.as_bool()
    }

    pub fn cluster_pool_size(&self) -> Option<i64> {
        self.cluster.as_ref()?.get("pool_size")?.as_i64()
    }

    /// One line per instance seen lately.
    pub fn render(&self) -> String {
        let mut t = Table::new(&[
            "instance",
            "pid",
            "last seen",
            "maintenance",
            "pool",
            "state",
        ]);
        for i in &self.instances {
            let state = match (i.live, i.applied) {
                (false, _) => "gone (not waited for)",
                (true, true) => "follows",
                (true, false) => "NOT FOLLOWING",
            };
            t.row(vec![
                format!("{}{}", i.host, if i.this { " (answered)" } else { "" }),
                i.pid.to_string(),
                format!("{} ago", seconds(i.seen_secs_ago)),
                i.maintenance
                    .as_ref()
                    .map_or("off".into(), |r| format!("on: {r}")),
                i.pool_size.map_or("-".into(), |n| n.to_string()),
                state.into(),
            ]);
        }
        match t.is_empty() {
            true => "no API instance has reported itself\n".into(),
            false => t.render(),
        }
    }
}

/// The outcome of waiting for every live instance.
#[derive(Debug, Clone, Serialize)]
pub struct Followed {
    pub view: ClusterView,
    /// Every live instance applied the setting.
    pub all: bool,
    pub waited_secs: f64,
}

impl Followed {
    pub fn render(&self) -> String {
        let live = self.view.live().count();
        let behind: Vec<String> = self
            .view
            .live()
            .filter(|i| !i.applied)
            .map(|i| format!("{} (pid {})", i.host, i.pid))
            .collect();
        let verdict = match self.all {
            true => format!(
                "all {live} live API instance(s) follow the cluster setting (waited {})\n",
                seconds(self.waited_secs)
            ),
            false => format!(
                "NOT FOLLOWED within {}: {}\n",
                seconds(self.waited_secs),
                match behind.is_empty() {
                    true => "no live instance reported it".into(),
                    false => behind.join(", "),
                }
            ),
        };
        format!("{}{verdict}", self.view.render())
    }
}

/// `GET path` of the API, as a cluster view.
pub async fn view(api: &ApiClient, path: &str) -> Result<ClusterView, RunbookError> {
    let a = api.call(Method::GET, path, None, true).await?;
    if !a.ok() {
        return Err(RunbookError::Api {
            url: format!("{}{path}", api.endpoint.api_url),
            message: a.describe(),
        });
    }
    Ok(ClusterView::parse(&a.body))
}

/// Polls `path` until the cluster setting satisfies `cluster_ok` and every
/// live instance (at least one) applied it, for at most `bound`.
pub async fn wait_until_followed(
    api: &ApiClient,
    path: &str,
    bound: Duration,
    cluster_ok: impl Fn(&ClusterView) -> bool,
    instance_ok: impl Fn(&InstanceState) -> bool,
) -> Result<Followed, RunbookError> {
    let progress = Progress::start("waiting for every API instance to follow");
    let started = Instant::now();
    loop {
        let v = view(api, path).await?;
        let live = v.live().count();
        let done = v.live().filter(|i| instance_ok(i)).count();
        let all = cluster_ok(&v) && live > 0 && done == live;
        if all || started.elapsed() >= bound {
            progress.finish(&format!("{done} of {live} live instance(s) follow"));
            return Ok(Followed {
                view: v,
                all,
                waited_secs: started.elapsed().as_secs_f64(),
            });
        }
        progress.update(&format!("{done} of {live} live instance(s) follow"));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Confirms that no live API instance still accepts writes: maintenance
/// mode is on in the cluster setting, and every instance that reported
/// within the last few seconds applies it. Waits up to `bound` for
/// stragglers; an error names every instance that still accepts writes.
///
/// What it cannot see: an API process too old to report itself. Check the
/// database's sessions (`dashctl db connections`) too when in doubt.
pub async fn ensure_writes_stopped(
    target: &Target,
    bound: Duration,
) -> Result<Followed, RunbookError> {
    let api = ApiClient::new(target.api.clone());
    let f = wait_until_followed(
        &api,
        "/api/v1/admin/maintenance",
        bound,
        |v| v.cluster_maintenance() == Some(true),
        |i| i.maintenance.is_some(),
    )
    .await?;
    if f.all {
        return Ok(f);
    }
    let why = match f.view.cluster_maintenance() {
        None => "the API cannot read the cluster settings from the database, so no other instance can be confirmed".to_string(),
        Some(false) => "maintenance mode is not on in the cluster setting".to_string(),
        Some(true) => {
            let writing: Vec<String> = f
                .view
                .live()
                .filter(|i| i.maintenance.is_none())
                .map(|i| format!("{} (pid {}, seen {} ago)", i.host, i.pid, seconds(i.seen_secs_ago)))
                .collect();
            match writing.is_empty() {
                true => "no API instance reported itself".to_string(),
                false => format!("still accepting writes: {}", writing.join(", ")),
            }
        }
    };
    Err(RunbookError::Refused(format!(
        "cannot confirm that writes are stopped on every API instance within {}: {why}",
        seconds(bound.as_secs_f64())
    )))
}
