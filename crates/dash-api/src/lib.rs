//! dash-api
