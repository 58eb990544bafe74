//! `dashctl agent ...`: agents through the API (spawn, list, show, kill,
//! logs); the log reader lives in `agent/logs.rs`.

mod logs;
mod sse;

use std::io::Read;
use std::path::PathBuf;

use clap::{ArgGroup, Args, Subcommand};
use dash_core::AgentStatus;
use dash_runbook::output::Table;
use serde_json::{json, Value};
use uuid::Uuid;

use super::domain::{
    cut, fields, finish, number, print_one, text, when, Api, ApiArgs, Failure, IdArgs, LimitArg,
    EXIT_CODES,
};

/// Longest task file read: the API's largest request body.
const MAX_TASK_BYTES: u64 = 1 << 20;

/// `dashctl agent` subcommands.
#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Spawn an agent in a swarm (POST /api/v1/agents) and print it; a worker claims it.
    #[command(after_help = EXIT_CODES)]
    Spawn(SpawnArgs),
    /// List agents, oldest first, following the API's pages up to --limit.
    #[command(after_help = EXIT_CODES)]
    List(ListArgs),
    /// One agent: status, attempts, progress, cost, last error, task.
    #[command(after_help = EXIT_CODES)]
    Show(IdArgs),
    /// Kill a pending, running or paused agent.
    #[command(after_help = EXIT_CODES)]
    Kill(IdArgs),
    /// The agent's events in order. `agent.output` lines print as the lines themselves (stdout lines on stdout, stderr lines on stderr); every other event prints one status line on stdout: `HH:MM:SS kind details`, in UTC (e.g. `12:00:01 agent.started attempt 2`, `12:00:09 agent.failed error: ...`). With --json, each event is one line of the API's JSON.
    #[command(after_help = LOGS_HELP)]
    Logs(LogsArgs),
}

/// `dashctl agent logs --help`'s epilogue.
const LOGS_HELP: &str = "With --follow, new events print as they happen (the API's live stream filtered to the agent, else polling every 500 ms); it exits 0 once the agent is completed, failed or killed (at once if it already is).

Exit codes:
  0    printed (with --follow: the agent finished)
  1    failed: the API could not be reached, or answered with an error of its own
  2    bad usage: a bad flag, no API token or a rejected one (401)
  3    not found (404): no agent with that id
  130  interrupted (Ctrl-C)

An API error prints as `dashctl: <code>: <message>`. Log lines and event text are printed as data: control characters show escaped (ESC as \\x1b); --json prints the API's JSON as it came.";

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("text").required(true).args(["task", "task_file"])))]
pub struct SpawnArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    /// The swarm the agent belongs to.
    #[arg(long, value_name = "ID")]
    pub swarm: Uuid,
    /// What the agent is to do (up to 100000 characters).
    #[arg(long)]
    pub task: Option<String>,
    /// Read the task from this file, or from stdin with `-` (for long tasks).
    #[arg(long, value_name = "PATH")]
    pub task_file: Option<PathBuf>,
    /// The model to use [default: the swarm's].
    #[arg(long)]
    pub model: Option<String>,
    /// How many times a failed attempt is retried (0 to 100) [default: the API's].
    #[arg(long, value_name = "N")]
    pub max_retries: Option<i64>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    /// Only the agents of this swarm.
    #[arg(long, value_name = "ID")]
    pub swarm: Option<Uuid>,
    /// Only agents in this status: pending, running, paused, completed, failed or killed.
    #[arg(long)]
    pub status: Option<AgentStatus>,
    #[command(flatten)]
    pub limit: LimitArg,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    #[command(flatten)]
    pub agent: IdArgs,
    /// Keep printing new events until the agent is completed, failed or killed.
    #[arg(long, short)]
    pub follow: bool,
}

pub async fn run(cmd: AgentCommand) -> anyhow::Result<u8> {
    finish(dispatch(cmd).await)
}

async fn dispatch(cmd: AgentCommand) -> Result<u8, Failure> {
    match cmd {
        AgentCommand::Spawn(a) => {
            let api = Api::new(&a.api)?;
            let task = match (&a.task, &a.task_file) {
                (Some(t), _) => t.clone(),
                (None, Some(path)) => read_task(path)?,
                (None, None) => unreachable!("clap requires --task or --task-file"),
            };
            let mut body = json!({ "swarm_id": a.swarm, "task": task });
            if let Some(m) = &a.model {
                body["model"] = json!(m);
            }
            if let Some(n) = a.max_retries {
                body["max_retries"] = json!(n);
            }
            let agent = api.post("/agents", Some(body)).await?;
            print_one(&api, &agent, agent_fields)
        }
        AgentCommand::List(a) => {
            let api = Api::new(&a.api)?;
            let mut query = Vec::new();
            if let Some(s) = a.swarm {
                query.push(format!("swarm_id={s}"));
            }
            if let Some(s) = a.status {
                query.push(format!("status={s}"));
            }
            let query = query.join("&");
            let items = api.list("/agents", &query, a.limit.limit as usize).await?;
            print_one(&api, &Value::Array(items), agent_table)
        }
        AgentCommand::Show(a) => {
            let api = Api::new(&a.api)?;
            let agent = api.get(&format!("/agents/{}", a.id)).await?;
            print_one(&api, &agent, agent_fields)
        }
        AgentCommand::Kill(a) => {
            let api = Api::new(&a.api)?;
            let agent = api.post(&format!("/agents/{}/kill", a.id), None).await?;
            print_one(&api, &agent, |v| {
                format!("agent {}: {}\n", a.id, text(v, "status"))
            })
        }
        AgentCommand::Logs(a) => {
            let api = Api::new(&a.agent.api)?;
            logs::logs(&api, a.agent.id, a.follow).await
        }
    }
}

/// The task text from `path`, or stdin for `-`, at most [`MAX_TASK_BYTES`].
fn read_task(path: &std::path::Path) -> Result<String, Failure> {
    let name = path.display().to_string();
    let mut bytes = Vec::new();
    let read = match name.as_str() {
        "-" => std::io::stdin()
            .take(MAX_TASK_BYTES + 1)
            .read_to_end(&mut bytes),
        _ => std::fs::File::open(path)
            .and_then(|f| f.take(MAX_TASK_BYTES + 1).read_to_end(&mut bytes)),
    };
    read.map_err(|e| Failure::Usage(format!("cannot read the task from {name}: {e}")))?;
    if bytes.len() as u64 > MAX_TASK_BYTES {
        return Err(Failure::Usage(format!(
            "the task in {name} is larger than {MAX_TASK_BYTES} bytes, more than the API accepts"
        )));
    }
    String::from_utf8(bytes)
        .map_err(|_| Failure::Usage(format!("the task in {name} is not UTF-8 text")))
}

fn agent_table(items: &Value) -> String {
    let items = items.as_array().map_or(&[][..], Vec::as_slice);
    let mut t = Table::new(&[
        "ID", "SWARM", "STATUS", "MODEL", "RETRIES", "PROGRESS", "COST", "TASK",
    ]);
    for a in items {
        t.row(vec![
            text(a, "id"),
            text(a, "swarm_id"),
            text(a, "status"),
            cut(&text(a, "model"), 30),
            format!("{}/{}", text(a, "retry_count"), text(a, "max_retries")),
            progress(a),
            number(a, "/cost", 2),
            cut(&text(a, "task"), 40),
        ]);
    }
    match t.is_empty() {
        true => "no agents\n".into(),
        false => t.render(),
    }
}

fn progress(a: &Value) -> String {
    a.get("progress")
        .and_then(Value::as_f64)
        .map_or("-".into(), |p| format!("{:.0}%", p * 100.0))
}

/// The agent as fields.
fn agent_fields(a: &Value) -> String {
    let rows = [
        ("id", text(a, "id")),
        ("swarm", text(a, "swarm_id")),
        ("status", text(a, "status")),
        ("model", text(a, "model")),
        (
            "retries",
            format!("{} of {}", text(a, "retry_count"), text(a, "max_retries")),
        ),
        ("progress", progress(a)),
        ("cost", number(a, "/cost", 2)),
        ("last error", cut(&text(a, "last_error"), 500)),
        ("task", cut(&text(a, "task"), 500)),
        ("spawned", when(a, "spawned_at")),
        ("started", when(a, "started_at")),
        ("finished", when(a, "completed_at")),
    ];
    fields(&rows)
}
