//! The platform's pgBackRest repository, `$DASH_HOME/pgbackrest/`: created
//! by [`crate::Platform::start`] unless told not to, handed to every agent
//! (`--pgbackrest-config`, so every node archives its WAL there), its
//! stanza created once the cluster leads, and a first full backup taken
//! when the repository has none, so the cluster is restorable to any point
//! from its first minute.

use std::path::{Path, PathBuf};

use dash_backrest::{BackupType, PgServer, Repo, RepoSettings, DEFAULT_STANZA};

use crate::topology::Topology;
use crate::PlatformError;

/// The repository's config file beside `dashctl up`'s record.
pub fn backrest_config(home: &Path) -> PathBuf {
    home.join("pgbackrest").join("pgbackrest.conf")
}

/// The repository beside `home`'s record, if it has one.
pub fn repo(home: &Path) -> Option<Repo> {
    Repo::open(&backrest_config(home), DEFAULT_STANZA).ok()
}

/// Creates (or keeps) the repository under `home/pgbackrest`.
pub(crate) fn ensure_repo(home: &Path) -> Result<Repo, PlatformError> {
    let config = backrest_config(home);
    let root = config.parent().unwrap_or(home).to_path_buf();
    if let Ok(repo) = Repo::open(&config, DEFAULT_STANZA) {
        return Ok(repo);
    }
    Repo::create(&config, DEFAULT_STANZA, &RepoSettings::under(&root)).map_err(|e| {
        PlatformError::Invalid(format!(
            "create the pgBackRest repository in {}: {e}",
            root.display()
        ))
    })
}

fn server(topo: &Topology, name: &str) -> Option<PgServer> {
    let n = topo.node(name)?;
    Some(PgServer {
        data_dir: n.data_dir.clone(),
        port: n.port,
        socket_dir: dash_pg::socket_dir_for(&n.data_dir),
        user: topo.user.clone(),
    })
}

/// Creates the stanza on the leader and, when the repository holds no
/// backup, takes a full one (from `standby` when given). Returns what to
/// tell the operator.
pub(crate) async fn prepare(
    repo: &Repo,
    topo: &Topology,
    leader: &str,
    standby: Option<&str>,
) -> Result<String, PlatformError> {
    let primary = server(topo, leader)
        .ok_or_else(|| PlatformError::Invalid(format!("{leader} is not in the record")))?;
    let standby = standby.and_then(|s| server(topo, s));
    let repo = repo.clone();
    let fail = |e: dash_backrest::BackrestError| PlatformError::Invalid(format!("pgBackRest: {e}"));
    tokio::task::spawn_blocking(move || {
        repo.stanza_create(&primary).map_err(fail)?;
        let cat = repo.info().map_err(fail)?;
        if let Some(last) = cat.backups.last() {
            return Ok(format!("pgBackRest repository: {} backup(s), newest {}", cat.backups.len(), last.label));
        }
        let done = repo.backup(BackupType::Full, &primary, standby.as_ref()).map_err(fail)?;
        Ok(format!(
            "pgBackRest repository: first full backup {} in {:.1}s; WAL is archived from every node",
            done.label,
            done.duration.as_secs_f64()
        ))
    })
    .await
    .map_err(|e| PlatformError::Invalid(format!("backup task: {e}")))?
}
