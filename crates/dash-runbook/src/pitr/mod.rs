//! Point-in-time recovery on pgBackRest (`dash-backrest`): where the
//! repository and the database nodes are, and the `dashctl db` procedures
//! built on them: physical backups ([`backup`]), their catalogue with the
//! restorable window ([`catalogue`]), verified restores into a throwaway
//! instance ([`verify`]) and the cluster's restore to a point in time
//! ([`restore`], recovering in a staging directory first: [`staging`]).

use std::path::PathBuf;

use dash_backrest::{PgServer, Repo};

use crate::ha::EtcdTarget;
use crate::RunbookError;

pub mod backup;
pub mod catalogue;
mod files;
pub mod halt;
pub mod restore;
pub mod staging;
pub mod target;
pub mod verify;

/// A database node whose data directory is on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalNode {
    /// Its member name (the agent's `--name`).
    pub name: String,
    pub data_dir: PathBuf,
    pub port: u16,
}

impl LocalNode {
    /// The node as pgBackRest addresses it (its Unix socket, as `user`).
    pub fn server(&self, user: &str) -> PgServer {
        PgServer {
            data_dir: self.data_dir.clone(),
            port: self.port,
            socket_dir: dash_pg::socket_dir_for(&self.data_dir),
            user: user.to_string(),
        }
    }
}

/// Everything the physical procedures work with.
#[derive(Debug, Clone)]
pub struct Setup {
    pub repo: Repo,
    /// Beside `dashctl up`: every node. In a database pod: that pod's node
    /// (`DASH_NODE_NAME`, `DASH_PG_DATA`, `DASH_PG_PORT`). Elsewhere: none.
    pub local: Vec<LocalNode>,
    pub etcd: Option<EtcdTarget>,
    /// The database superuser the nodes run as (`DATABASE_USER`).
    pub superuser: String,
    /// The application database.
    pub dbname: String,
    /// What the node agents' `POST /backup` needs (`DASH_NODE_TOKEN`; beside
    /// `dashctl up`, the platform's).
    pub node_token: Option<dash_store::Secret>,
}

/// Where the repository's config is: `flag`, else `DASH_PGBACKREST_CONFIG`,
/// else beside `dashctl up` (`$DASH_HOME/pgbackrest/pgbackrest.conf`) when
/// it exists. `None`: no repository is configured here.
pub fn find_config(flag: Option<PathBuf>, get: impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
    if let Some(p) = flag.filter(|p| !p.as_os_str().is_empty()) {
        return Some(p);
    }
    if let Some(p) = get("DASH_PGBACKREST_CONFIG").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let home = PathBuf::from(get("DASH_HOME").unwrap_or_else(|| ".dash".into()));
    let beside = dash_platform::backrest_config(&home);
    beside.exists().then_some(beside)
}

impl Setup {
    /// Resolves the setup through `get` (the environment), or says how to
    /// configure a repository.
    pub fn resolve(
        config: Option<PathBuf>,
        stanza: &str,
        etcd: Option<EtcdTarget>,
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Setup, RunbookError> {
        let Some(path) = find_config(config, &get) else {
            return Err(RunbookError::Usage(
                "no pgBackRest repository is configured here: pass --pgbackrest-config FILE or set \
                 DASH_PGBACKREST_CONFIG (beside `dashctl up` it is $DASH_HOME/pgbackrest/pgbackrest.conf); \
                 for a logical dump use --logical"
                    .into(),
            ));
        };
        let repo = Repo::open(&path, stanza)?;
        let home = PathBuf::from(get("DASH_HOME").unwrap_or_else(|| ".dash".into()));
        let token = get("DASH_NODE_TOKEN")
            .filter(|t| !t.is_empty())
            .map(dash_store::Secret::new);
        if let Ok(topo) = dash_platform::Topology::load(&home) {
            let mut setup = Setup::for_platform(&topo, repo);
            setup.etcd = etcd.or(setup.etcd);
            setup.node_token = token.or(setup.node_token);
            return Ok(setup);
        }
        Ok(Setup {
            repo,
            local: pod_node(&get).into_iter().collect(),
            etcd,
            superuser: get("DATABASE_USER").unwrap_or_else(|| "dash_user".into()),
            dbname: get("DATABASE_NAME").unwrap_or_else(|| "dash".into()),
            node_token: token,
        })
    }

    /// Beside a `dashctl up` platform (`topo`): every node local, its etcd,
    /// its database and superuser.
    pub fn for_platform(topo: &dash_platform::Topology, repo: Repo) -> Setup {
        Setup {
            repo,
            local: (topo.nodes.iter())
                .map(|n| LocalNode {
                    name: n.name.clone(),
                    data_dir: n.data_dir.clone(),
                    port: n.port,
                })
                .collect(),
            etcd: EtcdTarget::new(&topo.etcd_endpoints(), &topo.cluster),
            superuser: topo.user.clone(),
            dbname: topo.dbname.clone(),
            node_token: Some(dash_store::Secret::new(topo.node_token())),
        }
    }

    pub fn node(&self, name: &str) -> Option<&LocalNode> {
        self.local.iter().find(|n| n.name == name)
    }
}

/// The database pod's own node, from the agent's environment.
fn pod_node(get: &impl Fn(&str) -> Option<String>) -> Option<LocalNode> {
    let name = get("DASH_NODE_NAME").filter(|n| !n.is_empty())?;
    let data_dir = get("DASH_PG_DATA").filter(|d| !d.is_empty())?;
    let port = get("DASH_PG_PORT")
        .and_then(|p| p.parse().ok())
        .unwrap_or(5432);
    Some(LocalNode {
        name,
        data_dir: PathBuf::from(data_dir),
        port,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = (pairs.iter())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn the_config_comes_from_the_flag_then_the_environment_then_beside_dashctl_up() {
        let flag = Some(PathBuf::from("/etc/a.conf"));
        let get = env(&[("DASH_PGBACKREST_CONFIG", "/etc/b.conf")]);
        assert_eq!(find_config(flag, &get), Some(PathBuf::from("/etc/a.conf")));
        assert_eq!(find_config(None, &get), Some(PathBuf::from("/etc/b.conf")));
        let home = tempfile::tempdir().unwrap();
        let h = home.path().to_str().unwrap();
        assert_eq!(find_config(None, env(&[("DASH_HOME", h)])), None);
        let beside = dash_platform::backrest_config(home.path());
        std::fs::create_dir_all(beside.parent().unwrap()).unwrap();
        std::fs::write(&beside, "[global]\n").unwrap();
        assert_eq!(find_config(None, env(&[("DASH_HOME", h)])), Some(beside));
    }

    #[test]
    fn a_database_pod_names_its_own_node_and_nothing_else_is_local_without_a_record() {
        let get = env(&[
            ("DASH_NODE_NAME", "postgres-0"),
            ("DASH_PG_DATA", "/var/lib/postgresql/data/pgdata"),
        ]);
        let node = pod_node(&get).unwrap();
        assert_eq!(node.name, "postgres-0");
        assert_eq!(node.port, 5432);
        assert_eq!(pod_node(&env(&[("DASH_NODE_NAME", "x")])), None);
    }
}
