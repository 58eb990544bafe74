//! dash-ops

pub mod pg;
