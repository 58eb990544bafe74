//! Dash's test kit (a dev-dependency only): throwaway PostgreSQL nodes and
//! clusters, the app under test, and a runner for the real `dashctl` binary.
//! Everything it starts is torn down on drop, even when a test panics.

/// A throwaway PostgreSQL node, stopped and deleted on drop.
pub use dash_pg::ScratchNode as TempNode;
