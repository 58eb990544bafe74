//! The command line, as `dashctl --help` shows it.

use clap::{Parser, Subcommand};

const EXIT_CODES: &str = "Exit codes:
  0  success
  1  the command failed (the error and its causes are printed)
  2  bad usage or configuration (clap errors, invalid environment variables)";

#[derive(Debug, Parser)]
#[command(name = "dashctl", version, about = "Dash: a control plane for fleets of AI agents whose database tier survives failure", after_help = EXIT_CODES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole platform locally, on the same engine as across machines: a local etcd member, one `dashctl node` agent per PostgreSQL node (a primary and streaming replica(s) under $DASH_HOME, default ./.dash; the agents fail over, fence and rejoin), and the API. Ctrl-C stops everything; a second `dashctl up` reuses the data.
    #[command(after_help = "Exit codes:
  0  stopped cleanly (Ctrl-C or SIGTERM)
  1  failed: the error and its causes are printed (e.g. a port in use, no PostgreSQL or etcd installed)
  2  bad usage or configuration (an invalid flag or environment variable)

Logs: $DASH_HOME/nodeN.agent.log (each agent), $DASH_HOME/nodeN.log (its PostgreSQL), $DASH_HOME/etcd.log.")]
    Up(UpArgs),
    /// The HA agent of one PostgreSQL host: owns its PostgreSQL (init or clone, start, restart with backoff, promote, demote, rewind), holds or follows the leader key in etcd, fences itself when it cannot renew its lease, and serves the node API (/primary, /replica, /health, /status, /metrics) on DASH_NODE_PORT (8008).
    #[command(after_help = "Exit codes:
  0  stopped cleanly (Ctrl-C or SIGTERM); a leader stops its PostgreSQL cleanly and hands the key over
  1  failed: the error and its causes are printed
  2  bad usage or configuration (an invalid flag or environment variable)")]
    Node(crate::commands::node::NodeArgs),
    /// Internal: the fence guard `dashctl node` starts beside itself (it fences the server when the agent is frozen).
    #[command(hide = true)]
    NodeGuard {
        #[arg(long)]
        pg_data: std::path::PathBuf,
    },
    /// Fault injection against a private local cluster, with a measured report.
    #[command(after_help = "Exit codes:
  0  every round ran; in synchronous mode no acknowledged write was lost or duplicated and no fenced node took a write
  1  a round failed (writes never resumed, the cluster never became highly available again), or a synchronous run lost, duplicated or split writes;
     kill-worker: an agent never completed, completed more than once, two runs of one agent overlapped in time, or the running cap was passed
  2  bad usage")]
    Chaos(ChaosArgs),
    /// Benchmarks: load through the API, and the API beside pgbench running the same SQL.
    Bench(crate::commands::bench::BenchArgs),
    /// Run the API server (port DASH_API_PORT, default 3001) and metrics (METRICS_PORT, default 9090) against DATABASE_*.
    #[command(after_help = "Exit codes:
  0  stopped cleanly (Ctrl-C or SIGTERM)
  1  failed: the error and its causes are printed
  2  bad usage or configuration (an invalid environment variable)")]
    Serve,
    /// The runbook's database procedures: failover, switchover, status, diagnose, connections, terminate, pool, maintenance, backup, backups, verify-backup, restore, incidents, add-replica.
    Db {
        #[command(subcommand)]
        command: crate::commands::db::DbCommand,
    },
    /// Swarms, through the API: create, list, show, pause, resume, destroy.
    Swarm {
        #[command(subcommand)]
        command: crate::commands::swarm::SwarmCommand,
    },
    /// Agents, through the API: spawn, list, show, kill, logs [--follow].
    Agent {
        #[command(subcommand)]
        command: crate::commands::agent::AgentCommand,
    },
    /// Recovery Verification: /health, /ready, the metrics (pg_up 1) and a create/read/delete smoke test through the API.
    Verify(crate::commands::verify::VerifyArgs),
    /// libpq's environment for the current primary (or --replica): prints `export PGHOST=... PGPORT=... PGUSER=... PGDATABASE=... PGPASSFILE=...`, so that after `eval "$(dashctl env)"` the runbook's psql and pg_isready lines work as written. The password goes to a private pgpass file ($DASH_HOME/pgpass beside `dashctl up`, else ~/.dash/pgpass), never to the output.
    #[command(after_help = "Exit codes:
  0  printed
  1  no writable primary (or, with --replica, no streaming replica) answers; the reasons are printed
  2  bad usage or configuration")]
    Env(crate::commands::pgenv::EnvArgs),
    /// psql on the current primary (or --replica), with the same environment as `dashctl env`; arguments after `--` go to psql.
    #[command(after_help = "Exit codes:
  psql's own, once it runs
  1  no writable primary (or streaming replica) answers, or psql is not installed
  2  bad usage or configuration")]
    Psql(crate::commands::pgenv::PsqlArgs),
    /// Run agents: claims pending agents from the database (under MAX_CONCURRENT_AGENTS and the per-swarm caps) and runs each through --runtime, renewing its lease, streaming its output back, charging its usage and reporting its end; stops a runtime whose agent was killed or paused, whose swarm was paused or ran out of budget, or whose lease it could not renew in time. Any number of workers, on any hosts, share one database.
    #[command(after_help = "Exit codes:
  0  stopped (Ctrl-C or SIGTERM; running agents got --drain to finish, the rest were handed back)
  1  failed: the error and its causes are printed (e.g. the database never answered)
  2  bad usage or configuration")]
    Worker(crate::commands::worker::WorkerArgs),
    /// Internal: what `dashctl worker` runs each runtime under, so that the runtime's whole process group dies with the worker.
    #[command(hide = true)]
    RuntimeGuard {
        /// The runtime program and its arguments.
        #[arg(last = true, required = true)]
        argv: Vec<String>,
    },
    /// Built-in agent runtimes, run by `dashctl worker --runtime demo`.
    Runtime {
        #[command(subcommand)]
        command: RuntimeCommand,
    },
    /// Inspect configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum RuntimeCommand {
    /// Reads the task on stdin and works through --demo-steps steps, printing a line and a usage report each (the worker's JSON-lines protocol), then a result; exits 1 on attempts up to --demo-fail-attempts.
    Demo(crate::commands::worker::DemoArgs),
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration (environment and defaults) with secrets masked; exits 2 when it is invalid.
    Check {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Number of streaming replicas, 0 to 8 (first run only; later runs reuse the recorded cluster).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(0..=8))]
    pub replicas: u16,
    /// Asynchronous replication: faster commits, but a failover may lose the last acknowledged writes (first run only).
    #[arg(long = "async")]
    pub asynchronous: bool,
    /// Port of the first PostgreSQL node; node N uses PORT+N (first run only) [default: 54320, or free ports when those are taken].
    #[arg(long)]
    pub pg_port: Option<u16>,
    /// Node API port of the first node's agent; node N uses PORT+N (first run only) [default: 8008, or free ports when those are taken].
    #[arg(long)]
    pub node_port: Option<u16>,
    /// Client port of the local etcd; its peer port is PORT+1 (first run only) [default: 2379, or free ports when those are taken].
    #[arg(long)]
    pub etcd_port: Option<u16>,
    /// No pgBackRest repository: no WAL archiving and no point-in-time recovery (by default every node archives into $DASH_HOME/pgbackrest and a first full backup is taken).
    #[arg(long)]
    pub no_backups: bool,
}

#[derive(Debug, clap::Args)]
pub struct ChaosArgs {
    /// The fault to inject.
    #[arg(value_enum)]
    pub scenario: ScenarioArg,
    /// How many fault rounds.
    #[arg(long, default_value_t = 3)]
    pub rounds: u32,
    /// Writer connections driving the API during each round.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Asynchronous replication instead of synchronous.
    #[arg(long = "async")]
    pub asynchronous: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Keep the private cluster's directory (nodes stopped, server logs kept) for inspection.
    #[arg(long)]
    pub keep: bool,
    /// Run on this many database hosts (3 to 5), each a network namespace with etcd and dashctl node, plus a client host (root only).
    #[arg(long, value_name = "N")]
    pub hosts: Option<usize>,
    /// With --hosts, soak: how long writes run without a fault.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub duration: std::time::Duration,
    /// With --hosts: the leader lease TTL of every agent.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub ttl: std::time::Duration,
    /// kill-worker: agents to run.
    #[arg(long, default_value_t = 40)]
    pub agents: u32,
    /// kill-worker: MAX_CONCURRENT_AGENTS of every worker (3 workers of 4 slots share it).
    #[arg(long, default_value_t = 8)]
    pub cap: u32,
    /// kill-worker: the workers' lease (the worker's default).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub lease: std::time::Duration,
    /// pitr: rounds whose number is a multiple of N kill the primary after the backup, so recovery crosses a failover (0: never).
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub failover_every: u32,
    /// kill-worker: the workers' heartbeat (the worker's default).
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub heartbeat: std::time::Duration,
}

/// The faults `dashctl chaos` can inject: the first four on one machine
/// (against a private `dashctl up`-style cluster), kill-worker on one
/// machine against `dashctl worker` processes, the rest with `--hosts` on
/// network-namespace hosts, each running etcd and `dashctl node`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ScenarioArg {
    /// The primary node crashes: SIGSTOP every process at once, then SIGKILL them all.
    KillPrimary,
    /// The primary freezes (SIGSTOP); after the failover it is woken (SIGCONT) to prove the fence held.
    HangPrimary,
    /// Immediate stop then start of the primary (runbook scenario 1, a transient restart).
    RestartPrimary,
    /// Every free server connection held idle in transaction from outside the API.
    ExhaustPool,
    /// `dashctl worker` processes running agents are SIGKILLed, one a round, and replaced: every agent must complete exactly once, with no two runs overlapping and the cap held.
    KillWorker,
    /// Point-in-time recovery with pgBackRest: every round a backup (every --failover-every-th round then a failover), writes through the API, a point noted, `DELETE FROM swarms`, `dashctl db restore --to` the point; every write acknowledged before the point must be back and none sent after it.
    Pitr,
    /// --hosts: the primary's host crashes (every process frozen, then killed); it boots again later.
    HostCrash,
    /// --hosts: only the primary's PostgreSQL crashes; its agent lives (the fast path).
    PgCrash,
    /// --hosts: only the primary's agent crashes (its PostgreSQL dies with it).
    AgentCrash,
    /// --hosts: the primary's agent freezes for two TTLs, then continues and must fence.
    AgentFreeze,
    /// --hosts: the primary's host is cut off from every other host; a writer on it keeps trying.
    Partition,
    /// --hosts: the primary's host is cut off from etcd only.
    EtcdCut,
    /// --hosts: the etcd member on the primary's host dies (no failover, no gap).
    EtcdMemberLost,
    /// --hosts: two etcd members die (no majority: the primary fences until etcd is back).
    EtcdQuorumLost,
    /// --hosts: the synchronous standby's host crashes (writes must go on).
    ReplicaLost,
    /// --hosts: every replica is lost, then the primary's PostgreSQL crashes (restarted in place).
    ReplicaThenPgCrash,
    /// --hosts: no fault, writes for --duration; any failover counts as spurious.
    Soak,
}

impl ScenarioArg {
    /// The one-machine scenario, if this is one.
    pub fn local(self) -> Option<dash_bench::chaos::Scenario> {
        use dash_bench::chaos::Scenario;
        Some(match self {
            ScenarioArg::KillPrimary => Scenario::KillPrimary,
            ScenarioArg::HangPrimary => Scenario::HangPrimary,
            ScenarioArg::RestartPrimary => Scenario::RestartPrimary,
            ScenarioArg::ExhaustPool => Scenario::ExhaustPool,
            _ => return None,
        })
    }

    /// The multi-host scenario, if this is one.
    pub fn hosts(self) -> Option<dash_bench::hosts::HostScenario> {
        use dash_bench::hosts::HostScenario as H;
        Some(match self {
            ScenarioArg::HostCrash => H::HostCrash,
            ScenarioArg::PgCrash => H::PgCrash,
            ScenarioArg::AgentCrash => H::AgentCrash,
            ScenarioArg::AgentFreeze => H::AgentFreeze,
            ScenarioArg::Partition => H::Partition,
            ScenarioArg::EtcdCut => H::EtcdCut,
            ScenarioArg::EtcdMemberLost => H::EtcdMemberLost,
            ScenarioArg::EtcdQuorumLost => H::EtcdQuorumLost,
            ScenarioArg::ReplicaLost => H::ReplicaLost,
            ScenarioArg::ReplicaThenPgCrash => H::ReplicaThenPgCrash,
            ScenarioArg::Soak => H::Soak,
            _ => return None,
        })
    }
}
