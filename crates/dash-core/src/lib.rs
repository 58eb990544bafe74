//! dash-core
