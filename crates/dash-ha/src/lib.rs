//! The local HA cluster that `dashctl up` runs: its recorded topology, the
//! supervisor that fails it over, and the operations on its nodes.

pub mod control;
pub mod decide;
pub mod local;
pub mod probe;
pub mod supervisor;
pub mod topology;

pub use local::{ClusterError, ClusterOptions, LocalCluster};
pub use topology::{NodeInfo, Role, Topology, TopologyError};
