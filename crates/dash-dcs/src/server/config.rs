//! How one etcd member is configured, and the command line that says so.

use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// How to run one etcd member. All URLs are plain `http://ip:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdConfig {
    /// Member name (`--name`), unique in the cluster.
    pub name: String,
    /// Data directory (`--data-dir`); its log is [`EtcdConfig::log_path`].
    pub data_dir: PathBuf,
    /// Where clients connect (`--listen-client-urls`, `--advertise-client-urls`).
    pub client: SocketAddr,
    /// Where peers connect (`--listen-peer-urls`, `--initial-advertise-peer-urls`).
    pub peer: SocketAddr,
    /// Name and peer address of every member of the cluster, this one
    /// included (`--initial-cluster`). Only read when the cluster is
    /// bootstrapped: once the data dir holds a member, etcd ignores it.
    pub initial_cluster: Vec<(String, SocketAddr)>,
    /// `--initial-cluster-token`, the same on every member of one cluster.
    pub cluster_token: String,
    /// `--heartbeat-interval`. Default 100 ms.
    pub heartbeat: Duration,
    /// `--election-timeout`, at least 5 × `heartbeat`. Default 1000 ms.
    ///
    /// It also sets etcd's minimum lease TTL: `ceil(1.5 × election)` in
    /// whole seconds (2 s for the default); etcd silently grants a shorter
    /// requested TTL as that minimum.
    pub election: Duration,
    /// Network namespace to run in (`ip netns exec <ns> etcd ...`, root
    /// only); `None` runs in ours. Default `None`.
    pub netns: Option<String>,
}

impl EtcdConfig {
    /// A one-member cluster on 127.0.0.1 with default timings.
    pub fn single(
        name: impl Into<String>,
        data_dir: impl Into<PathBuf>,
        client_port: u16,
        peer_port: u16,
    ) -> EtcdConfig {
        let name = name.into();
        let peer = SocketAddr::from((Ipv4Addr::LOCALHOST, peer_port));
        EtcdConfig {
            initial_cluster: vec![(name.clone(), peer)],
            cluster_token: format!("dash-{name}"),
            name,
            data_dir: data_dir.into(),
            client: SocketAddr::from((Ipv4Addr::LOCALHOST, client_port)),
            peer,
            heartbeat: Duration::from_millis(100),
            election: Duration::from_millis(1000),
            netns: None,
        }
    }

    /// `<data_dir>.log`, beside the data dir.
    pub fn log_path(&self) -> PathBuf {
        let mut name = self.data_dir.file_name().unwrap_or_default().to_owned();
        name.push(".log");
        self.data_dir.with_file_name(name)
    }

    /// `http://<client>`.
    pub fn client_url(&self) -> String {
        format!("http://{}", self.client)
    }

    /// The etcd command-line arguments. `--initial-cluster-state` is always
    /// `new`: etcd ignores it (and `--initial-cluster`) when the data dir
    /// already holds a member, so a restart needs nothing else, and a member
    /// killed before it wrote its WAL bootstraps again.
    pub(super) fn args(&self) -> Vec<OsString> {
        let peer_url = format!("http://{}", self.peer);
        let cluster = (self.initial_cluster.iter())
            .map(|(name, peer)| format!("{name}=http://{peer}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut args: Vec<OsString> = vec!["--data-dir".into(), self.data_dir.clone().into()];
        let flags = [
            ("--name", self.name.clone()),
            ("--listen-client-urls", self.client_url()),
            ("--advertise-client-urls", self.client_url()),
            ("--listen-peer-urls", peer_url.clone()),
            ("--initial-advertise-peer-urls", peer_url),
            ("--initial-cluster", cluster),
            ("--initial-cluster-token", self.cluster_token.clone()),
            ("--initial-cluster-state", "new".to_string()),
            (
                "--heartbeat-interval",
                self.heartbeat.as_millis().to_string(),
            ),
            ("--election-timeout", self.election.as_millis().to_string()),
            // Structured logs; etcd 3.4 defaults to the deprecated capnslog.
            ("--logger", "zap".to_string()),
            ("--log-outputs", "stderr".to_string()),
        ];
        for (flag, value) in flags {
            args.push(flag.into());
            args.push(value.into());
        }
        // A member that comes back from a partition must not depose a
        // working leader with the terms it counted up alone (3.4's default
        // is off; 3.5 turned it on). Measured without it: a healed
        // partition left the cluster without a leader for over 3 s.
        args.push("--pre-vote=true".into());
        args
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn single_member_arguments() {
        let cfg = EtcdConfig::single("e0", "/tmp/x/e0", 2379, 2380);
        let args: Vec<String> = (cfg.args().iter())
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let flag = |name: &str| {
            let i = args.iter().position(|a| a == name).unwrap();
            args[i + 1].as_str()
        };
        assert_eq!(flag("--data-dir"), "/tmp/x/e0");
        assert_eq!(flag("--listen-client-urls"), "http://127.0.0.1:2379");
        assert_eq!(flag("--advertise-client-urls"), "http://127.0.0.1:2379");
        assert_eq!(
            flag("--initial-advertise-peer-urls"),
            "http://127.0.0.1:2380"
        );
        assert_eq!(flag("--initial-cluster"), "e0=http://127.0.0.1:2380");
        assert_eq!(flag("--heartbeat-interval"), "100");
        assert_eq!(flag("--election-timeout"), "1000");
        assert_eq!(cfg.log_path(), Path::new("/tmp/x/e0.log"));
    }

    #[test]
    fn initial_cluster_names_every_member() {
        let mut cfg = EtcdConfig::single("a", "a.etcd", 1, 2);
        cfg.initial_cluster
            .push(("b".into(), "127.0.0.1:4".parse().unwrap()));
        let args: Vec<OsString> = cfg.args();
        assert!(args.contains(&"a=http://127.0.0.1:2,b=http://127.0.0.1:4".into()));
        assert_eq!(cfg.log_path(), Path::new("a.etcd.log"));
    }
}
