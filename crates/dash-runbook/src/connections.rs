//! Scenario 4 on the primary: sessions by state, the longest-running queries,
//! idle-in-transaction sessions and their age, and ending those sessions
//! (the runbook's `pg_stat_activity` and `pg_terminate_backend` queries).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use tokio_postgres::Client;

use super::confirm::confirm;
use super::output::{or_dash, seconds, Table};
use super::session::{self, within, QUERY_DEADLINE};
use super::{RunbookError, Target};

/// The states the runbook calls "idle in transaction".
const IDLE_IN_TX: &str = "state IN ('idle in transaction', 'idle in transaction (aborted)')";
/// How long `pg_terminate_backend` waits for each session to end.
const TERMINATE_WAIT_MS: i64 = 5000;

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
        // The listing leaves out our own session; count it.
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
            "Sessions on {}: {} of max_connections {} ({:.0}%): {}\n",
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

/// One session `terminate` considered.
#[derive(Debug, Clone, Serialize)]
pub struct Ended {
    pub session: Session,
    /// `pg_terminate_backend` ended it (and it is gone).
    pub ended: bool,
    pub note: String,
}

/// `dashctl db terminate --idle-in-transaction`.
#[derive(Debug, Clone, Serialize)]
pub struct TerminateReport {
    pub node: String,
    pub older_than_seconds: f64,
    pub dry_run: bool,
    pub sessions: Vec<Ended>,
}

impl TerminateReport {
    pub fn ended(&self) -> usize {
        self.sessions.iter().filter(|e| e.ended).count()
    }

    /// 0 unless a session was signalled and did not exit in time.
    pub fn exit_code(&self) -> u8 {
        let stuck = (self.sessions.iter()).any(|e| !e.ended && e.note.starts_with("still running"));
        match stuck {
            true => super::exit::CHECK_FAILED,
            false => super::exit::OK,
        }
    }

    pub fn render(&self) -> String {
        let mut out = format!(
            "Idle-in-transaction sessions on {} whose last query started over {} ago: {}\n",
            self.node,
            seconds(self.older_than_seconds),
            self.sessions.len()
        );
        if self.sessions.is_empty() {
            return out;
        }
        let mut t = Table::new(&[
            "PID",
            "USER",
            "APPLICATION",
            "CLIENT",
            "DATABASE",
            "AGE",
            "RESULT",
        ]);
        for e in &self.sessions {
            t.row(vec![
                e.session.pid.to_string(),
                or_dash(e.session.user.clone()),
                e.session.application.clone(),
                or_dash(e.session.client.clone()),
                or_dash(e.session.database.clone()),
                e.session.query_seconds.map_or("-".into(), seconds),
                e.note.clone(),
            ]);
        }
        out.push_str(&t.render());
        out.push_str(&match self.dry_run {
            true => "dry run: nothing was ended\n".to_string(),
            false => format!("ended {} of {}\n", self.ended(), self.sessions.len()),
        });
        out
    }
}

/// Ends each of `candidates` that still matches the condition (a session that
/// committed since it was listed is left alone), waiting for each to exit.
pub async fn terminate(
    client: &Client,
    candidates: Vec<Session>,
    older_than: Duration,
) -> Result<Vec<Ended>, RunbookError> {
    let pids: Vec<i32> = candidates.iter().map(|s| s.pid).collect();
    let sql = format!(
        "SELECT pid, pg_terminate_backend(pid, $3) FROM pg_stat_activity
         WHERE pid = ANY($1) AND pid <> pg_backend_pid() AND {IDLE_IN_TX}
           AND extract(epoch FROM now() - query_start)::float8 > $2"
    );
    let limit =
        QUERY_DEADLINE + Duration::from_millis(TERMINATE_WAIT_MS as u64) * pids.len() as u32;
    let rows = within(
        "pg_terminate_backend",
        limit,
        client.query(
            &sql,
            &[&pids, &older_than.as_secs_f64(), &TERMINATE_WAIT_MS],
        ),
    )
    .await?;
    let result: BTreeMap<i32, bool> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    Ok(candidates
        .into_iter()
        .map(|session| {
            let (ended, note) = match result.get(&session.pid) {
                Some(true) => (true, "ended".to_string()),
                Some(false) => (false, "still running after 5s".to_string()),
                None => (false, "skipped: no longer idle in transaction".to_string()),
            };
            Ended {
                session,
                ended,
                note,
            }
        })
        .collect())
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

/// `dashctl db terminate --idle-in-transaction --older-than D`: lists the
/// sessions, asks, ends them, and reports each one.
pub async fn run_terminate(
    target: &Target,
    older_than: Duration,
    dry_run: bool,
    yes: bool,
) -> Result<TerminateReport, RunbookError> {
    let p = session::primary(target).await?;
    let candidates = idle_in_transaction(&p.client, older_than).await?;
    let report = |sessions| TerminateReport {
        node: p.host.to_string(),
        older_than_seconds: older_than.as_secs_f64(),
        dry_run,
        sessions,
    };
    if dry_run || candidates.is_empty() {
        let note = "would end (dry run)".to_string();
        return Ok(report(
            candidates
                .into_iter()
                .map(|session| Ended {
                    session,
                    ended: false,
                    note: note.clone(),
                })
                .collect(),
        ));
    }
    let list: Vec<String> = (candidates.iter())
        .map(|s| {
            format!(
                "  pid {} {} {} {} idle in transaction {}",
                s.pid,
                or_dash(s.user.clone()),
                s.application,
                or_dash(s.database.clone()),
                s.query_seconds.map_or("-".into(), seconds)
            )
        })
        .collect();
    confirm(
        &format!("terminate {} session(s)", candidates.len()),
        &format!(
            "End these {} session(s) on {} (their open transactions roll back)?\n{}",
            candidates.len(),
            p.host,
            list.join("\n")
        ),
        yes,
    )?;
    Ok(report(terminate(&p.client, candidates, older_than).await?))
}
