//! One node, step by step: TCP, authentication, an SQL round trip, then its
//! role, timeline, LSN, replication, sessions and checksum failures. Each
//! step has its own deadline and its own verdict, so a report says exactly
//! where a node stops answering.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use dash_store::pool::driver_config;
use dash_store::{ConnFailure, DbSettings};
use serde::Serialize;
use tokio::net::TcpStream;
use tokio_postgres::{Client, NoTls};

use super::session::{within, QUERY_DEADLINE};
use super::{NodeTarget, RunbookError};

/// The role a node's agent last recorded in etcd (a fenced node is not
/// judged: it is down or a standby on purpose).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Primary,
    Replica,
    /// Stopped and barred from accepting writes until it rejoins as a replica.
    Fenced,
}

/// Deadline of each probe step.
pub const STEP_DEADLINE: Duration = Duration::from_secs(3);

/// The outcome of one step.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Step {
    Ok { millis: f64 },
    Failed { reason: String, detail: String },
    Skipped,
}

impl Step {
    pub fn is_ok(&self) -> bool {
        matches!(self, Step::Ok { .. })
    }

    /// `ok 1.2ms`, `refused`, `-`.
    pub fn cell(&self) -> String {
        match self {
            Step::Ok { millis } => format!("ok {millis:.1}ms"),
            Step::Failed { reason, .. } => reason.clone(),
            Step::Skipped => "-".into(),
        }
    }

    fn failed(reason: &str, detail: impl Into<String>) -> Step {
        Step::Failed {
            reason: reason.into(),
            detail: detail.into(),
        }
    }
}

/// What a node is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeRole {
    Primary,
    Replica,
}

/// One row of `pg_stat_replication` (on a primary).
#[derive(Debug, Clone, Serialize)]
pub struct Replication {
    pub application_name: String,
    pub client: String,
    pub state: Option<String>,
    pub sync_state: Option<String>,
    pub replay_lsn: Option<String>,
    pub lag_bytes: Option<i64>,
    pub replay_lag_seconds: Option<f64>,
}

/// `pg_stat_wal_receiver` (on a replica).
#[derive(Debug, Clone, Serialize)]
pub struct WalReceiver {
    pub status: String,
    pub sender: String,
    pub received_timeline: Option<i64>,
    pub latest_end_lsn: Option<String>,
    pub last_message_age_seconds: Option<f64>,
}

/// Everything one probe learned about one node.
#[derive(Debug, Clone, Serialize)]
pub struct NodeProbe {
    pub name: String,
    pub address: String,
    pub recorded_role: Option<Role>,
    pub tcp: Step,
    pub auth: Step,
    pub sql: Step,
    pub role: Option<NodeRole>,
    pub server_version: Option<String>,
    pub timeline: Option<i64>,
    /// Current WAL position (primary) or replay position (replica).
    pub lsn: Option<String>,
    /// Bytes received but not yet replayed (replica).
    pub replay_backlog_bytes: Option<i64>,
    /// Age of the last replayed transaction (replica; grows while idle too).
    pub last_replay_age_seconds: Option<f64>,
    pub replication: Vec<Replication>,
    pub wal_receiver: Option<WalReceiver>,
    /// Client sessions by `pg_stat_activity.state`.
    pub sessions: BTreeMap<String, i64>,
    pub max_connections: Option<i64>,
    pub data_checksums: Option<bool>,
    /// Sum of `pg_stat_database.checksum_failures`.
    pub checksum_failures: Option<i64>,
    /// When the last one happened.
    pub checksum_last_failure: Option<String>,
    /// A detail query that failed after the node answered.
    pub error: Option<String>,
}

impl NodeProbe {
    pub(crate) fn new(node: &NodeTarget) -> NodeProbe {
        NodeProbe {
            name: node.name.clone(),
            address: node.address.to_string(),
            recorded_role: node.recorded_role,
            tcp: Step::Skipped,
            auth: Step::Skipped,
            sql: Step::Skipped,
            role: None,
            server_version: None,
            timeline: None,
            lsn: None,
            replay_backlog_bytes: None,
            last_replay_age_seconds: None,
            replication: Vec::new(),
            wal_receiver: None,
            sessions: BTreeMap::new(),
            max_connections: None,
            data_checksums: None,
            checksum_failures: None,
            checksum_last_failure: None,
            error: None,
        }
    }

    /// The node answered SQL.
    pub fn reachable(&self) -> bool {
        self.sql.is_ok()
    }

    /// The first failed step's reason and detail.
    pub fn failure(&self) -> Option<(&str, &str)> {
        [&self.tcp, &self.auth, &self.sql]
            .into_iter()
            .find_map(|s| match s {
                Step::Failed { reason, detail } => Some((reason.as_str(), detail.as_str())),
                _ => None,
            })
    }

    /// How long TCP, authentication and the SQL round trip took together.
    pub fn answer_millis(&self) -> f64 {
        [&self.tcp, &self.auth, &self.sql]
            .into_iter()
            .map(|s| match s {
                Step::Ok { millis } => *millis,
                _ => 0.0,
            })
            .sum()
    }

    /// Client sessions, all states together.
    pub fn total_sessions(&self) -> i64 {
        self.sessions.values().sum()
    }
}

/// Probes `node` with the target's credentials.
pub async fn probe(settings: &DbSettings, node: &NodeTarget) -> NodeProbe {
    let mut p = NodeProbe::new(node);
    let host = &node.address;

    let started = Instant::now();
    let tcp = TcpStream::connect((host.host.as_str(), host.port));
    match tokio::time::timeout(STEP_DEADLINE, tcp).await {
        Ok(Ok(_)) => {
            p.tcp = Step::Ok {
                millis: ms(started),
            }
        }
        Ok(Err(e)) => {
            let reason = match ConnFailure::of_io(&e) {
                ConnFailure::Refused => "refused",
                _ => "unreachable",
            };
            p.tcp = Step::failed(reason, e.to_string());
            return p;
        }
        Err(_) => {
            p.tcp = Step::failed("timeout", format!("no TCP answer within {STEP_DEADLINE:?}"));
            return p;
        }
    }

    let started = Instant::now();
    let mut config = driver_config(settings, host);
    config.connect_timeout(STEP_DEADLINE);
    let client = match tokio::time::timeout(STEP_DEADLINE, config.connect(NoTls)).await {
        Ok(Ok((client, conn))) => {
            tokio::spawn(async move {
                let _ = conn.await;
            });
            p.auth = Step::Ok {
                millis: ms(started),
            };
            client
        }
        Ok(Err(e)) => {
            p.auth = Step::failed(connect_reason(&e), error_text(&e));
            return p;
        }
        Err(_) => {
            p.auth = Step::failed(
                "timeout",
                format!("accepted TCP but no startup answer within {STEP_DEADLINE:?} (hung?)"),
            );
            return p;
        }
    };

    let started = Instant::now();
    match tokio::time::timeout(STEP_DEADLINE, client.simple_query("SELECT 1")).await {
        Ok(Ok(_)) => {
            p.sql = Step::Ok {
                millis: ms(started),
            }
        }
        Ok(Err(e)) => {
            p.sql = Step::failed("error", error_text(&e));
            return p;
        }
        Err(_) => {
            p.sql = Step::failed("timeout", format!("no answer within {STEP_DEADLINE:?}"));
            return p;
        }
    }

    if let Err(e) = details(&client, &mut p).await {
        p.error = Some(error_chain(&e));
    }
    p
}

/// Role, positions, replication, sessions, checksums.
async fn details(client: &Client, p: &mut NodeProbe) -> Result<(), RunbookError> {
    let row = within(
        "read the node's role and position",
        QUERY_DEADLINE,
        client.query_one(
            "SELECT pg_is_in_recovery(), current_setting('server_version'),
                    current_setting('max_connections')::int8,
                    current_setting('data_checksums') = 'on',
                    CASE WHEN pg_is_in_recovery()
                         THEN coalesce(pg_last_wal_replay_lsn(), pg_last_wal_receive_lsn())::text
                         ELSE pg_current_wal_lsn()::text END,
                    CASE WHEN pg_is_in_recovery() THEN NULL
                         ELSE pg_walfile_name(pg_current_wal_lsn()) END,
                    (SELECT timeline_id FROM pg_control_checkpoint())::int8,
                    CASE WHEN pg_is_in_recovery()
                         THEN pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::int8 END,
                    CASE WHEN pg_is_in_recovery()
                         THEN extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 END,
                    (SELECT coalesce(sum(checksum_failures), 0)::int8 FROM pg_stat_database),
                    (SELECT max(checksum_last_failure)::text FROM pg_stat_database)",
            &[],
        ),
    )
    .await?;
    let in_recovery: bool = row.get(0);
    p.role = Some(match in_recovery {
        true => NodeRole::Replica,
        false => NodeRole::Primary,
    });
    p.server_version = row.get(1);
    p.max_connections = row.get(2);
    p.data_checksums = row.get(3);
    p.lsn = row.get(4);
    let walfile: Option<String> = row.get(5);
    let checkpoint_timeline: Option<i64> = row.get(6);
    p.timeline = walfile
        .as_deref()
        .and_then(|f| i64::from_str_radix(f.get(..8)?, 16).ok())
        .or(checkpoint_timeline);
    p.replay_backlog_bytes = row.get(7);
    p.last_replay_age_seconds = row.get(8);
    p.checksum_failures = row.get(9);
    p.checksum_last_failure = row.get(10);

    let rows = within(
        "read pg_stat_activity",
        QUERY_DEADLINE,
        client.query(
            "SELECT coalesce(state, 'unknown'), count(*)::int8 FROM pg_stat_activity
             WHERE backend_type = 'client backend' GROUP BY 1",
            &[],
        ),
    )
    .await?;
    p.sessions = rows.iter().map(|r| (r.get(0), r.get(1))).collect();

    if in_recovery {
        let rows = within(
            "read pg_stat_wal_receiver",
            QUERY_DEADLINE,
            client.query(
                "SELECT status, coalesce(sender_host, '') || ':' || coalesce(sender_port::text, ''),
                        received_tli::int8, latest_end_lsn::text,
                        extract(epoch FROM now() - last_msg_receipt_time)::float8
                 FROM pg_stat_wal_receiver",
                &[],
            ),
        )
        .await?;
        p.wal_receiver = rows.first().map(|r| WalReceiver {
            status: r.get(0),
            sender: r.get(1),
            received_timeline: r.get(2),
            latest_end_lsn: r.get(3),
            last_message_age_seconds: r.get(4),
        });
        if let Some(tli) = p.wal_receiver.as_ref().and_then(|w| w.received_timeline) {
            p.timeline = Some(tli);
        }
    } else {
        let rows = within(
            "read pg_stat_replication",
            QUERY_DEADLINE,
            client.query(
                "SELECT coalesce(application_name, ''), coalesce(host(client_addr), 'local'),
                        state, sync_state, replay_lsn::text,
                        pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::int8,
                        extract(epoch FROM replay_lag)::float8
                 FROM pg_stat_replication ORDER BY application_name",
                &[],
            ),
        )
        .await?;
        p.replication = rows
            .iter()
            .map(|r| Replication {
                application_name: r.get(0),
                client: r.get(1),
                state: r.get(2),
                sync_state: r.get(3),
                replay_lsn: r.get(4),
                lag_bytes: r.get(5),
                replay_lag_seconds: r.get(6),
            })
            .collect();
    }
    Ok(())
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

/// Why a connection attempt that reached the server failed.
fn connect_reason(e: &tokio_postgres::Error) -> &'static str {
    match ConnFailure::of(e) {
        ConnFailure::Auth => "auth",
        ConnFailure::TooManyConnections => "too_many_connections",
        ConnFailure::NotAccepting => "not_accepting",
        ConnFailure::NoDatabase => "no_database",
        ConnFailure::Refused => "refused",
        ConnFailure::Reset
        | ConnFailure::Timeout
        | ConnFailure::ServerTimeout
        | ConnFailure::Server
        | ConnFailure::Other => "error",
    }
}

/// The driver error with its cause (the database's own message).
pub fn error_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => match std::error::Error::source(e) {
            Some(s) => format!("{e}: {s}"),
            None => e.to_string(),
        },
    }
}

/// An error and its causes on one line (shared with every crate).
pub use dash_core::error_chain;
