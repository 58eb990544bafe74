//! Dash's operations: the runbook as code. PostgreSQL nodes, the local HA
//! cluster and its supervisor, and the operator's procedures.

pub mod chaos;
pub mod cluster;
pub mod load;
pub mod pg;
pub mod runbook;
