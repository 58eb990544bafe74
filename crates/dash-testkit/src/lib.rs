//! Dash's test kit (a dev-dependency only): throwaway PostgreSQL nodes and
//! etcd members, the real app in-process, and a runner for the real
//! `dashctl` binary. What it starts is torn down on drop, even when a test
//! panics.

mod agents;
mod app;
mod etcd;
mod metrics;
mod runner;

pub use agents::{TempAgents, AGENTS_PASSWORD};
pub use app::{db_settings, items_field, split, TestApi, TestApp, TOKEN};
/// A throwaway PostgreSQL node, stopped and deleted on drop.
pub use dash_pg::ScratchNode as TempNode;
/// A throwaway single etcd member on free ports, killed and deleted on drop.
pub use etcd::TempEtcd;
pub use metrics::{assert_error, metric, metric_sum};
pub use runner::{Run, Runner};
