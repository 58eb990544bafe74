//! The arguments of the `dashctl db` commands, as `--help` shows them.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

/// Options every `dashctl db` command takes.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    /// The API's base URL [default: DASH_API_URL, else the topology's, else http://127.0.0.1:3001].
    #[arg(long, value_name = "URL")]
    pub api: Option<String>,
    /// The API's metrics URL [default: DASH_METRICS_URL, else the topology's, else http://127.0.0.1:9090/metrics].
    #[arg(long, value_name = "URL")]
    pub metrics: Option<String>,
    /// Token for the API's admin endpoints [default: DASH_API_TOKEN, else the topology's].
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
}

/// Where the node agents (`dashctl node`) keep leadership, when they are used.
#[derive(Debug, Clone, Args)]
pub struct EtcdArgs {
    /// The node agents' etcd client URLs, comma-separated; adds what etcd and the agents say (see above). Beside `dashctl up` the local etcd recorded in $DASH_HOME/cluster.json is used without it; otherwise, without it, nothing is read from etcd.
    #[arg(
        long,
        env = "DASH_ETCD_ENDPOINTS",
        value_delimiter = ',',
        value_name = "URLS"
    )]
    pub etcd: Vec<String>,
    /// The agents' cluster name (their etcd prefix /dash/<cluster>/).
    #[arg(
        long,
        env = "DASH_CLUSTER",
        default_value = "dash",
        value_name = "NAME"
    )]
    pub cluster: String,
}

impl EtcdArgs {
    /// `None` when etcd is not configured.
    pub fn target(&self) -> Option<dash_runbook::ha::EtcdTarget> {
        dash_runbook::ha::EtcdTarget::new(&self.etcd, &self.cluster)
    }
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub etcd: EtcdArgs,
}

/// What a failover or switchover asks for, and how it reports.
#[derive(Debug, Args)]
pub struct RequestArgs {
    /// The standby to hand over to (default: the recorded synchronous standby).
    #[arg(long)]
    pub target: Option<String>,
    /// Print every step and the check after it, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
    /// Print the outcome as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SwitchoverArgs {
    #[command(flatten)]
    pub request: RequestArgs,
    #[command(flatten)]
    pub etcd: EtcdRequestArgs,
}

/// Where and how long a request through etcd (switchover, failover) goes.
#[derive(Debug, Args)]
pub struct EtcdRequestArgs {
    #[command(flatten)]
    pub etcd: EtcdArgs,
    /// How long to wait for another member to hold the leader key and answer /primary 200; a request nobody acted on is then withdrawn.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub wait: Duration,
}

#[derive(Debug, Args)]
pub struct AddReplicaArgs {
    /// The new node's name (also its replication application_name); default: the next free nodeN.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Its PostgreSQL port; default: a free one.
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub pg_port: Option<u16>,
    /// Its node API port (/primary, /replica, /status); default: a free one.
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub node_port: Option<u16>,
    /// How long to wait for the node to stream and catch up (a large database clones for longer); it stays recorded and keeps trying after.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    pub wait: Duration,
    /// Check and print the steps; record nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DbFailoverArgs {
    #[command(flatten)]
    pub request: RequestArgs,
    #[command(flatten)]
    pub etcd: EtcdRequestArgs,
    /// Only when no member holds the leader key and no recorded synchronous standby runs: let --target take the key and promote although it is not a recorded synchronous standby. It may lack writes the last primary acknowledged, and those are then lost for good; the choice is recorded in the HA history. Asked for confirmation like every failover (--yes without a terminal).
    #[arg(long, requires = "target")]
    pub accept_data_loss: bool,
}

#[derive(Debug, Args)]
pub struct DiagnoseArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub etcd: EtcdArgs,
    /// Also run amcheck: bt_index_check on every index, verify_heapam on every table (reads all data).
    #[arg(long)]
    pub deep: bool,
    /// How long a failing node is re-probed before it counts as down.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub window: Duration,
    /// Idle-in-transaction sessions older than this are scenario 4 evidence.
    #[arg(long, value_name = "DURATION", default_value = "300s", value_parser = parse_duration)]
    pub idle_threshold: Duration,
    /// How many API processes share the database, for the pool size advice [default: the distinct client addresses among the API's sessions, said as an assumption].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub api_replicas: Option<u16>,
}

#[derive(Debug, Args)]
pub struct ConnectionsArgs {
    #[command(flatten)]
    pub common: Common,
    /// Show query text (hidden by default: it may hold data).
    #[arg(long)]
    pub show_queries: bool,
    /// At most this many long-running sessions.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
}

#[derive(Debug, Args)]
pub struct TerminateArgs {
    #[command(flatten)]
    pub common: Common,
    /// End sessions that are idle in transaction (required: the only kind this ends).
    #[arg(long, required = true)]
    pub idle_in_transaction: bool,
    /// Only sessions whose last query started longer ago than this (the runbook uses 300s).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub older_than: Duration,
    /// List what would be ended, end nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct PoolArgs {
    #[command(flatten)]
    pub common: Common,
    /// The new maximum pool size (1-1000); without it the pool is only shown.
    #[arg(long, value_name = "N")]
    pub size: Option<usize>,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

#[derive(Debug, Args)]
pub struct MaintenanceArgs {
    #[command(flatten)]
    pub common: Common,
    /// Turn maintenance mode on or off; without it, show it.
    #[arg(value_enum)]
    pub state: Option<OnOff>,
    /// Why (shown in the API's 503 answers and the change log; at most 500 characters).
    #[arg(long, default_value = "dashctl db maintenance")]
    pub reason: String,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
}

/// `--dir` for the backup commands.
#[derive(Debug, Clone, Args)]
pub struct DirArg {
    /// Backup directory [default: DASH_BACKUP_DIR, else beside `dashctl up` $DASH_HOME/backups (created), else /backups/dash/postgres if it exists].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// Where the pgBackRest repository is (point-in-time recovery).
#[derive(Debug, Clone, Args)]
pub struct BackrestArgs {
    /// pgBackRest config file of the repository [default: DASH_PGBACKREST_CONFIG, else beside `dashctl up` $DASH_HOME/pgbackrest/pgbackrest.conf when it exists].
    #[arg(long, value_name = "FILE")]
    pub pgbackrest_config: Option<PathBuf>,
    /// The pgBackRest stanza.
    #[arg(long, env = "DASH_PGBACKREST_STANZA", default_value = dash_backrest::DEFAULT_STANZA, value_name = "NAME")]
    pub stanza: String,
}

impl BackrestArgs {
    /// Whether a repository is configured here (the flag, the environment or beside `dashctl up`).
    pub fn configured(&self) -> bool {
        dash_runbook::pitr::find_config(self.pgbackrest_config.clone(), |k| std::env::var(k).ok())
            .is_some()
    }

    /// The repository, the local nodes and (given or recorded) etcd.
    pub fn setup(
        &self,
        etcd: Option<&EtcdArgs>,
    ) -> Result<dash_runbook::pitr::Setup, dash_runbook::RunbookError> {
        let etcd = etcd.and_then(EtcdArgs::target);
        dash_runbook::pitr::Setup::resolve(
            self.pgbackrest_config.clone(),
            &self.stanza,
            etcd,
            |k| std::env::var(k).ok(),
        )
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum BackupTypeArg {
    Full,
    Diff,
    Incr,
}

impl From<BackupTypeArg> for dash_backrest::BackupType {
    fn from(t: BackupTypeArg) -> Self {
        match t {
            BackupTypeArg::Full => dash_backrest::BackupType::Full,
            BackupTypeArg::Diff => dash_backrest::BackupType::Diff,
            BackupTypeArg::Incr => dash_backrest::BackupType::Incr,
        }
    }
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub dir: DirArg,
    #[command(flatten)]
    pub backrest: BackrestArgs,
    #[command(flatten)]
    pub etcd: EtcdArgs,
    /// A pgBackRest backup of this type (diff and incr build on the newest full; pgBackRest takes a full when there is none) [default with a repository: diff].
    #[arg(
        long = "type",
        value_enum,
        value_name = "TYPE",
        conflicts_with = "logical"
    )]
    pub ty: Option<BackupTypeArg>,
    /// A logical dump (pg_dump -Fc, latest.dump) instead, which is also what happens when no pgBackRest repository is configured.
    #[arg(long)]
    pub logical: bool,
    /// pgBackRest: copy from the primary even when a standby streams.
    #[arg(long, conflicts_with = "logical")]
    pub from_primary: bool,
    /// pgBackRest: after the backup, keep only the newest N full backups (with their diffs, incrs and WAL) instead of the repository config's repo1-retention-full.
    #[arg(long, value_name = "N", conflicts_with_all = ["logical", "keep_days"], value_parser = clap::value_parser!(u32).range(1..))]
    pub keep_full: Option<u32>,
    /// pgBackRest: after the backup, remove full backups older than D days (the newest older one stays: the window starts from it).
    #[arg(long, value_name = "D", conflicts_with = "logical", value_parser = clap::value_parser!(u32).range(1..))]
    pub keep_days: Option<u32>,
    /// Logical dumps: keep only the newest N made by `dashctl db backup` (older ones are deleted after a successful backup); default: keep all. pgBackRest keeps what its config's repo1-retention-full says.
    #[arg(long, value_name = "N")]
    pub keep: Option<usize>,
}

#[derive(Debug, Args)]
pub struct BackupsArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub dir: DirArg,
    #[command(flatten)]
    pub backrest: BackrestArgs,
}

#[derive(Debug, Args)]
pub struct VerifyBackupArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub dir: DirArg,
    #[command(flatten)]
    pub backrest: BackrestArgs,
    /// Verify the logical dump (FILE or latest.dump) even though a pgBackRest repository is configured.
    #[arg(long)]
    pub logical: bool,
    /// The dump [default: latest.dump in the backup directory]; without it and with a pgBackRest repository, the newest pgBackRest backup plus WAL is verified.
    pub file: Option<PathBuf>,
    /// Restore into a scratch database (dash_verify_*) on the primary instead of a throwaway local instance: needs CREATEDB there and puts the restore's load on it; for machines without the PostgreSQL server binaries.
    #[arg(long)]
    pub on_server: bool,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub dir: DirArg,
    #[command(flatten)]
    pub backrest: BackrestArgs,
    #[command(flatten)]
    pub etcd: EtcdArgs,
    /// The dump [default: latest.dump in the backup directory].
    pub file: Option<PathBuf>,
    /// Point in time: restore the whole cluster (pgBackRest) to what was committed at TIME (RFC 3339, or YYYY-MM-DD HH:MM:SS[.frac] in UTC), on a new timeline.
    #[arg(long, value_name = "TIME", value_parser = dash_runbook::pitr::target::parse_time, conflicts_with_all = ["file", "to_lsn", "before_event", "abort"])]
    pub to: Option<chrono::DateTime<chrono::Utc>>,
    /// Point in time: restore the whole cluster to this WAL position (0/3000060).
    #[arg(long, value_name = "LSN", value_parser = dash_runbook::pitr::target::parse_lsn, conflicts_with_all = ["file", "before_event", "abort"])]
    pub to_lsn: Option<u64>,
    /// Point in time: restore the whole cluster to just before the transaction that recorded event ID (GET /api/v1/events) committed.
    #[arg(long, value_name = "ID", conflicts_with_all = ["file", "abort"])]
    pub before_event: Option<i64>,
    /// Point in time: the node to restore on, whose data directory must be on this host [default: the leader when local, else the one local node]; the others re-clone from it.
    #[arg(long, value_name = "NODE")]
    pub on: Option<String>,
    /// Point in time: print every step and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Point in time: how long the members may take to lead and re-clone after the restored data is in place.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    pub wait: Duration,
    /// Point in time: the API is stopped (e.g. scaled to 0 while every volume is rebuilt), so no maintenance mode is turned on; without it, a restore refuses when the API does not answer.
    #[arg(long)]
    pub api_stopped: bool,
    /// Point in time: restore although the agent of a node recorded here is not running (when it comes back, its agent finds its server stuck behind the restored primary's timeline, 10 s without progress, and rewinds it or clones afresh).
    #[arg(long)]
    pub allow_missing: bool,
    /// Lift the cluster-wide halt an interrupted point-in-time restore left in etcd.
    #[arg(long, conflicts_with = "file")]
    pub abort: bool,
    /// Put the API into read-only maintenance mode for the restore (lifted afterwards, also on failure).
    #[arg(long)]
    pub stop_writes: bool,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
}

/// `300s`, `5m`, `1h 30m`, or bare seconds.
#[derive(Debug, Args)]
pub struct IncidentsArgs {
    #[command(flatten)]
    pub etcd: EtcdArgs,
    /// Only what happened since then: a duration back from now (24h, 30m) or an RFC 3339 time (2026-11-30T10:00:00Z).
    #[arg(long, value_name = "WHEN", value_parser = dash_runbook::incidents::parse_since)]
    pub since: Option<i64>,
    /// Decisions further apart than this start a new incident.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub gap: Duration,
    /// Print JSON instead of the timeline.
    #[arg(long)]
    pub json: bool,
}

pub fn parse_duration(v: &str) -> Result<Duration, String> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(v).map_err(|e| format!("{e} (use e.g. 300s, 5m, 500ms)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_the_runbook_form() {
        assert_eq!(parse_duration("300s"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("300"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert!(parse_duration("soon").is_err());
    }
}
