//! Where the database and the API are: from `DATABASE_*` / `DATABASE_URL`
//! (as `dashctl serve` reads them) or, beside `dashctl up`, from the record in
//! `$DASH_HOME/cluster.json` (which also names the local etcd the agents
//! use); the API from flags, `DASH_API_*`, the record, or the defaults.

use std::path::PathBuf;
use std::time::Duration;

use dash_store::{DbSettings, HostPort, Secret};
use serde::Serialize;

use super::RunbookError;
use crate::ha::EtcdTarget;
use crate::probe::Role;
use dash_platform::Topology;

/// Default API base URL.
pub const DEFAULT_API_URL: &str = "http://127.0.0.1:3001";
/// Default metrics URL.
pub const DEFAULT_METRICS_URL: &str = "http://127.0.0.1:9090/metrics";
/// `application_name` of every session the CLI opens, so it never counts as
/// one of the API's writers.
pub const CLI_APPLICATION_NAME: &str = "dash-cli";
/// The variables that mean "the operator configured the database by hand".
const DATABASE_VARS: &[&str] = &[
    "DATABASE_URL",
    "DATABASE_HOST",
    "DATABASE_PORT",
    "DATABASE_NAME",
    "DATABASE_USER",
    "DATABASE_PASSWORD",
];

/// One node to probe.
#[derive(Debug, Clone, Serialize)]
pub struct NodeTarget {
    /// `node0`... from the topology, else the address.
    pub name: String,
    pub address: HostPort,
    /// The role its agent last recorded in etcd, when etcd was read.
    pub recorded_role: Option<Role>,
}

impl NodeTarget {
    /// One node per host of `settings`, each named by its address.
    fn one_per_host(settings: &DbSettings) -> Vec<NodeTarget> {
        (settings.hosts.iter())
            .map(|h| NodeTarget {
                name: h.to_string(),
                address: h.clone(),
                recorded_role: None,
            })
            .collect()
    }
}

/// The API's base URL, metrics URL and token.
#[derive(Debug, Clone, Serialize)]
pub struct ApiEndpoint {
    pub api_url: String,
    pub metrics_url: String,
    #[serde(skip)]
    pub token: Option<Secret>,
}

/// `--api`, `--metrics`, `--token` as given on the command line.
#[derive(Debug, Clone, Default)]
pub struct ApiFlags {
    pub api: Option<String>,
    pub metrics: Option<String>,
    pub token: Option<String>,
}

/// Everything a `dashctl db` command talks to.
#[derive(Debug, Clone)]
pub struct Target {
    /// Settings for the CLI's own sessions: application_name `dash-cli`, no
    /// server-side statement or idle timeouts (every call has a client-side
    /// deadline instead).
    pub settings: DbSettings,
    pub nodes: Vec<NodeTarget>,
    /// Where the database settings came from, for the report header.
    pub source: String,
    pub api: ApiEndpoint,
    /// The agents' etcd, when `cluster.json` names one (beside `dashctl up`).
    pub etcd: Option<EtcdTarget>,
}

impl Target {
    /// Resolves from the process environment.
    pub fn from_env(flags: &ApiFlags) -> Result<Target, RunbookError> {
        Self::resolve(|k| std::env::var(k).ok(), flags)
    }

    /// Resolves through `get` (the environment, or a map in tests).
    pub fn resolve(
        get: impl Fn(&str) -> Option<String>,
        flags: &ApiFlags,
    ) -> Result<Target, RunbookError> {
        let home = PathBuf::from(get("DASH_HOME").unwrap_or_else(|| ".dash".into()));
        let by_hand = DATABASE_VARS.iter().any(|k| get(k).is_some());
        let topology = match by_hand || !Topology::path(&home).exists() {
            true => None,
            false => Some(Topology::load(&home)?),
        };
        let (settings, nodes, source) = match &topology {
            Some(t) => {
                let settings = t.db_settings();
                let nodes = t
                    .nodes
                    .iter()
                    .map(|n| NodeTarget {
                        name: n.name.clone(),
                        address: n.host_port(),
                        recorded_role: None,
                    })
                    .collect();
                let source = format!("topology {}", Topology::path(&home).display());
                (settings, nodes, source)
            }
            None => {
                let settings = DbSettings::from_lookup(&get)?;
                let nodes = NodeTarget::one_per_host(&settings);
                let source = match by_hand {
                    true => "DATABASE_* environment".to_string(),
                    false => "defaults (no DATABASE_* set, no cluster.json)".to_string(),
                };
                (settings, nodes, source)
            }
        };
        // The API's own port variables, as `dashctl serve` read them from
        // the same environment, come after the explicit URL and the record.
        let from_port = |var: &str, path: &str| {
            let port = get(var)?.trim().parse::<u16>().ok().filter(|p| *p != 0)?;
            Some(format!("http://127.0.0.1:{port}{path}"))
        };
        let pick = |flag: &Option<String>, env: &str, topo: Option<String>, default: &str| {
            flag.clone()
                .or_else(|| get(env).filter(|v| !v.trim().is_empty()))
                .or(topo)
                .unwrap_or_else(|| default.to_string())
        };
        let api = ApiEndpoint {
            api_url: pick(
                &flags.api,
                "DASH_API_URL",
                (topology.as_ref().map(|t| t.api_url.clone()))
                    .or_else(|| from_port("DASH_API_PORT", "")),
                DEFAULT_API_URL,
            )
            .trim_end_matches('/')
            .to_string(),
            metrics_url: pick(
                &flags.metrics,
                "DASH_METRICS_URL",
                (topology.as_ref().map(|t| t.metrics_url.clone()))
                    .or_else(|| from_port("METRICS_PORT", "/metrics")),
                DEFAULT_METRICS_URL,
            ),
            token: flags
                .token
                .clone()
                .or_else(|| get("DASH_API_TOKEN"))
                .or_else(|| topology.as_ref().map(|t| t.api_token.expose().to_string()))
                .or_else(|| {
                    let tokens = get("DASH_API_TOKENS")?;
                    tokens
                        .split(',')
                        .map(str::trim)
                        .find(|t| !t.is_empty())
                        .map(String::from)
                })
                .filter(|t| !t.trim().is_empty())
                .map(Secret::new),
        };
        let mut target = Target::new(settings, nodes, source, api);
        target.etcd =
            (topology.as_ref()).and_then(|t| EtcdTarget::new(&t.etcd_endpoints(), &t.cluster));
        Ok(target)
    }

    /// A target for explicit settings (tests, embedding).
    pub fn new(
        settings: DbSettings,
        nodes: Vec<NodeTarget>,
        source: String,
        api: ApiEndpoint,
    ) -> Target {
        Target {
            settings: cli_settings(settings),
            nodes,
            source,
            api,
            etcd: None,
        }
    }

    /// A target with one node per host of `settings`.
    pub fn for_settings(settings: DbSettings, api: ApiEndpoint) -> Target {
        let nodes = NodeTarget::one_per_host(&settings);
        Target::new(settings, nodes, "explicit settings".into(), api)
    }

    /// Nothing was configured (no `DATABASE_*`, no `cluster.json`): what to
    /// set, for a report that found no database at the defaults.
    pub fn unconfigured_hint(&self) -> Option<String> {
        self.source.starts_with("defaults").then(|| {
            "nothing points dashctl at a database here: run it beside `dashctl up` \
             (or set DASH_HOME to that platform's directory, the one holding cluster.json), \
             or set DATABASE_URL=postgresql://USER:PASSWORD@HOST:5432/dash \
             (or DATABASE_HOST, DATABASE_PORT, DATABASE_USER, DATABASE_PASSWORD, DATABASE_NAME)"
                .to_string()
        })
    }

    /// The hosts that may be the primary: every node not recorded as fenced.
    pub fn candidate_settings(&self) -> DbSettings {
        let mut s = self.settings.clone();
        s.hosts = (self.nodes.iter())
            .filter(|n| n.recorded_role != Some(Role::Fenced))
            .map(|n| n.address.clone())
            .collect();
        if s.hosts.is_empty() {
            s.hosts = self.settings.hosts.clone();
        }
        s
    }
}

/// The CLI's session settings: its own application_name, no server-side
/// timeouts, and a connect deadline of at least two seconds.
fn cli_settings(mut s: DbSettings) -> DbSettings {
    s.application_name = CLI_APPLICATION_NAME.into();
    s.statement_timeout = Duration::ZERO;
    s.idle_in_transaction_timeout = Duration::ZERO;
    s.connect_timeout = s.connect_timeout.max(Duration::from_secs(2));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn resolve(pairs: &[(&str, &str)], flags: &ApiFlags) -> Target {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Target::resolve(|k| map.get(k).cloned(), flags).unwrap()
    }

    #[test]
    fn environment_wins_and_flags_win_over_environment() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().to_str().unwrap();
        let t = resolve(
            &[
                ("DASH_HOME", home),
                ("DATABASE_HOST", "a:5433,b"),
                ("DASH_API_URL", "http://x:1/"),
                ("DASH_API_TOKEN", "tok"),
            ],
            &ApiFlags {
                metrics: Some("http://m:2/metrics".into()),
                ..ApiFlags::default()
            },
        );
        let names: Vec<&str> = t.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["a:5433", "b:5432"]);
        assert_eq!(t.api.api_url, "http://x:1");
        assert_eq!(t.api.metrics_url, "http://m:2/metrics");
        assert_eq!(t.api.token.as_ref().unwrap().expose(), "tok");
        assert_eq!(t.settings.application_name, CLI_APPLICATION_NAME);
        assert_eq!(t.settings.statement_timeout, Duration::ZERO);
    }

    #[test]
    fn defaults_without_environment_or_topology() {
        let dir = tempfile::tempdir().unwrap();
        let t = resolve(
            &[("DASH_HOME", dir.path().to_str().unwrap())],
            &ApiFlags::default(),
        );
        assert_eq!(t.nodes[0].name, "localhost:5432");
        assert_eq!(t.api.api_url, DEFAULT_API_URL);
        assert_eq!(t.api.metrics_url, DEFAULT_METRICS_URL);
        assert!(t.api.token.is_none());
        assert!(t.source.starts_with("defaults"), "{}", t.source);
        let hint = t
            .unconfigured_hint()
            .expect("a hint when nothing is configured");
        assert!(
            hint.contains("DASH_HOME") && hint.contains("DATABASE_URL"),
            "{hint}"
        );
    }

    #[test]
    fn the_apis_own_port_and_token_variables_are_fallbacks() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().to_str().unwrap();
        let env = [
            ("DASH_HOME", home),
            ("DASH_API_PORT", "4001"),
            ("METRICS_PORT", "9191"),
            ("DASH_API_TOKENS", " ,tok-a,tok-b"),
            ("DATABASE_HOST", "db"),
        ];
        let t = resolve(&env, &ApiFlags::default());
        assert_eq!(t.api.api_url, "http://127.0.0.1:4001");
        assert_eq!(t.api.metrics_url, "http://127.0.0.1:9191/metrics");
        assert_eq!(t.api.token.as_ref().unwrap().expose(), "tok-a");
        assert!(
            t.unconfigured_hint().is_none(),
            "DATABASE_HOST is configuration"
        );
        // An explicit URL still wins.
        let mut with_url = env.to_vec();
        with_url.push(("DASH_API_URL", "http://api:3001"));
        let t = resolve(&with_url, &ApiFlags::default());
        assert_eq!(t.api.api_url, "http://api:3001");
    }

    #[test]
    fn beside_dash_up_the_record_names_every_node_the_api_and_etcd() {
        use dash_platform::{NodeInfo, Topology, VERSION};
        let dir = tempfile::tempdir().unwrap();
        let node = |i: u16| NodeInfo {
            name: format!("node{i}"),
            host: "127.0.0.1".into(),
            port: 5500 + i,
            node_port: 8100 + i,
            data_dir: dir.path().join(format!("node{i}")),
        };
        Topology {
            version: VERSION,
            cluster: "local".into(),
            nodes: vec![node(0), node(1), node(2)],
            etcd_client_port: 2479,
            etcd_peer_port: 2480,
            synchronous: true,
            dbname: "dash".into(),
            user: "dash_user".into(),
            password: "pw".into(),
            api_url: "http://127.0.0.1:3101".into(),
            metrics_url: "http://127.0.0.1:9190/metrics".into(),
            api_token: "topo-token".into(),
        }
        .save(dir.path())
        .unwrap();
        let home = dir.path().to_str().unwrap();
        let t = resolve(&[("DASH_HOME", home)], &ApiFlags::default());
        let names: Vec<&str> = t.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["node0", "node1", "node2"]);
        let candidates: Vec<u16> = (t.candidate_settings().hosts.iter())
            .map(|h| h.port)
            .collect();
        assert_eq!(candidates, [5500, 5501, 5502]);
        let etcd = t.etcd.as_ref().expect("the record names its etcd");
        assert_eq!(etcd.endpoints, ["http://127.0.0.1:2479"]);
        assert_eq!(etcd.cluster, "local");
        assert_eq!(t.api.api_url, "http://127.0.0.1:3101");
        assert_eq!(t.api.token.as_ref().unwrap().expose(), "topo-token");
        assert!(t.source.contains("cluster.json"));
        // DATABASE_* set by hand wins over the topology.
        let t = resolve(
            &[("DASH_HOME", home), ("DATABASE_HOST", "db:6000")],
            &ApiFlags::default(),
        );
        assert_eq!(t.nodes[0].name, "db:6000");
        assert!(t.etcd.is_none(), "nor is the record's etcd used then");
    }
}
