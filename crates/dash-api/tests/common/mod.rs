//! The workspace's test kit (`dash-testkit`): a real PostgreSQL node, a fresh
//! database per test, and the real app on port 0, torn down on drop.

#![allow(unused_imports)]

pub mod sse;

pub use dash_testkit::*;
