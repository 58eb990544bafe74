//! The restore's side of the cluster-wide halt (`dash_dcs::Halt`): file it,
//! wait until every agent stopped its server and the key is free, name the
//! member holding the restored cluster and wait until the others set their
//! data aside, lift it and wait until the restored member leads and the
//! others stream from it again.

use std::time::{Duration, Instant};

use dash_dcs::{ClusterView, Dcs, Halt};

use crate::ha::EtcdTarget;
use crate::output::Progress;
use crate::RunbookError;

/// How often the restore reads etcd while it waits.
const POLL: Duration = Duration::from_millis(200);

/// Waits until `done(view)` says `Ok(true)`, or `limit` passes (an error
/// naming `what` and the last reason it gave).
async fn wait_for(
    dcs: &Dcs,
    etcd: &EtcdTarget,
    what: &str,
    limit: Duration,
    done: impl Fn(&ClusterView) -> Result<(), String>,
) -> Result<ClusterView, RunbookError> {
    let progress = Progress::start(what.to_string());
    let deadline = Instant::now() + limit;
    let mut last: String;
    loop {
        match dcs.view().await {
            Ok(v) => match done(&v) {
                Ok(()) => {
                    progress.finish("done");
                    return Ok(v);
                }
                Err(why) => {
                    progress.update(&why);
                    last = why;
                }
            },
            Err(e) if Instant::now() > deadline => return Err(RunbookError::etcd(etcd, e)),
            Err(e) => last = e.to_string(),
        }
        if Instant::now() > deadline {
            progress.finish("timed out");
            return Err(RunbookError::Refused(format!(
                "{what}: not done within {}s ({last})",
                limit.as_secs()
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Files the halt; refuses when one already stands.
pub async fn file(dcs: &Dcs, etcd: &EtcdTarget, halt: &Halt) -> Result<(), RunbookError> {
    match dcs.file_halt(halt).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(RunbookError::Refused(
            "a halt already stands in etcd (another restore, or one that was interrupted): \
             see `dashctl db status`; `dashctl db restore --abort` lifts it"
                .into(),
        )),
        Err(e) => Err(RunbookError::etcd(etcd, e)),
    }
}

/// Waits until no member holds the key and every member reports `halted`.
pub async fn wait_halted(
    dcs: &Dcs,
    etcd: &EtcdTarget,
    members: &[String],
    limit: Duration,
) -> Result<ClusterView, RunbookError> {
    wait_for(dcs, etcd, "every agent stops its server", limit, |v| {
        if let Some(l) = &v.leader {
            return Err(format!("{} still holds the leader key", l.name));
        }
        for name in members {
            match v.member(name) {
                Some(m) if m.role == "halted" || m.role == "set-aside" => {}
                Some(m) => return Err(format!("{name} reports {}", m.role)),
                None => return Err(format!("{name}'s agent has no member record")),
            }
        }
        Ok(())
    })
    .await
}

/// Names `member` as holding the restored cluster and waits until every
/// other member set its data aside.
pub async fn mark_restored(
    dcs: &Dcs,
    etcd: &EtcdTarget,
    member: &str,
    members: &[String],
    limit: Duration,
) -> Result<(), RunbookError> {
    let view = dcs.view().await.map_err(|e| RunbookError::etcd(etcd, e))?;
    let Some(halt) = view.halt else {
        return Err(RunbookError::Refused(
            "the halt was lifted by someone else while the restore ran: the restored data is in place \
             but the other members were not told; run `dashctl db restore` again"
                .into(),
        ));
    };
    let marked = (dcs
        .mark_restored(halt.mod_revision, &halt.value, member)
        .await)
        .map_err(|e| RunbookError::etcd(etcd, e))?;
    if !marked {
        return Err(RunbookError::Refused(
            "the halt changed, or a member took the leader key, while the restore ran".into(),
        ));
    }
    let others: Vec<&String> = members.iter().filter(|m| *m != member).collect();
    wait_for(
        dcs,
        etcd,
        "the other members set their data aside",
        limit,
        |v| {
            for name in &others {
                match v.member(name) {
                    Some(m) if m.role == "set-aside" => {}
                    Some(m) => return Err(format!("{name} reports {}", m.role)),
                    None => return Err(format!("{name}'s agent has no member record")),
                }
            }
            Ok(())
        },
    )
    .await
    .map(drop)
}

/// Lifts the halt (whatever it says).
pub async fn lift(dcs: &Dcs, etcd: &EtcdTarget) -> Result<bool, RunbookError> {
    dcs.lift_halt()
        .await
        .map_err(|e| RunbookError::etcd(etcd, e))
}

/// Waits until `leader` leads as a primary and every other member streams
/// from it.
pub async fn wait_running(
    dcs: &Dcs,
    etcd: &EtcdTarget,
    leader: &str,
    members: &[String],
    limit: Duration,
) -> Result<(), RunbookError> {
    let what = format!("{leader} leads and the others clone from it");
    wait_for(dcs, etcd, &what, limit, |v| {
        match (&v.leader, v.member(leader)) {
            (Some(l), Some(m)) if l.name == leader && m.role == "primary" => {}
            (Some(l), _) if l.name != leader => return Err(format!("{} took the key", l.name)),
            _ => return Err(format!("{leader} is not primary yet")),
        }
        for name in members.iter().filter(|m| *m != leader) {
            match v.member(name) {
                Some(m) if m.role == "replica" && m.streaming => {}
                Some(m) => return Err(format!("{name} reports {}", m.role)),
                None => return Err(format!("{name}'s agent has no member record")),
            }
        }
        Ok(())
    })
    .await
    .map(drop)
}

/// The agents' etcd, connected, and what it holds now; `what` says which
/// command needs it when none is configured.
pub async fn connect(
    setup: &super::Setup,
    what: &str,
) -> Result<(EtcdTarget, Dcs, ClusterView), RunbookError> {
    let etcd = setup.etcd.clone().ok_or_else(|| {
        RunbookError::Usage(format!(
            "{what} works through the node agents' etcd: pass --etcd URLS or set DASH_ETCD_ENDPOINTS"
        ))
    })?;
    let dcs = (etcd.connect().await).map_err(|e| RunbookError::etcd(&etcd, e))?;
    let view = dcs.view().await.map_err(|e| RunbookError::etcd(&etcd, e))?;
    Ok((etcd, dcs, view))
}

/// `--abort`: lifts a halt that an interrupted restore left standing.
pub async fn abort(setup: &super::Setup) -> Result<String, RunbookError> {
    let (etcd, dcs, view) = connect(setup, "--abort").await?;
    let Some(h) = view.halt else {
        return Ok("no halt stands: nothing to lift".into());
    };
    lift(&dcs, &etcd).await?;
    Ok(match h.value.restored {
        Some(m) => format!("halt lifted: {m} holds the restored cluster and leads; members that set their data aside clone from it"),
        None => "halt lifted before any data was replaced: the agents restart the cluster as it was".into(),
    })
}
