//! The runbook as code: every step of `spec/DATABASE_FAILOVER.md` as a
//! checked procedure behind a `dashctl db` command. Each submodule gathers its
//! evidence, does its step safely, and returns a report that renders as a
//! table or serializes to JSON.
//!
//! | runbook step | module |
//! |---|---|
//! | Initial Assessment | [`status`] ([`probe`] per node, [`metrics`] for the API's pool, [`ha`] for etcd and the node agents) |
//! | naming the scenario | [`diagnose`] (gathers [`situation::Signals`]), [`classify`] (pure rules), [`sequences`] (sequences behind their column) |
//! | Scenario 4 | [`connections`] (list, terminate), [`api_client`] (live pool size) |
//! | Scenario 2 | [`backup`], [`backups`], [`verify_backup`] (restore into a throwaway instance, [`scratch_instance`]), [`restore`] ([`restore_checks`]); point in time with pgBackRest: [`pitr`] |
//! | Scenario 3 with node agents | [`ha::switchover`], [`ha::failover`] (a request in etcd) |
//! | Recovery Verification | [`recovery_check`] |
//! | Post-incident pool review | [`pool_advice`] (in `diagnose`) |
//! | Consider enabling HA | [`add_replica`] (a streaming replica added online) |

pub mod add_replica;
pub mod admin;
pub mod amcheck;
pub mod api_client;
pub mod backup;
pub mod backups;
pub mod classify;
pub mod confirm;
pub mod connections;
pub mod diagnose;
mod error;
pub mod ha;
pub mod incidents;
pub mod manifest;
pub mod metrics;
pub mod output;
pub mod pgenv;
pub mod pitr;
pub mod pool_advice;
pub mod probe;
pub mod recovery_check;
pub mod restore;
pub mod restore_checks;
pub mod scratch_instance;
pub mod sequences;
pub mod session;
pub mod situation;
pub mod status;
pub mod target;
pub mod tools;
pub mod verify_backup;

pub use error::RunbookError;
pub use target::{ApiEndpoint, ApiFlags, NodeTarget, Target};

/// Exit codes shared by the `dashctl db` commands (diagnose adds its own).
pub mod exit {
    /// Success: the step was done and checked, or the system is healthy.
    pub const OK: u8 = 0;
    /// The command itself failed (error and causes printed).
    pub const FAILURE: u8 = 1;
    /// Bad usage or configuration.
    pub const USAGE: u8 = 2;
    /// The command ran, and a check it made failed (degraded cluster, corrupt
    /// backup, row counts that differ, a failing smoke test).
    pub const CHECK_FAILED: u8 = 3;
    /// A guard rail refused: no terminal and no `--yes`, an answer other than
    /// yes, or writers connected during a restore without `--stop-writes`.
    pub const REFUSED: u8 = 4;
    /// `dashctl db status`: no writable primary answers.
    pub const NO_PRIMARY: u8 = 5;
}
