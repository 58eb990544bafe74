//! `dashctl db terminate --idle-in-transaction`: ends the primary's
//! idle-in-transaction sessions older than a threshold, after asking, with
//! `pg_terminate_backend`, and reports each one.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use tokio_postgres::Client;

use super::{idle_in_transaction, Session, IDLE_IN_TX};
use crate::confirm::confirm;
use crate::output::{or_dash, seconds, Table};
use crate::session::{self, within, QUERY_DEADLINE};
use crate::{RunbookError, Target};

/// How long `pg_terminate_backend` waits for each session to end.
const TERMINATE_WAIT_MS: i64 = 5000;

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
            true => crate::exit::CHECK_FAILED,
            false => crate::exit::OK,
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
