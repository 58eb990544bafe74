//! `dashctl db restore`: replace the database's contents with a dump, with guard
//! rails. It refuses a corrupt dump, refuses while the API has writers
//! connected unless told to stop them (`--stop-writes` puts the API into
//! read-only maintenance mode), asks first, restores in one transaction (all
//! or nothing), checks every table's row count against the dump's manifest,
//! moves every sequence past its column's maximum (a dump taken after a
//! botched restore carries rewound sequences), says which checks it could
//! not make, and lifts maintenance mode afterwards, also when something failed.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_postgres::Client;

use super::api_client::{ApiClient, Maintenance};
use super::backup::count_rows;
use super::confirm::confirm;
use super::manifest::{self, Manifest, TableCount};
use super::output::{duration, or_dash, Progress, Table};
use super::restore_checks::{self, RestoreCheck, Verdict};
use super::sequences::{self, SequenceRepair};
use super::session::{self, within, QUERY_DEADLINE};
use super::verify_backup::compare;
use super::{tools, RunbookError, Target};

/// How long every API process may take to follow maintenance mode.
const FOLLOW_LIMIT: Duration = Duration::from_secs(10);

/// How long the restore waits for in-flight writes after stopping them.
const DRAIN: Duration = Duration::from_secs(15);
/// `lock_timeout` of the restore: a session holding a table lock makes the
/// restore fail (and change nothing) instead of hanging.
const LOCK_TIMEOUT: &str = "30s";

/// `dashctl db restore` options.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// The dump (already resolved: symlinks followed).
    pub file: PathBuf,
    pub stop_writes: bool,
    pub yes: bool,
}

/// One of the API's sessions on the database.
#[derive(Debug, Clone, Serialize)]
pub struct ApiSession {
    pub pid: i32,
    pub state: String,
    pub client: String,
    /// It holds a transaction id: it is writing right now.
    pub writing: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    pub file: PathBuf,
    pub database: String,
    pub host: String,
    /// Maintenance mode was turned on for the restore.
    pub stopped_writes: bool,
    /// Maintenance mode was lifted afterwards (`None` when it was not ours to lift).
    pub maintenance_lifted: Option<bool>,
    pub tables: Vec<TableCount>,
    /// Every check, including those that could not be made.
    pub checks: Vec<RestoreCheck>,
    pub verdict: Verdict,
    /// Restored and verified (`verdict` is `verified`).
    pub ok: bool,
    pub duration_seconds: f64,
    pub notes: Vec<String>,
}

impl RestoreReport {
    pub fn render(&self) -> String {
        let mut out = format!(
            "Restored {} into {} on {} in {}\n",
            self.file.display(),
            self.database,
            self.host,
            duration(Duration::from_secs_f64(self.duration_seconds))
        );
        let compared = self.tables.iter().any(|t| t.expected.is_some());
        if compared {
            out.push_str(&TableCount::render_all(
                &self.tables,
                "ROWS IN DUMP",
                "ROWS NOW",
            ));
        } else if !self.tables.is_empty() {
            let mut t = Table::new(&["TABLE", "ROWS NOW"]);
            for c in &self.tables {
                t.row(vec![c.table.clone(), or_dash(c.found)]);
            }
            out.push_str(&t.render());
        }
        out.push_str(&restore_checks::render(&self.checks));
        out.push_str(&format!(
            "maintenance mode: {}\n",
            match (self.stopped_writes, self.maintenance_lifted) {
                (true, Some(true)) => "was on for the restore, now lifted",
                (true, _) => "STILL ON: lift it with `dashctl db maintenance off --yes`",
                (false, _) => "not used",
            }
        ));
        for n in &self.notes {
            out.push_str(&format!("note: {n}\n"));
        }
        out.push_str(&self.verdict.line(&self.checks));
        out
    }
}

/// The API's sessions on `dbname` (application_name `dash-api`).
pub async fn api_sessions(client: &Client, dbname: &str) -> Result<Vec<ApiSession>, RunbookError> {
    let app = dash_store::DbSettings::default().application_name;
    let rows = within(
        "read the API's sessions",
        QUERY_DEADLINE,
        client.query(
            "SELECT pid, coalesce(state, 'unknown'), coalesce(host(client_addr), 'local'),
                    backend_xid IS NOT NULL
             FROM pg_stat_activity
             WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
               AND datname = $1 AND application_name = $2",
            &[&dbname, &app],
        ),
    )
    .await?;
    Ok(rows
        .iter()
        .map(|r| ApiSession {
            pid: r.get(0),
            state: r.get(1),
            client: r.get(2),
            writing: r.get(3),
        })
        .collect())
}

/// Restores `opts.file` into the target database (see the module docs).
pub async fn restore(
    target: &Target,
    opts: &RestoreOptions,
) -> Result<RestoreReport, RunbookError> {
    let started = Instant::now();
    let file = &opts.file;
    let dbname = target.settings.dbname.clone();
    let mut notes = Vec::new();

    let path = file.clone();
    let checksum = tokio::task::spawn_blocking(move || manifest::check_checksum(&path))
        .await
        .map_err(|e| RunbookError::Invalid(format!("hashing task failed: {e}")))??;
    if checksum == "mismatch" {
        return Err(RunbookError::Refused(format!(
            "{} does not match its recorded sha256: it is corrupt or changed; pick another dump \
             (`dashctl db backups`) and check it with `dashctl db verify-backup FILE`",
            file.display()
        )));
    }
    let manifest = Manifest::load(file)?;
    match &manifest {
        None => {}
        Some(m) => match &m.verification {
            Some(v) if v.ok => {}
            Some(_) => notes.push("this dump FAILED its last verify-backup".into()),
            None => notes.push("this dump was never verified (`dashctl db verify-backup`)".into()),
        },
    }

    let primary = session::primary(target).await?;
    let sessions = api_sessions(&primary.client, &dbname).await?;
    let api = ApiClient::new(target.api.clone());
    let maintenance: Result<Maintenance, RunbookError> = match target.api.token {
        Some(_) => api.maintenance().await,
        None => Err(RunbookError::Usage(
            "no API token (--token or DASH_API_TOKEN)".into(),
        )),
    };
    let already_stopped = maintenance.as_ref().is_ok_and(|m| m.enabled);
    if !sessions.is_empty() && !already_stopped && !opts.stop_writes {
        let writing = sessions.iter().filter(|s| s.writing).count();
        let in_use = match &maintenance {
            Ok(m) => or_dash(m.pool_in_use),
            Err(_) => "unknown".into(),
        };
        return Err(RunbookError::Refused(format!(
            "the API has {} session(s) connected to {dbname} ({writing} writing now; pool in use {in_use}) \
             and is not in maintenance mode: a restore now would throw away the writes it accepts. \
             Pass --stop-writes to put the API into read-only maintenance mode for the restore, \
             or stop the API first",
            sessions.len()
        )));
    }
    let must_stop = opts.stop_writes && !already_stopped && !sessions.is_empty();
    if must_stop {
        if let Err(e) = &maintenance {
            return Err(match e {
                RunbookError::Usage(_) => RunbookError::Usage(
                    "--stop-writes needs an API token to turn on maintenance mode: pass --token or set DASH_API_TOKEN".into(),
                ),
                other => RunbookError::Api {
                    url: target.api.api_url.clone(),
                    message: format!("cannot turn on maintenance mode, so writes cannot be stopped: {other}"),
                },
            });
        }
    }
    if already_stopped {
        notes.push("the API was already in maintenance mode; it is left on".into());
    }

    let question = format!(
        "Restore {}{} into database {dbname} on {}?\n\
         Every table in {dbname} is dropped and recreated from the dump: changes since the dump are lost.\n{}",
        file.display(),
        manifest
            .as_ref()
            .map(|m| format!(" (taken {})", m.created_at.format("%Y-%m-%d %H:%M:%S UTC")))
            .unwrap_or_default(),
        primary.host,
        match (must_stop, sessions.is_empty()) {
            (true, _) => "The API goes into read-only maintenance mode until the restore is done.",
            (false, true) => "No API sessions are connected.",
            (false, false) => "The API is already in maintenance mode.",
        }
    );
    confirm(
        &format!("restore {} into {dbname}", file.display()),
        &question,
        opts.yes,
    )?;

    if must_stop {
        api.set_maintenance(true, &format!("dashctl db restore {}", file.display()))
            .await?;
        eprintln!(
            "maintenance mode on: the API refuses writes (503 maintenance), reads keep working"
        );
    }
    if must_stop || (already_stopped && !sessions.is_empty()) {
        // Every API process, not only the one asked, must have stopped writing.
        if let Err(e) = crate::admin::ensure_writes_stopped(target, FOLLOW_LIMIT).await {
            if must_stop {
                let _ = api.set_maintenance(false, "").await;
            }
            return Err(e);
        }
        eprintln!("every live API process follows maintenance mode: no writes anywhere");
    }
    let outcome = restore_and_check(target, &primary, file, &dbname, manifest.as_ref()).await;
    let lifted = match must_stop {
        true => Some(lift(&api).await),
        false => None,
    };
    if lifted == Some(false) {
        notes
            .push("could not lift maintenance mode: run `dashctl db maintenance off --yes`".into());
    }
    let (tables, repair) = match outcome {
        Ok(t) => t,
        Err(e) => {
            let state = match lifted {
                Some(true) => "maintenance mode was lifted",
                Some(false) => "maintenance mode is STILL ON (`dashctl db maintenance off --yes`)",
                None => "maintenance mode was not used",
            };
            return Err(RunbookError::Tool(format!(
                "{}; the restore ran in one transaction, so the database is unchanged; {state}",
                dash_core::error_chain(&e)
            )));
        }
    };
    let checks = vec![
        restore_checks::checksum(file, &checksum),
        restore_checks::row_counts(file, manifest.as_ref(), &tables),
        restore_checks::sequences(&repair),
    ];
    let verdict = Verdict::of(&checks);
    if verdict != Verdict::Failed {
        // The damaged relations are gone; so must be their checksum failures,
        // or diagnose would keep naming scenario 2.
        let reset = match session::connect(&target.settings, &primary.host, &dbname).await {
            Ok(c) => {
                within(
                    "pg_stat_reset",
                    QUERY_DEADLINE,
                    c.batch_execute("SELECT pg_stat_reset()"),
                )
                .await
            }
            Err(e) => Err(e),
        };
        match reset {
            Ok(()) => notes.push(format!(
                "statistics of {dbname} reset (pg_stat_reset): earlier checksum failures no longer count"
            )),
            Err(e) => notes.push(format!("could not reset the statistics of {dbname}: {e}")),
        }
    }
    Ok(RestoreReport {
        file: file.clone(),
        database: dbname,
        host: primary.host.to_string(),
        stopped_writes: must_stop,
        maintenance_lifted: lifted,
        tables,
        checks,
        ok: verdict == Verdict::Verified,
        verdict,
        duration_seconds: started.elapsed().as_secs_f64(),
        notes,
    })
}

/// Waits for in-flight writes, restores, compares row counts and moves the
/// sequences that are behind.
async fn restore_and_check(
    target: &Target,
    primary: &session::Primary,
    file: &Path,
    dbname: &str,
    manifest: Option<&Manifest>,
) -> Result<(Vec<TableCount>, Result<SequenceRepair, String>), RunbookError> {
    let deadline = Instant::now() + DRAIN;
    while Instant::now() < deadline {
        let writing = api_sessions(&primary.client, dbname).await?;
        if !writing.iter().any(|s| s.writing || s.state == "active") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut cmd = tools::command("pg_restore", &target.settings, &primary.host, dbname);
    cmd.args([
        "--clean",
        "--if-exists",
        "--single-transaction",
        "--exit-on-error",
        "--no-owner",
        "--no-privileges",
    ])
    .arg(file)
    .env("PGOPTIONS", format!("-c lock_timeout={LOCK_TIMEOUT}"));
    let progress = Progress::start(format!("pg_restore {} into {dbname}", file.display()));
    let result = tokio::select! {
        r = progress.track(tools::run(cmd, "pg_restore"), || "restoring (one transaction)".into()) => r,
        _ = tokio::signal::ctrl_c() => Err(RunbookError::Tool(
            "interrupted: pg_restore was stopped and its transaction rolled back".into(),
        )),
    };
    progress.finish(if result.is_ok() { "done" } else { "failed" });
    result?;

    let client = session::connect(&target.settings, &primary.host, dbname).await?;
    let found = count_rows(&client, None).await?;
    let expected = manifest.map(|m| m.tables.clone()).unwrap_or_default();
    let repair = sequences::advance_behind(&client)
        .await
        .map_err(|e| dash_core::error_chain(&e));
    Ok((compare(&expected, &found), repair))
}

/// Lifts maintenance mode, retrying briefly; whether it worked.
pub(crate) async fn lift(api: &ApiClient) -> bool {
    for attempt in 0..3 {
        match api.set_maintenance(false, "restore finished").await {
            Ok(()) => {
                eprintln!("maintenance mode lifted");
                return true;
            }
            Err(e) if attempt == 2 => eprintln!("could not lift maintenance mode: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
    false
}
