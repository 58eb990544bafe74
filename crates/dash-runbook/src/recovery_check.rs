//! Recovery Verification (`dashctl verify`): `/health`, `/ready`, the metrics
//! (present, `pg_up 1`), and a create/read/delete smoke test through the API
//! that cleans up after itself. Each check is reported with its result.

use reqwest::Method;
use serde::Serialize;
use serde_json::{json, Value};

use super::api_client::{Answer, ApiClient};
use super::metrics::ApiMetrics;
use super::output::Table;
use super::{exit, ApiEndpoint};

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
    pub millis: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub api_url: String,
    pub metrics_url: String,
    pub checks: Vec<Check>,
    pub ok: bool,
}

impl VerifyReport {
    pub fn exit_code(&self) -> u8 {
        match self.ok {
            true => exit::OK,
            false => exit::CHECK_FAILED,
        }
    }

    pub fn render(&self) -> String {
        let mut out = format!(
            "Recovery verification of {} ({})\n",
            self.api_url, self.metrics_url
        );
        let mut t = Table::new(&["CHECK", "RESULT", "TIME", "DETAIL"]);
        for c in &self.checks {
            t.row(vec![
                c.name.clone(),
                if c.ok { "ok".into() } else { "FAIL".into() },
                c.millis.map_or("-".into(), |m| format!("{m:.0}ms")),
                c.detail.clone(),
            ]);
        }
        out.push_str(&t.render());
        let failed = self.checks.iter().filter(|c| !c.ok).count();
        out.push_str(&match failed {
            0 => format!("all {} checks passed\n", self.checks.len()),
            n => format!("{n} of {} checks FAILED\n", self.checks.len()),
        });
        out
    }
}

fn check(name: &str, ok: bool, detail: impl Into<String>, millis: Option<f64>) -> Check {
    Check {
        name: name.into(),
        ok,
        detail: detail.into(),
        millis,
    }
}

/// An endpoint that must answer 200.
async fn endpoint(api: &ApiClient, name: &str, path: &str) -> Check {
    match api.call(Method::GET, path, None, false).await {
        Ok(a) if a.status == 200 => {
            let status = a
                .body
                .get("status")
                .and_then(Value::as_str)
                .unwrap_or("200");
            check(name, true, status, Some(a.millis))
        }
        Ok(a) => check(name, false, a.describe(), Some(a.millis)),
        Err(e) => check(name, false, e.to_string(), None),
    }
}

/// Runs every check.
pub async fn verify(endpoint_cfg: &ApiEndpoint) -> VerifyReport {
    let api = ApiClient::new(endpoint_cfg.clone());
    let mut checks = vec![
        endpoint(&api, "GET /health", "/health").await,
        endpoint(&api, "GET /ready", "/ready").await,
    ];
    checks.push(match api.metrics_text().await {
        Ok(text) => {
            let m = ApiMetrics::parse(&text);
            let name = "metrics: pg_up 1, pg_pool_*";
            match (m.pg_up, m.has_pool()) {
                (Some(1.0), true) => check(name, true, m.summary(), None),
                (Some(up), _) if up != 1.0 => check(name, false, format!("pg_up {up}"), None),
                _ => check(name, false, "pg_up or pg_pool_* missing", None),
            }
        }
        Err(e) => check("metrics: pg_up 1, pg_pool_*", false, e.to_string(), None),
    });
    checks.extend(smoke(&api).await);
    let ok = checks.iter().all(|c| c.ok);
    VerifyReport {
        api_url: endpoint_cfg.api_url.clone(),
        metrics_url: endpoint_cfg.metrics_url.clone(),
        checks,
        ok,
    }
}

/// Create, read and delete a swarm; the swarm is deleted even when a step fails.
async fn smoke(api: &ApiClient) -> Vec<Check> {
    let name = format!("dash-verify-{:08x}", rand::random::<u32>());
    let body = json!({ "name": name, "strategy": "parallel", "task": "dashctl verify smoke test" });
    let created = match api
        .call(Method::POST, "/api/v1/swarms", Some(body), true)
        .await
    {
        Ok(a) => a,
        Err(e) => return vec![check("smoke: create a swarm", false, e.to_string(), None)],
    };
    let id = created
        .body
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_string);
    let mut checks = vec![match (&id, created.status) {
        (Some(id), 201) => check(
            "smoke: create a swarm",
            true,
            format!("201, id {id}"),
            Some(created.millis),
        ),
        _ => check(
            "smoke: create a swarm",
            false,
            created.describe(),
            Some(created.millis),
        ),
    }];
    let Some(id) = id else {
        return checks;
    };
    let path = format!("/api/v1/swarms/{id}");
    let read = api.call(Method::GET, &path, None, false).await;
    checks.push(match &read {
        Ok(a) if a.status == 200 && a.body.get("name").and_then(Value::as_str) == Some(&name) => {
            check(
                "smoke: read it back",
                true,
                "200, same name",
                Some(a.millis),
            )
        }
        Ok(a) => check("smoke: read it back", false, a.describe(), Some(a.millis)),
        Err(e) => check("smoke: read it back", false, e.to_string(), None),
    });
    let deleted: Result<Answer, _> = api.call(Method::DELETE, &path, None, true).await;
    checks.push(match &deleted {
        Ok(a) if a.ok() => check(
            "smoke: delete it",
            true,
            a.status.to_string(),
            Some(a.millis),
        ),
        Ok(a) => check(
            "smoke: delete it",
            false,
            format!("{}; swarm {id} is left behind", a.describe()),
            Some(a.millis),
        ),
        Err(e) => check(
            "smoke: delete it",
            false,
            format!("{e}; swarm {id} is left behind"),
            None,
        ),
    });
    if deleted.as_ref().is_ok_and(Answer::ok) {
        let gone = api.call(Method::GET, &path, None, false).await;
        checks.push(match gone {
            Ok(a) if a.status == 404 => check("smoke: it is gone", true, "404", Some(a.millis)),
            Ok(a) => check("smoke: it is gone", false, a.describe(), Some(a.millis)),
            Err(e) => check("smoke: it is gone", false, e.to_string(), None),
        });
    }
    checks
}
