//! `dashctl swarm ...`: swarms through the API (create, list, show, pause,
//! resume, destroy).

use clap::{Args, Subcommand};
use dash_core::{Strategy, SwarmStatus};
use dash_runbook::output::Table;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::domain::{
    cut, fields, finish, number, print_one, text, when, Api, ApiArgs, Failure, IdArgs, LimitArg,
    EXIT_CODES,
};

/// `dashctl swarm` subcommands.
#[derive(Debug, Subcommand)]
pub enum SwarmCommand {
    /// Create a swarm (POST /api/v1/swarms) and print it.
    #[command(after_help = EXIT_CODES)]
    Create(CreateArgs),
    /// List swarms, oldest first, following the API's pages up to --limit.
    #[command(after_help = EXIT_CODES)]
    List(ListArgs),
    /// One swarm: its settings, its budget (consumed of allocated, and its level: normal, warning, critical, exhausted) and how many agents it has in each status.
    #[command(after_help = EXIT_CODES)]
    Show(IdArgs),
    /// Pause an active swarm: its agents are not scheduled until it resumes.
    #[command(after_help = EXIT_CODES)]
    Pause(IdArgs),
    /// Resume a paused swarm.
    #[command(after_help = EXIT_CODES)]
    Resume(IdArgs),
    /// Destroy a swarm for good (asks for confirmation on a terminal; --yes without one).
    #[command(after_help = EXIT_CODES)]
    Destroy(DestroyArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    /// The swarm's name (1 to 200 characters).
    #[arg(long)]
    pub name: String,
    /// What the swarm is for.
    #[arg(long, default_value = "")]
    pub task: String,
    /// How it divides work among its agents: parallel, map-reduce, pipeline or tree.
    #[arg(long, default_value = "parallel")]
    pub strategy: Strategy,
    /// Spending limit (0: unlimited); the swarm pauses when it is spent [default: unlimited].
    #[arg(long, value_name = "AMOUNT")]
    pub budget: Option<f64>,
    /// ISO 4217 currency of --budget [default: USD].
    #[arg(long, requires = "budget", value_name = "CODE")]
    pub currency: Option<String>,
    /// Most agents the swarm may run (1 to 10000) [default: the API's].
    #[arg(long, value_name = "N")]
    pub max_agents: Option<i64>,
    /// The model its agents use unless they name one [default: the API's].
    #[arg(long)]
    pub model: Option<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    /// Only swarms in this status: active, paused, completed, failed or destroyed.
    #[arg(long)]
    pub status: Option<SwarmStatus>,
    #[command(flatten)]
    pub limit: LimitArg,
}

#[derive(Debug, Args)]
pub struct DestroyArgs {
    #[command(flatten)]
    pub swarm: IdArgs,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
}

pub async fn run(cmd: SwarmCommand) -> anyhow::Result<u8> {
    finish(dispatch(cmd).await)
}

async fn dispatch(cmd: SwarmCommand) -> Result<u8, Failure> {
    match cmd {
        SwarmCommand::Create(a) => {
            let api = Api::new(&a.api)?;
            let s = api.post("/swarms", Some(create_body(&a))).await?;
            print_one(&api, &s, |s| swarm_fields(s, None))
        }
        SwarmCommand::List(a) => {
            let api = Api::new(&a.api)?;
            let query = a.status.map_or(String::new(), |s| format!("status={s}"));
            let items = api.list("/swarms", &query, a.limit.limit as usize).await?;
            print_one(&api, &Value::Array(items), swarm_table)
        }
        SwarmCommand::Show(a) => {
            let api = Api::new(&a.api)?;
            let s = api.get(&format!("/swarms/{}", a.id)).await?;
            let counts = match api.json {
                true => None,
                false => Some(agent_counts(&api, a.id).await?),
            };
            print_one(&api, &s, |s| swarm_fields(s, counts.as_deref()))
        }
        SwarmCommand::Pause(a) => act(&a, "pause").await,
        SwarmCommand::Resume(a) => act(&a, "resume").await,
        SwarmCommand::Destroy(a) => {
            if !a.yes {
                let api = Api::new(&a.swarm.api)?;
                let s = api.get(&format!("/swarms/{}", a.swarm.id)).await?;
                let question = format!(
                    "Destroy swarm {} ({}, {})? This cannot be undone.",
                    a.swarm.id,
                    text(&s, "name"),
                    text(&s, "status"),
                );
                let action = format!("destroy swarm {}", a.swarm.id);
                dash_runbook::confirm::confirm(&action, &question, false)?;
            }
            act(&a.swarm, "destroy").await
        }
    }
}

/// The create body, with only what was given.
fn create_body(a: &CreateArgs) -> Value {
    let mut body = json!({ "name": a.name, "task": a.task, "strategy": a.strategy });
    let mut config = Map::new();
    if let Some(m) = &a.model {
        config.insert("model".into(), json!(m));
    }
    if let Some(n) = a.max_agents {
        config.insert("max_agents".into(), json!(n));
    }
    if !config.is_empty() {
        body["config"] = Value::Object(config);
    }
    if let Some(allocated) = a.budget {
        body["budget"] = json!({ "allocated": allocated });
        if let Some(c) = &a.currency {
            body["budget"]["currency"] = json!(c);
        }
    }
    body
}

/// A lifecycle action; prints the swarm's new status.
async fn act(a: &IdArgs, action: &str) -> Result<u8, Failure> {
    let api = Api::new(&a.api)?;
    let s = api
        .post(&format!("/swarms/{}/{action}", a.id), None)
        .await?;
    print_one(&api, &s, |s| {
        format!("swarm {}: {}\n", a.id, text(s, "status"))
    })
}

/// `2.50 / 10.00 USD (25%, normal)`, or `unlimited (2.50 USD spent)`.
fn budget(s: &Value) -> String {
    let b = s.get("budget").unwrap_or(&Value::Null);
    let currency = text(b, "currency");
    let consumed = number(b, "/consumed", 2);
    match b.get("allocated").and_then(Value::as_f64) {
        Some(a) if a > 0.0 => {
            let used = b.get("utilization").and_then(Value::as_f64).unwrap_or(0.0);
            format!(
                "{consumed} / {} {currency} ({:.0}%, {})",
                number(b, "/allocated", 2),
                used * 100.0,
                text(b, "level"),
            )
        }
        _ => format!("unlimited ({consumed} {currency} spent)"),
    }
}

fn swarm_table(items: &Value) -> String {
    let items = items.as_array().map_or(&[][..], Vec::as_slice);
    let mut t = Table::new(&["ID", "NAME", "STATUS", "STRATEGY", "BUDGET", "CREATED"]);
    for s in items {
        t.row(vec![
            text(s, "id"),
            cut(&text(s, "name"), 40),
            text(s, "status"),
            text(s, "strategy"),
            budget(s),
            when(s, "created_at"),
        ]);
    }
    match t.is_empty() {
        true => "no swarms\n".into(),
        false => t.render(),
    }
}

/// How many agents the swarm has per status, from one page of its agents.
async fn agent_counts(api: &Api, id: Uuid) -> Result<String, Failure> {
    let limit = super::domain::MAX_PAGE;
    let page = api
        .get(&format!("/swarms/{id}/agents?limit={limit}"))
        .await?;
    let items = page.get("items").and_then(Value::as_array);
    let items = items.map_or(&[][..], Vec::as_slice);
    let more = page.get("next_cursor").is_some_and(|c| !c.is_null());
    let mut by_status: Vec<(String, usize)> = Vec::new();
    for a in items {
        let status = text(a, "status");
        match by_status.iter_mut().find(|(s, _)| *s == status) {
            Some((_, n)) => *n += 1,
            None => by_status.push((status, 1)),
        }
    }
    let total = match more {
        true => format!("{}+", items.len()),
        false => items.len().to_string(),
    };
    let parts: Vec<String> = by_status.iter().map(|(s, n)| format!("{n} {s}")).collect();
    Ok(match parts.is_empty() {
        true => total,
        false => format!("{total} ({})", parts.join(", ")),
    })
}

/// The swarm as fields; `counts` adds the agent line.
fn swarm_fields(s: &Value, counts: Option<&str>) -> String {
    let config = s.get("config").unwrap_or(&Value::Null);
    let mut rows = vec![
        ("id", text(s, "id")),
        ("name", text(s, "name")),
        ("status", text(s, "status")),
        ("strategy", text(s, "strategy")),
        ("task", cut(&text(s, "task"), 500)),
        ("model", text(config, "model")),
        ("max agents", text(config, "max_agents")),
        ("budget", budget(s)),
    ];
    if let Some(c) = counts {
        rows.push(("agents", c.to_string()));
    }
    rows.push(("created", when(s, "created_at")));
    rows.push(("updated", when(s, "updated_at")));
    fields(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_read_as_spent_of_allocated() {
        let s = json!({"budget": {"allocated": 10.0, "consumed": 7.5, "currency": "USD",
            "utilization": 0.75, "level": "warning"}});
        assert_eq!(budget(&s), "7.50 / 10.00 USD (75%, warning)");
        let s = json!({"budget": {"allocated": 0.0, "consumed": 1.0, "currency": "EUR"}});
        assert_eq!(budget(&s), "unlimited (1.00 EUR spent)");
    }

    #[test]
    fn hostile_names_do_not_reach_the_terminal() {
        let table = swarm_table(&json!([{"id": "x", "name": "\u{1b}]0;owned\u{7}"}]));
        assert!(!table.contains('\u{1b}'), "{table}");
        assert!(table.contains("\\x1b]0;owned\\x07"), "{table}");
    }
}
