//! The local HA cluster that `dash up` runs: its recorded topology, the
//! supervisor that fails it over, and the operations on its nodes.

pub mod topology;

pub use topology::{NodeInfo, Role, Topology, TopologyError};
