//! dash-store
