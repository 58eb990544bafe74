//! dash-ops
