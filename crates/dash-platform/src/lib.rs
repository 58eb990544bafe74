//! The local platform: a cluster on this machine run by the same engine as
//! across machines (a local etcd, one `dashctl node` agent per node) and the
//! API, started and stopped as one. `dashctl up`, the local chaos drills and
//! the tests start it the same way; `cluster.json` records it.

mod agents;
mod backups;
mod create;
mod grow;
pub mod ha;
mod platform;
mod scratch;
mod topology;

pub use agents::log_path as agent_log_path;
pub use backups::{backrest_config, repo as backrest_repo};
pub use create::{free_ports, taken, ClusterOptions};
pub use grow::NewNode;
pub use platform::{agent_logs, api_ready, Platform, PlatformError, PlatformOptions};
pub use scratch::ScratchCluster;
pub use topology::{NodeInfo, Topology, TopologyError, VERSION};
