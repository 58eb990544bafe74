//! Scenario 4 on the primary: sessions by state, the longest-running queries,
//! idle-in-transaction sessions and their age, and ending those sessions
//! (the runbook's `pg_stat_activity` and `pg_terminate_backend` queries).
//! Listing lives here; ending sessions in `terminate.rs`.

mod terminate;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use tokio_postgres::Client;

use super::output::{or_dash, seconds, Table};
use super::session::{self, within, QUERY_DEADLINE};
use super::{RunbookError, Target};

pub use terminate::{run_terminate, terminate, Ended, TerminateReport};

/// The states the runbook calls "idle in transaction".
const IDLE_IN_TX: &str = "state IN ('idle in transaction', 'idle in transaction (aborted)')";

/// One client session from `pg_stat_activity`.
#[derive(Debug, Clone, Serialize)]
pub struct Session {
    pub pid: i32,
    pub user: Option<String>,
    pub application: String,
    pub client: Option<String>,
    pub database: Option<String>,
    pub state: String,
    /// Since its last query started (the runbook's measure of age).
    pub query_seconds: Option<f64>,
    /// Since its transaction started.
    pub transaction_seconds: Option<f64>,
    /// Since its state last changed (how long it has been idle).
    pub state_seconds: Option<f64>,
    pub wait: Option<String>,
    /// Only with `--show-queries`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
}

/// Reads client sessions; `filter` is an SQL condition on `pg_stat_activity`.
async fn sessions(
    client: &Client,
    filter: &str,
    show_queries: bool,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<Session>, RunbookError> {
    let query = match show_queries {
        true => "left(query, 500)",
        false => "NULL::text",
    };
    let sql = format!(
        "SELECT pid, usename::text, coalesce(application_name, ''), host(client_addr),
                datname::text, coalesce(state, 'unknown'),
                extract(epoch FROM now() - query_start)::float8,
                extract(epoch FROM now() - xact_start)::float8,
                extract(epoch FROM now() - state_change)::float8,
                CASE WHEN wait_event IS NULL THEN NULL ELSE wait_event_type || ':' || wait_event END,
                {query}
         FROM pg_stat_activity
         WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND ({filter})
         ORDER BY query_start ASC NULLS LAST"
    );
    let rows = within(
        "read pg_stat_activity",
        QUERY_DEADLINE,
        client.query(&sql, params),
    )
    .await?;
    Ok(rows
        .iter()
        .map(|r| Session {
            pid: r.get(0),
            user: r.get(1),
            application: r.get(2),
            client: r.get(3),
            database: r.get(4),
            state: r.get(5),
            query_seconds: r.get(6),
            transaction_seconds: r.get(7),
            state_seconds: r.get(8),
            wait: r.get(9),
            query: r.get(10),
        })
        .collect())
}

/// `dashctl db connections`.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionsReport {
    pub node: String,
    pub max_connections: i64,
    pub total: i64,
    pub by_state: BTreeMap<String, i64>,
    /// Sessions not idle, longest first (the runbook's "long-running queries").
    pub long_running: Vec<Session>,
    /// Idle-in-transaction sessions, oldest first.
    pub idle_in_transaction: Vec<Session>,
}

/// Reads the primary's sessions; at most `limit` long-running ones.
pub async fn connections(
    client: &Client,
    node: &str,
    show_queries: bool,
    limit: usize,
) -> Result<ConnectionsReport, RunbookError> {
    let all = sessions(client, "true", show_queries, &[]).await?;
    let row = within(
        "read max_connections",
        QUERY_DEADLINE,
        client.query_one("SELECT current_setting('max_connections')::int8", &[]),
    )
    .await?;
    let mut by_state = BTreeMap::new();
    for s in &all {
        *by_state.entry(s.state.clone()).or_insert(0) += 1;
    }
    // The listing leaves out our own session; it is active, and counted, so
    // that the states add up to the total.
    *by_state.entry("active".to_string()).or_insert(0) += 1;
    let mut long_running: Vec<Session> =
        all.iter().filter(|s| s.state != "idle").cloned().collect();
    long_running.sort_by(|a, b| {
        b.query_seconds
            .unwrap_or(0.0)
            .total_cmp(&a.query_seconds.unwrap_or(0.0))
    });
    long_running.truncate(limit);
    let idle_in_transaction = all
        .iter()
        .filter(|s| s.state.starts_with("idle in transaction"))
        .cloned()
        .collect();
    Ok(ConnectionsReport {
        node: node.to_string(),
        max_connections: row.get(0),
        total: all.len() as i64 + 1,
        by_state,
        long_running,
        idle_in_transaction,
    })
}

fn session_table(sessions: &[Session], show_queries: bool) -> String {
    let mut headers = vec![
        "PID",
        "USER",
        "APPLICATION",
        "CLIENT",
        "DATABASE",
        "STATE",
        "QUERY AGE",
        "XACT AGE",
        "WAIT",
    ];
    if show_queries {
        headers.push("QUERY");
    }
    let mut t = Table::new(&headers);
    for s in sessions {
        let mut row = vec![
            s.pid.to_string(),
            or_dash(s.user.clone()),
            s.application.clone(),
            or_dash(s.client.clone()),
            or_dash(s.database.clone()),
            s.state.clone(),
            s.query_seconds.map_or("-".into(), seconds),
            s.transaction_seconds.map_or("-".into(), seconds),
            or_dash(s.wait.clone()),
        ];
        if show_queries {
            row.push(
                s.query
                    .as_deref()
                    .unwrap_or("")
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" "),
            );
        }
        t.row(row);
    }
    t.render()
}

impl ConnectionsReport {
    pub fn render(&self, show_queries: bool) -> String {
        let states: Vec<String> = self
            .by_state
            .iter()
            .map(|(s, n)| format!("{s} {n}"))
            .collect();
        let mut out = format!(
            "Sessions on {}: {} of max_connections {} ({:.0}%): {} (this dashctl session counts as active)\n",
            self.node,
            self.total,
            self.max_connections,
            100.0 * self.total as f64 / self.max_connections.max(1) as f64,
            states.join(", ")
        );
        out.push_str("\nLong-running (not idle), longest first\n");
        match self.long_running.is_empty() {
            true => out.push_str("  none\n"),
            false => out.push_str(&session_table(&self.long_running, show_queries)),
        }
        out.push_str("\nIdle in transaction, oldest first\n");
        match self.idle_in_transaction.is_empty() {
            true => out.push_str("  none\n"),
            false => out.push_str(&session_table(&self.idle_in_transaction, show_queries)),
        }
        if !show_queries {
            out.push_str("\n(query text hidden; pass --show-queries to see it)\n");
        }
        out
    }
}

/// Idle-in-transaction sessions whose last query started more than
/// `older_than` ago (the runbook's condition).
pub async fn idle_in_transaction(
    client: &Client,
    older_than: Duration,
) -> Result<Vec<Session>, RunbookError> {
    let filter = format!("{IDLE_IN_TX} AND extract(epoch FROM now() - query_start)::float8 > $1");
    sessions(client, &filter, false, &[&older_than.as_secs_f64()]).await
}

/// `dashctl db connections`: the sessions on the target's primary.
pub async fn show(
    target: &Target,
    show_queries: bool,
    limit: usize,
) -> Result<ConnectionsReport, RunbookError> {
    let p = session::primary(target).await?;
    connections(&p.client, &p.host.to_string(), show_queries, limit).await
}
