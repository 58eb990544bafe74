//! A throwaway single etcd member for tests that need a DCS: free loopback
//! ports, a temp dir, and nothing left of it after the drop.

use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::time::Duration;

use dash_dcs::{EtcdConfig, EtcdError, EtcdMember};
use tempfile::TempDir;

/// Start attempts, each on fresh ports, when another process takes a port.
const START_ATTEMPTS: usize = 3;

/// A single etcd member on free loopback ports in a temp dir; killed and
/// deleted on drop, even when the test panics.
///
/// It runs with a 10 ms heartbeat and a 100 ms election timeout: a lone
/// member never holds an election it could lose, it starts in well under a
/// second, and its minimum lease TTL is 1 s (2 s with etcd's defaults).
#[derive(Debug)]
pub struct TempEtcd {
    /// The running member (`kill` it to lose the DCS).
    pub member: EtcdMember,
    dir: TempDir,
}

impl TempEtcd {
    /// Starts the member and waits until it serves clients.
    pub fn start() -> Result<TempEtcd, EtcdError> {
        let dir = tempfile::Builder::new()
            .prefix("dash-etcd-")
            .tempdir()
            .map_err(|source| EtcdError::Io {
                context: "create a temp dir for etcd".to_string(),
                source,
            })?;
        let data_dir = dir.path().join("etcd");
        for attempt in 1..=START_ATTEMPTS {
            let (client, peer) = two_free_ports();
            let cfg = EtcdConfig {
                heartbeat: Duration::from_millis(10),
                election: Duration::from_millis(100),
                ..EtcdConfig::single("temp", &data_dir, client, peer)
            };
            match EtcdMember::start(cfg) {
                Err(EtcdError::PortInUse { .. }) if attempt < START_ATTEMPTS => {
                    let _ = std::fs::remove_dir_all(&data_dir);
                }
                result => return result.map(|member| TempEtcd { member, dir }),
            }
        }
        unreachable!("the last attempt returns")
    }

    /// The client URLs (one), for `etcd_client::Client::connect`.
    pub fn endpoints(&self) -> Vec<String> {
        vec![self.member.client_url()]
    }

    /// The temp dir holding the data dir and its log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// Two distinct free loopback ports.
fn two_free_ports() -> (u16, u16) {
    let client = dash_pg::free_port();
    loop {
        let peer = dash_pg::free_port();
        if peer != client {
            return (client, peer);
        }
    }
}

impl Deref for TempEtcd {
    type Target = EtcdMember;
    fn deref(&self) -> &EtcdMember {
        &self.member
    }
}

impl DerefMut for TempEtcd {
    fn deref_mut(&mut self) -> &mut EtcdMember {
        &mut self.member
    }
}

impl Drop for TempEtcd {
    fn drop(&mut self) {
        self.member.kill();
        // `self.dir` is removed when it drops, right after this.
    }
}
