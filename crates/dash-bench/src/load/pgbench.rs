//! pgbench running the SQL that the API runs for create-agent, get-agent and
//! list-agents (`dash-store` `repo/agents/mod.rs`: `spawn_agent`,
//! `get_agent`, `list_agents`, the last in `list.rs`), so the
//! API's throughput can be set beside the database's own.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use super::list::id_sql;
use super::stats::LatencySummary;

/// The columns `spawn_agent` returns and `get_agent` and `list_agents` read
/// (`AGENT_COLUMNS`; a test checks the copy).
pub(crate) const AGENT_COLUMNS: &str =
    "id, swarm_id, task, model, status, retry_count, max_retries, \
    progress, cost, last_error, metadata, spawned_at, started_at, completed_at, updated_at";

/// The transaction pgbench repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// `spawn_agent` without a swarm or an idempotency key: BEGIN; INSERT INTO
    /// agents ... RETURNING; INSERT INTO events; COMMIT.
    CreateAgent,
    /// `get_agent`: one SELECT by primary key of one of `seeds` agents
    /// inserted beforehand with [`seed_sql`].
    GetAgent {
        /// How many seeded agents to pick from.
        seeds: u64,
    },
    /// `list_agents` of one swarm's pending agents, first page of 50: one
    /// SELECT of one of `swarms` swarms seeded with [`super::list::seed_sql`].
    ListAgents {
        /// How many seeded swarms to pick from.
        swarms: u64,
    },
}

/// pgbench's `--protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// One query string per statement, values inlined.
    Simple,
    /// Parse, bind and execute per statement (unnamed statements).
    Extended,
    /// Each statement prepared once per connection (pgbench's fastest).
    Prepared,
}

impl Protocol {
    /// The `--protocol` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Simple => "simple",
            Protocol::Extended => "extended",
            Protocol::Prepared => "prepared",
        }
    }
}

impl std::str::FromStr for Protocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Protocol, String> {
        match s {
            "simple" => Ok(Protocol::Simple),
            "extended" => Ok(Protocol::Extended),
            "prepared" => Ok(Protocol::Prepared),
            _ => Err(format!(
                "unknown pgbench protocol {s:?}: expected simple, extended or prepared"
            )),
        }
    }
}

/// The pgbench script for `workload`.
pub fn script(workload: Workload, protocol: Protocol, task: &str) -> String {
    let sql_text = |s: &str| s.replace('\'', "''");
    match workload {
        Workload::CreateAgent => {
            // In simple mode variables are pasted as text, so the uuid needs quotes.
            let id = match protocol {
                Protocol::Simple => "':id'",
                _ => ":id",
            };
            let data = sql_text(&serde_json::json!({ "task": task }).to_string());
            let task = sql_text(task);
            format!(
                "BEGIN;\n\
                 INSERT INTO agents (id, swarm_id, task, model, max_retries, metadata) \
                 VALUES (gen_random_uuid(), NULL, '{task}', '', 3, '{{}}') \
                 ON CONFLICT (id) DO NOTHING RETURNING {AGENT_COLUMNS} \\gset\n\
                 INSERT INTO events (kind, swarm_id, agent_id, data) \
                 VALUES ('agent.spawned', NULL, {id}, '{data}');\n\
                 COMMIT;\n"
            )
        }
        Workload::GetAgent { seeds } => format!(
            "\\set n random(1, {seeds})\n\
             SELECT {AGENT_COLUMNS} FROM agents WHERE id = {};\n",
            id_sql(":n")
        ),
        Workload::ListAgents { swarms } => super::list::script(swarms),
    }
}

/// Inserts agents `1..=seeds` with the ids [`Workload::GetAgent`] reads.
pub fn seed_sql(seeds: u64) -> String {
    format!(
        "INSERT INTO agents (id, task) SELECT {}, 'dashctl bench seed' \
         FROM generate_series(1::bigint, {seeds}) g ON CONFLICT (id) DO NOTHING",
        id_sql("g")
    )
}

/// One pgbench run against one database.
#[derive(Debug, Clone)]
pub struct PgbenchRun {
    /// The `pgbench` binary.
    pub program: PathBuf,
    /// Server host.
    pub host: String,
    /// Server port.
    pub port: u16,
    /// User.
    pub user: String,
    /// Password (passed in `PGPASSWORD`, never on the command line).
    pub password: String,
    /// Database.
    pub dbname: String,
    /// `--client`.
    pub clients: usize,
    /// `--jobs` (threads).
    pub threads: usize,
    /// `--time` (whole seconds, at least 1).
    pub duration: Duration,
    /// `--protocol`.
    pub protocol: Protocol,
    /// What to run.
    pub workload: Workload,
    /// The agents' `task` text.
    pub task: String,
}

/// What pgbench measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PgbenchResult {
    /// Transactions per second, without connection time.
    pub tps: f64,
    /// Transactions completed.
    pub transactions: u64,
    /// Transactions that failed.
    pub failed: u64,
    /// Per-transaction latency from pgbench's transaction log.
    pub latency: LatencySummary,
    /// The command line (password excluded).
    pub command: String,
}

/// Why a pgbench run failed.
#[derive(Debug, thiserror::Error)]
pub enum PgbenchError {
    /// A file or process operation failed.
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
    /// pgbench exited with an error.
    #[error("`{command}` failed ({status}): {output}")]
    Failed {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// Its output.
        output: String,
    },
    /// pgbench's output had no `tps = ` line.
    #[error("could not read pgbench's result from its output:\n{0}")]
    Unparsable(String),
}

impl PgbenchRun {
    /// Runs pgbench to its end; the child is killed if this future is dropped.
    pub async fn run(&self) -> Result<PgbenchResult, PgbenchError> {
        let io = |what: &str| {
            let what = what.to_string();
            move |e| PgbenchError::Io(what, e)
        };
        let dir = tempfile::Builder::new()
            .prefix("dash-pgbench-")
            .tempdir()
            .map_err(io("create a temp dir"))?;
        let script_path = dir.path().join("workload.sql");
        std::fs::write(
            &script_path,
            script(self.workload, self.protocol, &self.task),
        )
        .map_err(io("write the pgbench script"))?;
        let log_prefix = dir.path().join("txlog");
        let mut cmd = tokio::process::Command::new(&self.program);
        let args: Vec<String> = vec![
            "--no-vacuum".into(),
            format!("--client={}", self.clients),
            format!("--jobs={}", self.threads.clamp(1, self.clients.max(1))),
            format!("--time={}", self.duration.as_secs().max(1)),
            format!("--protocol={}", self.protocol.as_str()),
            format!("--file={}", script_path.display()),
            "--log".into(),
            format!("--log-prefix={}", log_prefix.display()),
            format!("--host={}", self.host),
            format!("--port={}", self.port),
            format!("--username={}", self.user),
            self.dbname.clone(),
        ];
        cmd.args(&args)
            .env("PGPASSWORD", &self.password)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let command = format!("{} {}", self.program.display(), args.join(" "));
        let out = cmd.output().await.map_err(io("run pgbench"))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if !out.status.success() {
            return Err(PgbenchError::Failed {
                command,
                status: out.status.to_string(),
                output: format!("{stdout}{stderr}").trim().to_string(),
            });
        }
        let (tps, transactions, failed) =
            parse_output(&stdout).ok_or_else(|| PgbenchError::Unparsable(stdout.clone()))?;
        let mut samples = Vec::with_capacity(transactions as usize);
        for entry in std::fs::read_dir(dir.path()).map_err(io("read the pgbench logs"))? {
            let path = entry.map_err(io("read the pgbench logs"))?.path();
            if path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("txlog"))
            {
                let text = std::fs::read_to_string(&path).map_err(io("read a pgbench log"))?;
                samples.extend(parse_log(&text));
            }
        }
        Ok(PgbenchResult {
            tps,
            transactions,
            failed,
            latency: LatencySummary::of(&mut samples),
            command,
        })
    }
}

/// `tps`, transactions processed and failed, from pgbench's summary.
fn parse_output(out: &str) -> Option<(f64, u64, u64)> {
    let number = |line: &str| -> Option<f64> {
        line.split(['=', ':'])
            .nth(1)?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    let mut tps = None;
    let mut processed = None;
    let mut failed = 0;
    for line in out.lines().map(str::trim) {
        if line.starts_with("tps =") {
            tps = number(line);
        } else if line.starts_with("number of transactions actually processed") {
            processed = line
                .split(':')
                .nth(1)?
                .split(|c: char| c == '/' || c.is_whitespace())
                .find(|s| !s.is_empty())?
                .parse()
                .ok();
        } else if line.starts_with("number of failed transactions") {
            failed = number(line).map_or(0, |v| v as u64);
        }
    }
    Some((tps?, processed?, failed))
}

/// Latencies from pgbench's per-transaction log: `client_id transaction_no
/// time_us script_no time_epoch time_us_part [lag]`; failed lines are skipped.
fn parse_log(text: &str) -> impl Iterator<Item = Duration> + '_ {
    text.lines().filter_map(|line| {
        let micros: u64 = line.split_whitespace().nth(2)?.parse().ok()?;
        Some(Duration::from_micros(micros))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pgbench_15_output() {
        let out = "pgbench (15.8 (Debian 15.8-0+deb12u1))\n\
            transaction type: /tmp/x/workload.sql\n\
            scaling factor: 1\n\
            query mode: prepared\n\
            number of clients: 32\n\
            number of threads: 2\n\
            maximum number of tries: 1\n\
            duration: 10 s\n\
            number of transactions actually processed: 81234\n\
            number of failed transactions: 0 (0.000%)\n\
            latency average = 3.939 ms\n\
            initial connection time = 52.137 ms\n\
            tps = 8123.456789 (without initial connection time)\n";
        let (tps, n, failed) = parse_output(out).unwrap();
        assert!((tps - 8123.456789).abs() < 1e-9);
        assert_eq!((n, failed), (81234, 0));
        assert!(parse_output("pgbench: error: connection failed").is_none());
    }

    #[test]
    fn parses_transaction_log_lines() {
        let log = "0 0 1234 0 1700000000 123456\n3 7 987 0 1700000001 5\nbad line\n";
        let got: Vec<Duration> = parse_log(log).collect();
        assert_eq!(
            got,
            vec![Duration::from_micros(1234), Duration::from_micros(987)]
        );
    }

    #[test]
    fn scripts_bind_the_uuid_per_protocol() {
        let prepared = script(Workload::CreateAgent, Protocol::Prepared, "it's");
        assert!(prepared.contains("VALUES ('agent.spawned', NULL, :id, "));
        assert!(prepared.contains("'it''s'"));
        assert!(prepared.contains("RETURNING id, swarm_id,"));
        let simple = script(Workload::CreateAgent, Protocol::Simple, "t");
        assert!(simple.contains("NULL, ':id', "));
        let get = script(Workload::GetAgent { seeds: 500 }, Protocol::Prepared, "t");
        assert!(get.starts_with("\\set n random(1, 500)\n"));
        assert!(get.contains("WHERE id = lpad(to_hex(:n::bigint), 32, '0')::uuid;"));
    }

    #[test]
    fn agent_columns_are_dash_stores() {
        // The constant as dash-store spells it, line continuations joined.
        let src = include_str!("../../../dash-store/src/repo/agents/mod.rs");
        let start = src
            .find("const AGENT_COLUMNS: &str =")
            .expect("dash-store's constant");
        let text = &src[start..];
        let text = &text[text.find('"').unwrap() + 1..];
        let text = &text[..text.find('"').unwrap()];
        let joined: Vec<&str> = text.split("\\\n").map(str::trim_start).collect();
        assert_eq!(joined.concat(), AGENT_COLUMNS);
    }
}
