//! Recovering a restored data directory with a temporary server of our own
//! (127.0.0.1, a free port, nobody else's to find): `pgbackrest restore`
//! writes the backup and the recovery settings, the server replays the
//! archived WAL to the target and promotes onto a new timeline, and the
//! caller reads what it needs before the server is stopped cleanly. Used
//! by the cluster's restore (in a staging directory beside the node's data)
//! and by `verify-backup` (in a throwaway directory).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dash_backrest::{RecoveryTarget, Repo};
use dash_pg::{NodeConfig, PgBinaries, PgNode, StopMode};
use tokio_postgres::{Client, NoTls};

use crate::backup::count_rows;
use crate::output::Progress;
use crate::session::{within, QUERY_DEADLINE};
use crate::RunbookError;

/// How long recovery may replay WAL before the restore gives up.
pub const RECOVERY_LIMIT: Duration = Duration::from_secs(3 * 3600);

/// A recovered, promoted server on a directory of ours; stopped (at once)
/// when dropped, unless [`Recovered::stop_clean`] stopped it first.
pub struct Recovered {
    node: Option<PgNode>,
    client: Client,
    pub dir: PathBuf,
    /// Its new timeline and the LSN it promoted at.
    pub timeline: u32,
    pub lsn: String,
    /// The time of the last transaction it replayed, when it has one.
    pub last_commit: Option<chrono::DateTime<chrono::Utc>>,
    /// From the start of `pgbackrest restore` to the promotion.
    pub took: Duration,
}

fn join_err(e: tokio::task::JoinError) -> RunbookError {
    RunbookError::Invalid(format!("background task failed: {e}"))
}

/// Restores `set` (the newest backup when `None`) into `dir` (created; it
/// must not exist) and recovers it to `target`. With `archive`, the server
/// archives into `repo` while it promotes, so the new timeline's history
/// reaches the repository (a restore of the cluster needs that; a throwaway
/// verification must not write there).
pub async fn recover(
    repo: &Repo,
    dir: &Path,
    target: &RecoveryTarget,
    set: Option<&str>,
    superuser: &str,
    archive: bool,
) -> Result<Recovered, RunbookError> {
    let started = Instant::now();
    let progress = Progress::start(format!(
        "restoring {} from the repository into {}",
        set.unwrap_or("the newest backup"),
        dir.display()
    ));
    let (r, d, t, s) = (
        repo.clone(),
        dir.to_path_buf(),
        *target,
        set.map(str::to_string),
    );
    let restored = tokio::task::spawn_blocking(move || r.restore(&d, &t, s.as_deref()))
        .await
        .map_err(join_err)?;
    if let Err(e) = restored {
        progress.finish("failed");
        return Err(e.into());
    }
    progress.finish("done");

    let bins = PgBinaries::locate().map_err(|e| RunbookError::Tool(e.to_string()))?;
    let mut cfg = NodeConfig::new(dir, dash_pg::free_port(), "");
    cfg.superuser = superuser.to_string();
    let mut settings = vec![
        ("cluster_name", "dash-restore".to_string()),
        ("synchronous_standby_names", String::new()),
        ("hot_standby", "on".into()),
    ];
    match archive {
        true => settings.extend([
            ("archive_mode", "on".to_string()),
            ("archive_command", repo.archive_command()),
        ]),
        false => settings.push(("archive_mode", "off".into())),
    }
    for (k, v) in settings {
        cfg = cfg.with_setting(k, &v);
    }
    let node = PgNode::open(&bins, cfg).map_err(|e| RunbookError::Tool(e.to_string()))?;
    let progress = Progress::start(format!(
        "recovering to {} with a temporary server (port {})",
        words(target),
        node.port()
    ));
    let n = node.clone();
    let start = tokio::task::spawn_blocking(move || n.start())
        .await
        .map_err(join_err)?;
    if let Err(e) = start {
        progress.finish("failed");
        kill(&node);
        return Err(RunbookError::Tool(format!(
            "the restored data directory did not start: {e}"
        )));
    }
    let mut guard = Recovered {
        client: connect(&node, superuser, "postgres")
            .await
            .inspect_err(|_| kill(&node))?,
        node: Some(node),
        dir: dir.to_path_buf(),
        timeline: 0,
        lsn: String::new(),
        last_commit: None,
        took: Duration::ZERO,
    };
    let deadline = Instant::now() + RECOVERY_LIMIT;
    loop {
        let running = guard.node.as_ref().is_some_and(PgNode::is_running);
        let row = match running {
            true => {
                let sql =
                    "SELECT pg_is_in_recovery(), coalesce(pg_last_wal_replay_lsn()::text, '')";
                guard.client.query_one(sql, &[]).await
            }
            false => {
                progress.finish("failed");
                return Err(RunbookError::Tool(format!(
                    "recovery stopped before it promoted (the target may lie beyond the archived WAL); \
                     see the server's log in {}",
                    dir.display()
                )));
            }
        };
        match row {
            Ok(r) if !r.get::<_, bool>(0) => break,
            Ok(r) => progress.update(&format!("replayed to {}", r.get::<_, String>(1))),
            Err(_) => {
                // The server restarts its connections at promotion.
                guard.client =
                    connect(guard.node.as_ref().expect("running"), superuser, "postgres").await?;
            }
        }
        if Instant::now() > deadline {
            progress.finish("timed out");
            return Err(RunbookError::Timeout {
                context: "recovery".into(),
                limit: RECOVERY_LIMIT,
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let row = within(
        "read the recovered server's position",
        QUERY_DEADLINE,
        guard.client.query_one(
            "SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int, \
                    pg_current_wal_lsn()::text, pg_last_xact_replay_timestamp()",
            &[],
        ),
    )
    .await?;
    guard.timeline = row.get::<_, i32>(0) as u32;
    guard.lsn = row.get(1);
    guard.last_commit = row.get(2);
    guard.took = started.elapsed();
    progress.finish(&format!(
        "promoted on timeline {} at {}",
        guard.timeline, guard.lsn
    ));
    Ok(guard)
}

/// How a target reads in progress lines.
pub fn words(target: &RecoveryTarget) -> String {
    match target {
        RecoveryTarget::Time(t) => t.format("%Y-%m-%d %H:%M:%S%.6f UTC").to_string(),
        RecoveryTarget::Lsn(l) => format!("LSN {}", dash_pg::fmt_lsn(*l)),
        RecoveryTarget::Xid { xid, inclusive } => {
            format!(
                "transaction {xid} ({})",
                if *inclusive { "kept" } else { "excluded" }
            )
        }
        RecoveryTarget::EndOfArchive => "the end of the archived WAL".into(),
        RecoveryTarget::Immediate => "the backup's consistent point".into(),
    }
}

/// A session on `dbname` of `node`, over its Unix socket (trust).
async fn connect(node: &PgNode, user: &str, dbname: &str) -> Result<Client, RunbookError> {
    let mut cfg = tokio_postgres::Config::new();
    cfg.host_path(node.socket_dir())
        .port(node.port())
        .user(user)
        .dbname(dbname)
        .application_name("dash-restore")
        .connect_timeout(QUERY_DEADLINE);
    let (client, conn) = within(
        "connect to the recovered server",
        QUERY_DEADLINE,
        cfg.connect(NoTls),
    )
    .await?;
    tokio::spawn(conn);
    Ok(client)
}

fn kill(node: &PgNode) {
    let _ = node.stop(StopMode::Immediate);
}

impl Recovered {
    /// A session on `dbname` of the recovered server.
    pub async fn client_for(&self, dbname: &str, superuser: &str) -> Result<Client, RunbookError> {
        connect(self.node(), superuser, dbname).await
    }

    /// Row counts of every table of `dbname` in the recovered server.
    pub async fn counts(
        &self,
        dbname: &str,
        superuser: &str,
    ) -> Result<BTreeMap<String, i64>, RunbookError> {
        count_rows(&self.client_for(dbname, superuser).await?, None).await
    }

    /// The server, for checks that need their own connections.
    pub fn node(&self) -> &PgNode {
        self.node.as_ref().expect("running until stopped")
    }

    /// A checkpoint, then a clean (fast) shutdown: the directory is ready
    /// to start as a primary, with no recovery left to do.
    pub async fn stop_clean(mut self) -> Result<(), RunbookError> {
        let _ = within(
            "checkpoint",
            Duration::from_secs(600),
            self.client.batch_execute("CHECKPOINT"),
        )
        .await;
        let node = self.node.take().expect("running until stopped");
        tokio::task::spawn_blocking(move || node.stop(StopMode::Fast))
            .await
            .map_err(join_err)?
            .map_err(|e| RunbookError::Tool(format!("stop the recovered server: {e}")))
    }
}

impl Drop for Recovered {
    fn drop(&mut self) {
        if let Some(node) = self.node.take() {
            kill(&node);
        }
    }
}
