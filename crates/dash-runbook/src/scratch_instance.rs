//! Where `verify-backup` restores a dump: by default a throwaway PostgreSQL
//! instance started on this machine from the server binaries (so verifying
//! needs no privilege on the production server and puts no load on it); with
//! `--on-server`, a scratch database on the primary (needs CREATEDB).

use std::collections::BTreeMap;
use std::path::Path;

use dash_pg::ScratchNode;
use dash_store::{DbSettings, HostPort, Secret};

use super::backup::count_rows;
use super::output::Progress;
use super::session::{self, quote_ident, within, QUERY_DEADLINE};
use super::{tools, RunbookError, Target};

/// The database the dump is restored into inside a throwaway instance.
const LOCAL_DB: &str = "dash_verify";

/// The outcome of one restore into a scratch place.
pub struct ScratchRestore {
    /// Row counts after the restore, or why the restore failed.
    pub counts: Result<BTreeMap<String, i64>, RunbookError>,
    /// Where it was restored, for the report.
    pub place: String,
    /// The scratch instance or database is gone again.
    pub removed: bool,
    pub notes: Vec<String>,
}

/// Restores `dump` into a throwaway local instance; the instance is stopped
/// and its directory deleted afterwards, also when the restore failed.
pub async fn restore_locally(dump: &Path) -> Result<ScratchRestore, RunbookError> {
    let progress = Progress::start("starting a throwaway PostgreSQL instance".to_string());
    let started = tokio::task::spawn_blocking(ScratchNode::start)
        .await
        .map_err(|e| RunbookError::Invalid(format!("start task failed: {e}")))?;
    let node = match started {
        Ok(node) => node,
        Err(e) => {
            progress.finish("failed");
            return Err(RunbookError::Tool(format!(
                "cannot start a throwaway PostgreSQL instance from the server binaries: {e}; \
                 install the PostgreSQL server package (or set DASH_PG_BINDIR), or pass --on-server \
                 to restore into a scratch database on the primary instead (needs CREATEDB there)"
            )));
        }
    };
    progress.finish(&format!("port {}", node.port()));
    let place = format!(
        "a throwaway PostgreSQL {} instance on this machine ({}, port {})",
        node.binaries().version,
        node.binaries().bindir.display(),
        node.port()
    );
    let settings = DbSettings {
        hosts: vec![HostPort {
            host: node.host().to_string(),
            port: node.port(),
        }],
        dbname: LOCAL_DB.into(),
        user: node.superuser().to_string(),
        password: Secret::new(node.password()),
        ..DbSettings::default()
    };
    let counts = restore_local(&node, &settings, dump).await;
    let removed = tokio::task::spawn_blocking(move || {
        let dir = node.dir().to_path_buf();
        drop(node);
        !dir.exists()
    })
    .await
    .unwrap_or(false);
    let mut notes = Vec::new();
    if !removed {
        notes.push("the throwaway instance's directory could not be removed".into());
    }
    Ok(ScratchRestore {
        counts,
        place,
        removed,
        notes,
    })
}

async fn restore_local(
    node: &ScratchNode,
    settings: &DbSettings,
    dump: &Path,
) -> Result<BTreeMap<String, i64>, RunbookError> {
    let admin = session::connect(settings, &settings.hosts[0], "postgres").await?;
    within(
        "create the verification database",
        QUERY_DEADLINE * 6,
        admin.batch_execute(&format!(
            "CREATE DATABASE {} TEMPLATE template0",
            quote_ident(LOCAL_DB)
        )),
    )
    .await?;
    let label = format!("port {}", node.port());
    restore_and_count(settings, &settings.hosts[0], dump, LOCAL_DB, &label).await
}

/// Restores `dump` into a scratch database on the primary, which is always
/// dropped afterwards.
pub async fn restore_on_server(
    target: &Target,
    dump: &Path,
) -> Result<ScratchRestore, RunbookError> {
    let primary = session::primary(target).await?;
    let scratch = format!("dash_verify_{:08x}", rand::random::<u32>());
    within(
        "create the scratch database",
        QUERY_DEADLINE * 6,
        primary.client.batch_execute(&format!(
            "CREATE DATABASE {} TEMPLATE template0",
            quote_ident(&scratch)
        )),
    )
    .await
    .map_err(|e| match dash_core::error_chain(&e).contains("permission denied") {
        true => RunbookError::Tool(format!(
            "{}: --on-server needs CREATEDB for {}; without --on-server the dump is restored into a \
             throwaway local instance, which needs no privilege on the server",
            dash_core::error_chain(&e),
            target.settings.user
        )),
        false => e,
    })?;
    let counts = restore_and_count(&target.settings, &primary.host, dump, &scratch, &scratch).await;
    let dropped = within(
        "drop the scratch database",
        QUERY_DEADLINE * 6,
        primary.client.batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_ident(&scratch)
        )),
    )
    .await;
    let mut notes = Vec::new();
    if let Err(e) = &dropped {
        notes.push(format!(
            "could not drop scratch database {scratch}: {e}; drop it by hand"
        ));
    }
    Ok(ScratchRestore {
        counts,
        place: format!(
            "scratch database {scratch} on the primary {} (--on-server)",
            primary.host
        ),
        removed: dropped.is_ok(),
        notes,
    })
}

/// `pg_restore` into `dbname` on `host`, then its row counts.
async fn restore_and_count(
    settings: &DbSettings,
    host: &HostPort,
    dump: &Path,
    dbname: &str,
    label: &str,
) -> Result<BTreeMap<String, i64>, RunbookError> {
    let mut cmd = tools::command("pg_restore", settings, host, dbname);
    cmd.args(["--no-owner", "--no-privileges", "--exit-on-error"])
        .arg(dump);
    let progress = Progress::start(format!("restoring {} into {label}", dump.display()));
    let result = progress
        .track(tools::run(cmd, "pg_restore"), || "restoring".to_string())
        .await;
    progress.finish(if result.is_ok() { "restored" } else { "failed" });
    result?;
    let client = session::connect(settings, host, dbname).await?;
    count_rows(&client, None).await
}
