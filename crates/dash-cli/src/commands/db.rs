//! `dashctl db ...`: the runbook's database procedures. Commands and exit
//! codes live here, their arguments in `db/args.rs`; every step is done (and
//! rendered) by `dash_runbook`.

mod args;
mod pitr;

use clap::Subcommand;
use dash_runbook::{
    self, admin, backup, backups, connections, diagnose, exit, ha, restore, status, verify_backup,
    ApiFlags, RunbookError, Target,
};
use serde::Serialize;

use super::UsageError;
pub use args::*;

/// `dashctl db` subcommands.
#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Scenario 3, unplanned, through etcd from any host (--etcd, DASH_ETCD_ENDPOINTS, or beside `dashctl up` the etcd its cluster.json records): files the failover and waits until another member holds the leader key and answers /primary 200. With a leader, its agent kills its PostgreSQL at once (no clean shutdown) and releases the key to --target or the recorded synchronous standby (--target must be one), which holds every acknowledged write; a leader whose node API does not answer keeps its key until its agent acts or its lease expires (nothing deletes it). With the key free and no recorded synchronous standby running, --target X --accept-data-loss lets exactly X take the key.
    #[command(after_help = "Exit codes:
  0  done (or --dry-run: checked and printed, nothing changed)
  1  the command failed (error and causes printed; e.g. etcd unreachable)
  2  bad usage or configuration (e.g. no etcd given or recorded, --accept-data-loss without --target)
  3  no new writable leader within --wait (a request nobody acted on is withdrawn)
  4  refused: a --target that is not a recorded synchronous standby (without --accept-data-loss when the key is free), no recorded synchronous standby, a target whose agent or standby is not running, --accept-data-loss while a leader holds the key or a recorded standby runs, a pending request, or an agent refused (its reason printed); or no --yes without a terminal")]
    Failover(DbFailoverArgs),
    /// Scenario 3, planned and zero-loss, through etcd from any host (--etcd, DASH_ETCD_ENDPOINTS, or beside `dashctl up` the etcd its cluster.json records): files the switchover to --target or the recorded synchronous standby (only a synchronous standby, which holds every acknowledged write, may take over); the leader narrows the sync set to it, stops cleanly and releases the key; waits until another member holds the leader key and answers /primary 200.
    #[command(after_help = "Exit codes:
  0  done (or --dry-run: checked and printed, nothing changed)
  1  the command failed (error and causes printed; e.g. etcd unreachable)
  2  bad usage or configuration (e.g. no etcd given or recorded)
  3  no new writable leader within --wait (a request nobody acted on is withdrawn)
  4  refused: no leader key, no recorded synchronous standby, a --target that is not one, a pending request, or the leader's agent refused (its reason printed); or no --yes without a terminal")]
    Switchover(SwitchoverArgs),
    /// "Consider enabling HA": add a streaming replica to the running `dashctl up` platform ($DASH_HOME), online. Records the node in cluster.json; the running platform starts its agent, which clones the leader (pg_basebackup, while the leader keeps serving writes; its synchronous standby set is unchanged, so no write waits) and streams; the API's pool tries it too. Waits, with progress, until it streams and has caught up; it then becomes the synchronous standby, hence the failover target, if the present one is lost.
    #[command(after_help = "Exit codes:
  0  added: streaming and caught up (or --dry-run: checked and printed, nothing recorded)
  1  the command failed (error and causes printed)
  2  bad usage or configuration (no cluster recorded, a bad or used --name, a taken port)
  3  recorded, but not streaming and caught up within --wait (or no running platform started its agent); it stays recorded and its agent keeps trying
  4  refused: no node answers as the key-holding primary (the platform is not running); nothing recorded")]
    AddReplica(AddReplicaArgs),
    /// Post-incident: the timeline of each incident (detections, fences, releases, promotions, rejoins, refusals, operator requests) from the HA history the agents keep in etcd (--etcd, DASH_ETCD_ENDPOINTS, or beside `dashctl up` its local etcd), merged with the API's maintenance and pool changes from the database's admin log, grouped by quiet gaps, ready for the review.
    #[command(after_help = "Exit codes:
  0  printed (also when nothing was recorded)
  1  the command failed: neither etcd nor the database could be read (errors printed)
  2  bad usage or configuration")]
    Incidents(IncidentsArgs),
    /// Initial Assessment: per node TCP, auth and SQL reachability, role, timeline, LSN, replication and lag, sessions by state; the API's pool from its metrics. With --etcd: the HA view too (the leader key, the sync set, every member with what its node API /status says, the newest HA history), and the nodes probed are etcd's members.
    #[command(after_help = "Exit codes:
  0  healthy: a writable primary and every node answer
  1  the command failed (error and causes printed)
  2  bad usage or configuration
  3  degraded: a node does not answer, a replica is not streaming, or checksum failures; with --etcd also: etcd unreachable, no leader key, the leader's /primary not 200, no synchronous standby recorded
  5  no writable primary answers")]
    Status(StatusArgs),
    /// Name the situation (healthy or runbook scenario 1-4) with its evidence and the exact command that fixes it. With --etcd, what etcd and the agents say is evidence too. With the API's metrics readable, also advises a pool size per API process from the waits, in-use peak and acquire timeouts observed, the API process count and what max_connections leaves, with the arithmetic and every assumed figure shown.
    #[command(after_help = "Exit codes:
  0   healthy
  10  scenario 1: connection issue (a node refused and recovered, a node down, connection errors rising; with --etcd: etcd unreachable, no leader key, the leader's /primary not 200, no synchronous standby, a member not streaming)
  20  scenario 2: corruption (checksum failures in pg_stat_database; amcheck failures with --deep; a sequence behind its column's maximum, e.g. after a raw pg_restore into the live database: fix printed as SQL through dashctl psql)
  30  scenario 3: primary lost, a replica can be promoted (fix: dashctl db failover; with --etcd the agents promote the recorded synchronous standby themselves)
  40  scenario 4: pool exhaustion (clients waiting, acquire timeouts, old idle-in-transaction sessions, sessions near max_connections)
  1   the command failed
  2   bad usage or configuration")]
    Diagnose(DiagnoseArgs),
    /// Scenario 4: sessions by state, the longest-running queries, and idle-in-transaction sessions with their age.
    #[command(after_help = "Exit codes:
  0  listed
  1  the command failed (error and causes printed)
  2  bad usage or configuration")]
    Connections(ConnectionsArgs),
    /// Scenario 4: end idle-in-transaction sessions whose last query started longer ago than --older-than, and report each one.
    #[command(after_help = "Exit codes:
  0  every matching session was ended (or none matched, or --dry-run)
  1  the command failed (error and causes printed)
  2  bad usage or configuration
  3  a session did not exit within 5s of being signalled
  4  refused: no terminal to confirm on and no --yes, or the answer was not yes")]
    Terminate(TerminateArgs),
    /// Scenario 4: show the API's pool, or change its maximum size live on every API process with --size (no restart): the size is kept in the database, every process follows it within a second or so; waits (up to 10s, with progress) until every live API instance reports it, reports each one, and reads pg_pool_max_size back.
    #[command(after_help = "Exit codes:
  0  shown, or changed, confirmed by pg_pool_max_size and followed by every live API instance
  1  the command failed (error and causes printed)
  2  bad usage or configuration (e.g. no API token)
  3  changed, but pg_pool_max_size does not show it, the database was out of reach (only the answering process changed), or a live API instance did not follow within 10s
  4  refused: no terminal to confirm on and no --yes, or the answer was not yes")]
    Pool(PoolArgs),
    /// Show read-only maintenance mode, or turn it on/off on every API process (writes answer 503 `maintenance`, reads work). The setting is kept in the database and every API process follows it within a second or so; after a change this waits (up to 10s, with progress) until every live API instance reports it, and reports each one. Instances not seen for 5s are not waited for.
    #[command(after_help = "Exit codes:
  0  shown, or changed and followed by every live API instance
  1  the command failed (error and causes printed)
  2  bad usage or configuration (e.g. no API token)
  3  changed, but not cluster-wide: the database was out of reach (only the answering process changed), or a live API instance did not follow within 10s
  4  refused: no terminal to confirm on and no --yes, or the answer was not yes")]
    Maintenance(MaintenanceArgs),
    /// Scenario 2: with a pgBackRest repository (beside `dashctl up`, or --pgbackrest-config / DASH_PGBACKREST_CONFIG) a physical backup (--type full|diff|incr, default diff) copied from a streaming standby when there is one, pgBackRest's retention applied after it; the primary's node agent takes it when its data directory is on another host. With --logical, or without a repository: a custom-format dump of the primary (pg_dump -Fc) with a sha256 file and a manifest of row counts; latest.dump points at it.
    #[command(after_help = "Exit codes:
  0  the backup is complete (a dump: latest.dump points at it)
  1  the command failed (error and causes printed)
  2  bad usage or configuration")]
    Backup(BackupArgs),
    /// Scenario 2: list dumps with size, age, checksum state and whether each was verified; with a pgBackRest repository also its backups, the restorable window (oldest backup's end to the newest archived WAL) and the last verification.
    #[command(after_help = "Exit codes:
  0  listed
  1  the command failed (error and causes printed)
  2  bad usage or configuration
  3  a dump does not match its checksum")]
    Backups(BackupsArgs),
    /// Scenario 2: with a pgBackRest repository (and neither FILE nor --logical), restore the newest backup plus all archived WAL into a throwaway instance on this machine (archiving off: nothing is written to the repository or the database nodes), check it promotes, every live table is there (row counts side by side) and amcheck passes, and record the result in the repository. Otherwise: restore a dump into a throwaway PostgreSQL instance started on this machine from the server binaries (removed afterwards: no privilege on the database server and no load there), or with --on-server into a scratch database on the primary (always dropped; needs CREATEDB); compare row counts with the backup's, check the checksum, record the result.
    #[command(after_help = "Exit codes:
  0  verified
  1  the command failed (error and causes printed; e.g. no server binaries for the throwaway instance)
  2  bad usage or configuration
  3  verification failed (checksum mismatch, restore error or row counts differ)")]
    VerifyBackup(VerifyBackupArgs),
    /// Scenario 2. With --to TIME, --to-lsn LSN or --before-event ID: the whole cluster back to that point with pgBackRest, on a new timeline: maintenance mode on, WAL flushed to the archive, the backup plus WAL recovered in <data>.restore beside the node's data (the cluster keeps serving reads), then a halt in etcd stops every agent's server, the recovered directory replaces the node's (the old one kept as <data>.before-restore), the other members set theirs aside and re-clone from it, the API follows; row counts checked, maintenance off. --dry-run prints every step. With FILE or nothing: restore a dump into the database (one transaction), refusing while the API has writers connected unless --stop-writes; then check row counts against the dump's manifest, move every sequence that is behind past its column's maximum, say which checks could not be made, and lift maintenance mode.
    #[command(after_help = "Exit codes:
  0  restored and verified (a dump: checksum ok, row counts match the manifest, every sequence at or past its column's maximum; a point in time: the live row counts match the recovered ones); --dry-run or --abort: done
  1  the command failed (error and causes printed; a dump: the database is unchanged; a point in time: unchanged when it failed before the halt, else the halt stands until --abort)
  2  bad usage or configuration (no repository, no etcd, no node's data on this host)
  3  restored, but not verified: a check failed or could not be made
  4  refused: writers connected without --stop-writes, a corrupt dump, no backup before the point, a point beyond the archived WAL, archiving stalled, a halt already standing, no terminal and no --yes, or the answer was not yes")]
    Restore(RestoreArgs),
}

pub async fn run(cmd: DbCommand) -> anyhow::Result<u8> {
    match cmd {
        DbCommand::Failover(a) => {
            let etcd = request_etcd(&a.etcd.etcd)?;
            finish(failover_etcd(&etcd, &a).await)
        }
        DbCommand::Switchover(a) => {
            let etcd = request_etcd(&a.etcd.etcd)?;
            finish(switchover_etcd(&etcd, &a).await)
        }
        DbCommand::Incidents(a) => {
            let r = async {
                let t = Target::from_env(&ApiFlags::default())?;
                let etcd = a.etcd.target().or_else(|| t.etcd.clone());
                dash_runbook::incidents::gather(etcd.as_ref(), &t, a.gap, a.since).await
            };
            finish(
                r.await
                    .map(|r| print(a.json, &r, r.render(), dash_runbook::exit::OK)),
            )
        }
        DbCommand::AddReplica(a) => {
            let opts = dash_runbook::add_replica::AddReplicaOptions {
                home: super::dash_home(),
                node: dash_platform::NewNode {
                    name: a.name,
                    pg_port: a.pg_port,
                    node_port: a.node_port,
                },
                wait: a.wait,
                dry_run: a.dry_run,
            };
            let r = dash_runbook::add_replica::add_replica(&opts).await;
            finish(r.map(|r| print(a.json, &r, r.render(), r.exit_code())))
        }
        other => finish(dispatch(other).await),
    }
}

/// Where a failover or switchover is filed (and incidents are read):
/// `--etcd`/`DASH_ETCD_ENDPOINTS`,
/// else the local etcd `$DASH_HOME/cluster.json` records.
fn request_etcd(args: &EtcdArgs) -> Result<ha::EtcdTarget, UsageError> {
    args.target().or_else(recorded_etcd).ok_or_else(|| {
        UsageError(
            "no etcd to use: pass --etcd URLS (or set DASH_ETCD_ENDPOINTS) naming the node agents' etcd, or run beside `dashctl up` (its $DASH_HOME/cluster.json records one)".into(),
        )
    })
}

/// The local etcd that `$DASH_HOME/cluster.json` records (beside `dashctl up`).
fn recorded_etcd() -> Option<ha::EtcdTarget> {
    Target::from_env(&ApiFlags::default()).ok()?.etcd
}

async fn dispatch(cmd: DbCommand) -> Result<u8, RunbookError> {
    match cmd {
        DbCommand::Failover(_)
        | DbCommand::Switchover(_)
        | DbCommand::Incidents(_)
        | DbCommand::AddReplica(_) => {
            unreachable!("run() handles these itself")
        }
        DbCommand::Status(a) => {
            let t = target(&a.common)?;
            let r = match a.etcd.target().or_else(|| t.etcd.clone()) {
                Some(etcd) => status::gather_ha(&t, &etcd).await,
                None => status::gather(&t).await,
            };
            Ok(emit(&a.common, &r, r.render(), r.exit_code()))
        }
        DbCommand::Diagnose(a) => {
            let t = target(&a.common)?;
            let opts = diagnose::DiagnoseOptions {
                window: a.window,
                deep: a.deep,
                idle_threshold: a.idle_threshold,
                etcd: a.etcd.target().or_else(|| t.etcd.clone()),
                api_replicas: a.api_replicas.map(usize::from),
                ..Default::default()
            };
            let d = diagnose::diagnose(&t, &opts).await;
            Ok(emit(&a.common, &d, d.render(), d.exit_code))
        }
        DbCommand::Connections(a) => {
            let r = connections::show(&target(&a.common)?, a.show_queries, a.limit).await?;
            Ok(emit(&a.common, &r, r.render(a.show_queries), exit::OK))
        }
        DbCommand::Terminate(a) => {
            let t = target(&a.common)?;
            let r = connections::run_terminate(&t, a.older_than, a.dry_run, a.yes).await?;
            Ok(emit(&a.common, &r, r.render(), r.exit_code()))
        }
        DbCommand::Pool(a) => {
            let r = admin::pool(&target(&a.common)?, a.size, a.yes).await?;
            Ok(emit(&a.common, &r, r.render(), r.exit_code()))
        }
        DbCommand::Maintenance(a) => {
            let enable = a.state.map(|s| matches!(s, OnOff::On));
            let r = admin::maintenance(&target(&a.common)?, enable, &a.reason, a.yes).await?;
            Ok(emit(&a.common, &r, r.render(), r.exit_code()))
        }
        DbCommand::Backup(a) if a.ty.is_some() || (!a.logical && a.backrest.configured()) => {
            pitr::backup(a).await
        }
        DbCommand::Backup(a) => {
            let opts = backup::BackupOptions {
                dir: backup::backup_dir(a.dir.dir)?,
                keep: a.keep,
            };
            let r = backup::backup(&target(&a.common)?, &opts).await?;
            Ok(emit(&a.common, &r, r.render(), exit::OK))
        }
        DbCommand::Backups(a) if a.backrest.configured() => pitr::backups(a).await,
        DbCommand::Backups(a) => {
            let dir = backup::backup_dir(a.dir.dir)?;
            let r = tokio::task::spawn_blocking(move || backups::list(&dir))
                .await
                .map_err(|e| RunbookError::Invalid(format!("listing task failed: {e}")))??;
            let code = match r.backups.iter().any(|b| b.checksum == "mismatch") {
                true => exit::CHECK_FAILED,
                false => exit::OK,
            };
            Ok(emit(&a.common, &r, r.render(), code))
        }
        DbCommand::VerifyBackup(a)
            if a.file.is_none() && !a.logical && !a.on_server && a.backrest.configured() =>
        {
            pitr::verify(a).await
        }
        DbCommand::VerifyBackup(a) => {
            let t = target(&a.common)?;
            let dump = backup::resolve_dump(&backup::backup_dir(a.dir.dir)?, a.file.as_deref())?;
            let opts = verify_backup::VerifyOptions {
                on_server: a.on_server,
            };
            let r = verify_backup::verify_backup(&t, &dump, &opts).await?;
            let code = if r.ok { exit::OK } else { exit::CHECK_FAILED };
            Ok(emit(&a.common, &r, r.render(), code))
        }
        DbCommand::Restore(a)
            if a.to.is_some() || a.to_lsn.is_some() || a.before_event.is_some() || a.abort =>
        {
            pitr::restore(a).await
        }
        DbCommand::Restore(a) => {
            let t = target(&a.common)?;
            let file = backup::resolve_dump(&backup::backup_dir(a.dir.dir)?, a.file.as_deref())?;
            let opts = restore::RestoreOptions {
                file,
                stop_writes: a.stop_writes,
                yes: a.yes,
            };
            let r = restore::restore(&t, &opts).await?;
            let code = if r.ok { exit::OK } else { exit::CHECK_FAILED };
            Ok(emit(&a.common, &r, r.render(), code))
        }
    }
}

/// The switchover through etcd: the leader's agent hands over.
async fn switchover_etcd(etcd: &ha::EtcdTarget, a: &SwitchoverArgs) -> Result<u8, RunbookError> {
    let opts = ha::switchover::SwitchoverOptions {
        target: a.request.target.clone(),
        dry_run: a.request.dry_run,
        yes: a.request.yes,
        wait: a.etcd.wait,
    };
    let r = ha::switchover::switchover(etcd, &opts).await?;
    Ok(print(a.request.json, &r, r.render(), r.exit_code()))
}

/// The failover through etcd: the leader's agent fences and hands over, or
/// the target takes a free key.
async fn failover_etcd(etcd: &ha::EtcdTarget, a: &DbFailoverArgs) -> Result<u8, RunbookError> {
    let opts = ha::failover::FailoverOptions {
        target: a.request.target.clone(),
        accept_data_loss: a.accept_data_loss,
        dry_run: a.request.dry_run,
        yes: a.request.yes,
        wait: a.etcd.wait,
    };
    let r = ha::failover::failover(etcd, &opts).await?;
    Ok(print(a.request.json, &r, r.render(), r.exit_code()))
}

/// Where the database and the API are (environment, topology, flags).
pub fn target(c: &Common) -> Result<Target, RunbookError> {
    Target::from_env(&ApiFlags {
        api: c.api.clone(),
        metrics: c.metrics.clone(),
        token: c.token.clone(),
    })
}

/// Prints the report (JSON or table) and returns its exit code.
pub fn emit(c: &Common, report: &impl Serialize, table: String, code: u8) -> u8 {
    print(c.json, report, table, code)
}

/// [`emit`] for commands whose `--json` is their own.
fn print(json: bool, report: &impl Serialize, table: String, code: u8) -> u8 {
    if json {
        match serde_json::to_string_pretty(report) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("dashctl: cannot encode the report as JSON: {e}");
                return exit::FAILURE;
            }
        }
    } else {
        print!("{table}");
    }
    code
}

/// Maps runbook errors to exit codes: refusals 4 (with the reason printed),
/// usage 2, anything else 1 with its causes.
pub fn finish(result: Result<u8, RunbookError>) -> anyhow::Result<u8> {
    match result {
        Ok(code) => Ok(code),
        Err(e) if e.is_refusal() => {
            eprintln!("dashctl: refused: {e}");
            Ok(dash_runbook::exit::REFUSED)
        }
        Err(e) if e.is_usage() => Err(UsageError(e.to_string()).into()),
        Err(e) => Err(e.into()),
    }
}
