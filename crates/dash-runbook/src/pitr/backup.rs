//! `dashctl db backup` with a pgBackRest repository: a full, differential
//! or incremental backup, copied from a healthy standby when one streams
//! (pgBackRest starts and stops it on the primary), with the repository's
//! retention applied after it. Where the primary's data directory is not on
//! this host (a Kubernetes backup job), the primary's node agent takes it
//! (`POST /backup` on its node API).

use std::time::Duration;

use dash_backrest::{BackupType, Window};
use dash_dcs::ClusterView;
use serde::Serialize;

use super::{LocalNode, Setup};
use crate::output::{bytes, duration};
use crate::RunbookError;

/// How long a backup through a node agent may take.
pub const AGENT_BACKUP_LIMIT: Duration = Duration::from_secs(6 * 3600);

#[derive(Debug, Clone)]
pub struct PhysicalBackupOptions {
    pub ty: BackupType,
    /// Copy from the primary even when a standby streams.
    pub from_primary: bool,
    /// Retention applied after the backup instead of the config file's.
    pub retention: Option<dash_backrest::Retention>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PhysicalBackupReport {
    pub label: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub primary: String,
    /// The standby the files were copied from, if any.
    pub standby: Option<String>,
    pub seconds: f64,
    pub size: u64,
    pub repo_size: u64,
    pub window: Option<Window>,
    pub notes: Vec<String>,
}

impl PhysicalBackupReport {
    pub fn render(&self) -> String {
        let from = match &self.standby {
            Some(s) => format!(
                "copied from standby {s} (started on primary {})",
                self.primary
            ),
            None => format!("copied from primary {}", self.primary),
        };
        let mut out = format!(
            "Backup {} ({}, {} of data, {} in the repository) {from} in {}\n",
            self.label,
            self.ty,
            bytes(self.size),
            bytes(self.repo_size),
            duration(Duration::from_secs_f64(self.seconds))
        );
        if let Some(w) = &self.window {
            out.push_str(&format!(
                "restorable: {} .. {}\n",
                w.earliest.format("%Y-%m-%d %H:%M:%S UTC"),
                w.latest.format("%Y-%m-%d %H:%M:%S UTC")
            ));
        }
        for n in &self.notes {
            out.push_str(&format!("note: {n}\n"));
        }
        out
    }
}

/// The primary and, unless `from_primary`, the healthiest streaming standby
/// (a recorded synchronous one first), by member name.
pub fn pick_servers(
    view: &ClusterView,
    from_primary: bool,
) -> Result<(String, Option<String>), String> {
    let Some(leader) = view.leader.as_ref().map(|l| l.name.clone()) else {
        return Err("no member holds the leader key: there is no primary to back up".into());
    };
    if from_primary {
        return Ok((leader, None));
    }
    let sync: Vec<String> = view
        .sync
        .as_ref()
        .map(|s| s.value.standbys.clone())
        .unwrap_or_default();
    let mut standbys: Vec<_> = (view.members.iter())
        .filter(|m| m.name != leader && m.role == "replica" && m.streaming)
        .collect();
    standbys.sort_by_key(|m| {
        (
            !sync.contains(&m.name),
            std::cmp::Reverse(m.lsn.unwrap_or(0)),
        )
    });
    Ok((leader, standbys.first().map(|m| m.name.clone())))
}

/// Takes the backup (see the module docs).
pub async fn backup(
    setup: &Setup,
    opts: &PhysicalBackupOptions,
) -> Result<PhysicalBackupReport, RunbookError> {
    let mut notes = Vec::new();
    let (primary, standby) = match &setup.etcd {
        Some(etcd) => {
            let dcs = etcd.connect().await.map_err(|e| RunbookError::etcd(etcd, e))?;
            let view = dcs.view().await.map_err(|e| RunbookError::etcd(etcd, e))?;
            let (p, s) = pick_servers(&view, opts.from_primary).map_err(RunbookError::Refused)?;
            if setup.node(&p).is_none() {
                let api = view.member(&p).map(|m| m.api.clone()).unwrap_or_default();
                let token = setup.node_token.as_ref().map(|t| t.expose());
                return through_agent(&p, &api, opts.ty, token).await;
            }
            if s.is_none() && !opts.from_primary {
                notes.push("no standby streams: copied from the primary".into());
            }
            // A standby whose data is elsewhere cannot be copied from here.
            let s = s.filter(|s| setup.node(s).is_some());
            (p, s)
        }
        None => match setup.local.as_slice() {
            [one] => (one.name.clone(), None),
            _ => {
                return Err(RunbookError::Usage(
                    "which node is primary is read from the agents' etcd: pass --etcd URLS or set DASH_ETCD_ENDPOINTS".into(),
                ))
            }
        },
    };
    let server = |name: &str| -> Result<dash_backrest::PgServer, RunbookError> {
        let node: &LocalNode = setup
            .node(name)
            .ok_or_else(|| RunbookError::Invalid(format!("{name} is not local")))?;
        Ok(node.server(&setup.superuser))
    };
    let p = server(&primary)?;
    let s = standby.as_deref().map(server).transpose()?;
    let (repo, ty) = (setup.repo.clone(), opts.ty);
    let progress = crate::output::Progress::start(format!("pgBackRest {ty} backup"));
    let retention = opts.retention;
    let done = tokio::task::spawn_blocking(move || {
        let done = repo.backup(ty, &p, s.as_ref())?;
        if let Some(r) = retention {
            repo.expire_with(r)?;
        }
        Ok::<_, dash_backrest::BackrestError>(done)
    })
    .await
    .map_err(|e| RunbookError::Invalid(format!("backup task: {e}")))?;
    let done = match done {
        Ok(d) => {
            progress.finish(&d.label);
            d
        }
        Err(e) => {
            progress.finish("failed");
            return Err(e.into());
        }
    };
    let repo = setup.repo.clone();
    let window = tokio::task::spawn_blocking(move || repo.info())
        .await
        .ok()
        .and_then(Result::ok)
        .and_then(|c| c.window);
    Ok(PhysicalBackupReport {
        label: done.label,
        ty: done.ty.to_string(),
        primary,
        standby,
        seconds: done.duration.as_secs_f64(),
        size: done.info.size,
        repo_size: done.info.repo_size,
        window,
        notes,
    })
}

/// Asks `member`'s agent to take the backup (its data directory is on its host).
async fn through_agent(
    member: &str,
    api: &str,
    ty: BackupType,
    token: Option<&str>,
) -> Result<PhysicalBackupReport, RunbookError> {
    let Some(token) = token else {
        return Err(RunbookError::Usage(format!(
            "{member}'s data directory is on another host, so its agent takes the backup, and \
             that needs the agents' token: set DASH_NODE_TOKEN"
        )));
    };
    if api.is_empty() {
        return Err(RunbookError::Refused(format!(
            "{member} has not published its node API address"
        )));
    }
    let url = format!("{}/backup?type={ty}", api.trim_end_matches('/'));
    let progress = crate::output::Progress::start(format!(
        "pgBackRest {ty} backup by {member}'s agent ({url})"
    ));
    let client = reqwest::Client::builder()
        .timeout(AGENT_BACKUP_LIMIT)
        .build()
        .map_err(|e| RunbookError::Invalid(format!("HTTP client: {e}")))?;
    let answer = client.post(&url).bearer_auth(token).send().await;
    let resp = answer.map_err(|e| RunbookError::Api {
        url: url.clone(),
        message: e.to_string(),
    })?;
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    if !status.is_success() {
        progress.finish("failed");
        let why = body
            .get("error")
            .and_then(|e| e.as_str())
            .unwrap_or("no reason given");
        return Err(RunbookError::Api {
            url,
            message: format!("{status}: {why}"),
        });
    }
    progress.finish("done");
    let field = |k: &str| body.get(k).cloned().unwrap_or_default();
    Ok(PhysicalBackupReport {
        label: field("label").as_str().unwrap_or_default().to_string(),
        ty: field("type").as_str().unwrap_or_default().to_string(),
        primary: member.to_string(),
        standby: None,
        seconds: field("seconds").as_f64().unwrap_or_default(),
        size: field("size").as_u64().unwrap_or_default(),
        repo_size: field("repo_size").as_u64().unwrap_or_default(),
        window: serde_json::from_value(field("window")).ok(),
        notes: vec![format!(
            "taken by {member}'s node agent, where its data directory is"
        )],
    })
}
