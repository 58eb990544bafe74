//! `dashctl db restore --to TIME | --to-lsn LSN | --before-event ID`: the
//! whole cluster back to a point in time, on a new timeline.
//!
//! 1. checks: a repository, etcd, this host holds a node's data, a backup
//!    that ended before the point; 2. maintenance mode (the API stops
//!    writing; what it accepted after the point would be thrown away);
//! 3. the primary switches WAL and waits until it is archived; 4. the
//!    backup plus WAL is restored into `<data>.restore` and recovered to the
//!    point by a server of our own, which promotes; row counts are read and
//!    it stops cleanly (the cluster still runs, read-only, meanwhile);
//! 5. a halt in etcd: every agent stops its server; 6. the staged directory
//!    replaces the node's data (the old one kept as `<data>.before-restore`);
//! 7. the halt names that node (and a sync record lets only it lead): the
//!    other members set their data aside; 8. the halt is lifted: the node
//!    leads, the others clone from it, the API's pool finds it; 9. checks
//!    on the live primary, and maintenance mode lifted.
//!
//! Anything that fails before step 5 changes nothing (the staging directory
//! is removed, maintenance lifted). After it, the halt stays until the
//! operator lifts it (`--abort`): a half-restored cluster never restarts
//! on its own.

use std::time::{Duration, Instant};

use dash_dcs::Halt;
use serde::Serialize;

use super::files::{remove_dir, swap};
use super::target::{check_reachable, pick_set, Wanted};
use dash_node::layout;

use super::{halt, LocalNode, Setup};
use crate::api_client::ApiClient;
use crate::output::duration;
use crate::session::{self, within, QUERY_DEADLINE};
use crate::{confirm, RunbookError, Target};

/// How long the agents may take to stop, or to set their data aside.
const HALT_LIMIT: Duration = Duration::from_secs(60);
/// How long the archiver may take to archive the switched WAL segment.
const FLUSH_LIMIT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct PitrRestoreOptions {
    pub wanted: Wanted,
    /// The node to restore on (default: the leader when it is local, else
    /// the one local node).
    pub on: Option<String>,
    pub dry_run: bool,
    pub yes: bool,
    /// How long the members may take to lead and clone again.
    pub wait: Duration,
    /// The API is stopped (scaled to zero): no maintenance mode to turn on.
    pub api_stopped: bool,
    /// Restore although a local node's agent is not running.
    pub allow_missing: bool,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct PitrRestoreReport {
    pub point: String,
    pub backup: String,
    pub node: String,
    pub steps: Vec<String>,
    pub dry_run: bool,
    pub timeline: Option<u32>,
    pub lsn: Option<String>,
    /// Staged restore and recovery, seconds.
    pub recovery_seconds: f64,
    /// From maintenance on to the cluster running again, seconds.
    pub writes_stopped_seconds: f64,
    pub total_seconds: f64,
    /// Tables whose live row count differs from what recovery produced.
    pub count_differences: Vec<String>,
    pub notes: Vec<String>,
    pub ok: bool,
}

impl PitrRestoreReport {
    pub fn render(&self) -> String {
        let mut out = format!(
            "restore to {} from backup {} on {}\n",
            self.point, self.backup, self.node
        );
        for s in &self.steps {
            out.push_str(&format!("  {s}\n"));
        }
        if self.dry_run {
            out.push_str("DRY RUN: nothing was changed\n");
            return out;
        }
        out.push_str(&format!(
            "  timeline {} at {}; recovery {}, writes stopped {}, total {}\n",
            self.timeline.map_or("-".into(), |t| t.to_string()),
            self.lsn.as_deref().unwrap_or("-"),
            duration(Duration::from_secs_f64(self.recovery_seconds)),
            duration(Duration::from_secs_f64(self.writes_stopped_seconds)),
            duration(Duration::from_secs_f64(self.total_seconds)),
        ));
        for d in &self.count_differences {
            out.push_str(&format!("  rows: {d}\n"));
        }
        for n in &self.notes {
            out.push_str(&format!("  note: {n}\n"));
        }
        out.push_str(if self.ok {
            "RESTORED AND VERIFIED\n"
        } else {
            "RESTORED WITH PROBLEMS\n"
        });
        out
    }
}

/// The node to restore on: `--on`, else the leader when its data is here,
/// else the only local node.
fn choose_node<'a>(
    setup: &'a Setup,
    on: Option<&str>,
    leader: Option<&str>,
) -> Result<&'a LocalNode, RunbookError> {
    if let Some(name) = on {
        return setup.node(name).ok_or_else(|| {
            RunbookError::Usage(format!(
                "--on {name}: its data directory is not on this host"
            ))
        });
    }
    if let Some(n) = leader.and_then(|l| setup.node(l)) {
        return Ok(n);
    }
    match setup.local.as_slice() {
        [one] => Ok(one),
        [] => Err(RunbookError::Usage(
            "no database node's data directory is on this host: run the restore where one is \
             (beside `dashctl up`, or `kubectl exec -n dash postgres-0 -- dashctl db restore …`)"
                .into(),
        )),
        many => Ok(&many[0]),
    }
}

/// Restores the cluster to `opts.wanted` (see the module docs).
pub async fn restore(
    target: &Target,
    setup: &Setup,
    opts: &PitrRestoreOptions,
) -> Result<PitrRestoreReport, RunbookError> {
    let started = Instant::now();
    let (etcd, dcs, view) = halt::connect(setup, "a point-in-time restore").await?;
    if view.halt.is_some() {
        return Err(RunbookError::Refused(
            "a halt already stands in etcd: `dashctl db restore --abort` lifts it".into(),
        ));
    }
    let members: Vec<String> = view.members.iter().map(|m| m.name.clone()).collect();
    let leader = view.leader.as_ref().map(|l| l.name.clone());
    let node = choose_node(setup, opts.on.as_deref(), leader.as_deref())?.clone();
    if !members.contains(&node.name) {
        return Err(RunbookError::Refused(format!(
            "{}'s agent is not running (no member record in etcd): start it first",
            node.name
        )));
    }
    // A member whose agent is down would miss the halt and come back with
    // data from the old history, which cannot follow the restored primary.
    let missing: Vec<&str> = (setup.local.iter())
        .map(|n| n.name.as_str())
        .filter(|n| !members.iter().any(|m| m == n))
        .collect();
    if !missing.is_empty() && !opts.allow_missing {
        return Err(RunbookError::Refused(format!(
            "the agent of {} is not running (no member record in etcd): it would miss the restore and \
             come back with data from the old history. Start it first, or pass --allow-missing: when \
             it comes back, its agent finds its server stuck behind the restored primary's timeline \
             and rewinds it (or clones afresh when a rewind cannot work)",
            missing.join(", ")
        )));
    }
    let primary = session::primary(target).await.ok();
    let point = opts
        .wanted
        .resolve(primary.as_ref().map(|p| &p.client))
        .await?;
    let repo = setup.repo.clone();
    let cat = tokio::task::spawn_blocking(move || repo.info())
        .await
        .map_err(|e| RunbookError::Invalid(format!("info task: {e}")))??;
    let set = pick_set(&cat, &point)
        .map_err(RunbookError::Refused)?
        .label
        .clone();
    let staging = layout::restore_staging_dir(&node.data_dir);
    let aside = layout::set_aside_dir(&node.data_dir);
    let others: Vec<&String> = members.iter().filter(|m| **m != node.name).collect();
    let mut report = PitrRestoreReport {
        point: point.words.clone(),
        backup: set.clone(),
        node: node.name.clone(),
        dry_run: opts.dry_run,
        ..Default::default()
    };
    report.steps = vec![
        format!("1. check: repository {}, backup {set} ended before the point, {}'s data is here, etcd {} (checked now: ok)", setup.repo.config.display(), node.name, etcd.endpoints.join(",")),
        match opts.api_stopped {
            false => "2. maintenance mode on: the API refuses writes (503 maintenance) until the end".into(),
            true => "2. (--api-stopped: the API is stopped, no maintenance mode)".into(),
        },
        format!("3. the primary ({}) switches WAL and waits until it is archived", primary.as_ref().map_or("none answers: skipped".to_string(), |p| format!("{}:{}", p.host.host, p.host.port))),
        format!("4. restore {set} plus WAL into {} and recover to {} with a temporary server, which promotes onto a new timeline; read its row counts; stop it cleanly (the cluster keeps serving reads)", staging.display(), point.words),
        format!("5. halt in etcd: every agent ({}) stops its server and the leader gives up the key", members.join(", ")),
        format!("6. {} becomes {}; the staged directory takes its place", node.data_dir.display(), aside.display()),
        format!("7. the halt names {}: {} set their data aside (kept as <data>.before-restore)", node.name, if others.is_empty() { "no other member".to_string() } else { others.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ") }),
        format!("8. lift the halt: {} leads, the others clone from it, the API's pool follows (within {})", node.name, duration(opts.wait)),
        "9. check: live row counts against the recovered ones; maintenance mode off".into(),
    ];
    if opts.dry_run {
        report.ok = true;
        return Ok(report);
    }
    confirm::confirm(
        &format!("restore the cluster to {}", point.words),
        &format!(
            "Restore the whole cluster to {} (backup {set})?\nEvery write after that point is thrown away; \
             the current data is kept aside as <data>.before-restore.",
            point.words
        ),
        opts.yes,
    )?;
    let api = (!opts.api_stopped).then(|| ApiClient::new(target.api.clone()));
    if let Some(api) = &api {
        if target.api.token.is_none() {
            return Err(RunbookError::Usage(
                "a restore stops the API's writes first: it needs the API token (--token or DASH_API_TOKEN)".into(),
            ));
        }
        api.set_maintenance(true, &format!("dashctl db restore to {}", point.words))
            .await?;
    } else {
        report
            .notes
            .push("--api-stopped: no maintenance mode (the API was declared stopped)".into());
    }
    let stopped_at = Instant::now();
    let staged = async {
        if api.is_some() {
            crate::admin::ensure_writes_stopped(target, Duration::from_secs(10)).await?;
        }
        if let Some(p) = &primary {
            flush_archive(&p.client).await?;
        }
        let repo = setup.repo.clone();
        let cat = tokio::task::spawn_blocking(move || repo.info())
            .await
            .map_err(|e| RunbookError::Invalid(format!("info task: {e}")))??;
        check_reachable(&cat, &point).map_err(RunbookError::Refused)?;
        remove_dir(&staging).await?;
        let rec = super::staging::recover(
            &setup.repo,
            &staging,
            &point.target,
            Some(&set),
            &setup.superuser,
            true,
        )
        .await?;
        let counts = rec.counts(&setup.dbname, &setup.superuser).await?;
        let facts = (rec.timeline, rec.lsn.clone(), rec.took);
        rec.stop_clean().await?;
        Ok::<_, RunbookError>((counts, facts))
    }
    .await;
    let (counts, (timeline, lsn, took)) = match staged {
        Ok(s) => s,
        Err(e) => {
            let _ = remove_dir(&staging).await;
            lift(&api).await;
            return Err(e);
        }
    };
    (report.timeline, report.lsn, report.recovery_seconds) =
        (Some(timeline), Some(lsn), took.as_secs_f64());

    let halt_record = Halt {
        by: format!("dashctl db restore on {}", hostname()),
        reason: format!("restore to {}", point.words),
        restored: None,
    };
    halt::file(&dcs, &etcd, &halt_record).await?;
    if let Err(e) = halt::wait_halted(&dcs, &etcd, &members, HALT_LIMIT).await {
        let _ = halt::lift(&dcs, &etcd).await;
        let _ = remove_dir(&staging).await;
        lift(&api).await;
        return Err(e);
    }
    let after_halt = async {
        swap(&node, &staging, &aside).await?;
        halt::mark_restored(&dcs, &etcd, &node.name, &members, HALT_LIMIT).await?;
        halt::lift(&dcs, &etcd).await?;
        halt::wait_running(&dcs, &etcd, &node.name, &members, opts.wait).await
    };
    if let Err(e) = after_halt.await {
        return Err(RunbookError::Invalid(format!(
            "{}; the restore stopped after the halt. `dashctl db status` shows where it stands: \
             a halt still standing keeps every server stopped until `dashctl db restore --abort` \
             (or a new restore); maintenance mode stays on until `dashctl db maintenance off --yes`",
            dash_core::error_chain(&e)
        )));
    }

    let live = match session::primary(target).await {
        Ok(p) => crate::backup::count_rows(&p.client, None).await.ok(),
        Err(_) => None,
    };
    match live {
        Some(live) => {
            for (table, n) in &counts {
                let now = live.get(table).copied().unwrap_or(-1);
                if now != *n {
                    report
                        .count_differences
                        .push(format!("{table}: recovered {n}, live {now}"));
                }
            }
        }
        None => report
            .notes
            .push("could not count the live primary's rows".into()),
    }
    if !lift(&api).await {
        report
            .notes
            .push("could not lift maintenance mode: run `dashctl db maintenance off --yes`".into());
    }
    report.writes_stopped_seconds = stopped_at.elapsed().as_secs_f64();
    report.total_seconds = started.elapsed().as_secs_f64();
    report.notes.push(format!(
        "the previous data of {} is kept in {} (and the other members' beside theirs): remove it once satisfied; \
         take a new full backup (`dashctl db backup --type full`)",
        node.name,
        aside.display()
    ));
    report.ok = report.count_differences.is_empty();
    Ok(report)
}

/// Lifts maintenance mode when the restore turned it on.
async fn lift(api: &Option<ApiClient>) -> bool {
    match api {
        Some(api) => crate::restore::lift(api).await,
        None => true,
    }
}

/// The primary switches to a new WAL segment and waits until the archiver
/// took the old one: everything written up to now is in the repository.
async fn flush_archive(client: &tokio_postgres::Client) -> Result<(), RunbookError> {
    let row = within(
        "switch WAL",
        QUERY_DEADLINE,
        client.query_one("SELECT pg_walfile_name(pg_switch_wal())", &[]),
    )
    .await?;
    let segment: String = row.get(0);
    let deadline = Instant::now() + FLUSH_LIMIT;
    loop {
        let row = within(
            "read pg_stat_archiver",
            QUERY_DEADLINE,
            client.query_one(
                "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver",
                &[],
            ),
        )
        .await?;
        let last: String = row.get(0);
        // Same timeline: names order as segments do (`.partial`/`.history` files sort apart).
        if last.len() >= 24 && last[..24] >= *segment.as_str() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(RunbookError::Refused(format!(
                "WAL segment {segment} was not archived within {}s (last archived: {last:?}): \
                 archiving is stalled (see dash_node_archive_* and the PostgreSQL log); nothing was changed",
                FLUSH_LIMIT.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "this host".into())
}
