//! Runs each command and maps failures to documented exit codes.

pub(crate) mod agent;
pub(crate) mod bench;
mod chaos;
mod config;
pub(crate) mod db;
mod domain;
pub(crate) mod node;
pub(crate) mod pgenv;
mod serve;
pub(crate) mod swarm;
mod up;
pub(crate) mod verify;
pub(crate) mod worker;

use crate::cli::{Cli, Command, ConfigCommand, RuntimeCommand};

pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILURE: u8 = 1;
pub const EXIT_USAGE: u8 = 2;

/// A configuration error: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct UsageError(pub String);

pub fn exit_code_of(e: &anyhow::Error) -> u8 {
    if e.downcast_ref::<UsageError>().is_some() {
        EXIT_USAGE
    } else {
        EXIT_FAILURE
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Serve => serve::run().await,
        Command::Up(args) => up::run(args).await,
        Command::Node(args) => node::run(args).await,
        Command::NodeGuard { pg_data } => {
            tokio::task::spawn_blocking(move || dash_node::guard::run_guard(&pg_data)).await?;
            Ok(EXIT_OK)
        }
        Command::Chaos(args) => chaos::run(args).await,
        Command::Bench(args) => bench::run(args).await,
        Command::Db { command } => db::run(command).await,
        Command::Swarm { command } => swarm::run(command).await,
        Command::Agent { command } => agent::run(command).await,
        Command::Verify(args) => verify::run(args).await,
        Command::Env(args) => pgenv::env(args).await,
        Command::Psql(args) => pgenv::psql(args).await,
        Command::Worker(args) => worker::run(args).await,
        Command::RuntimeGuard { argv } => Ok(dash_worker::guard::run(&argv).await),
        Command::Runtime {
            command: RuntimeCommand::Demo(args),
        } => Ok(worker::demo(&args)),
        Command::Config {
            command: ConfigCommand::Check { json },
        } => config::check(json),
    }
}

/// Loads the API settings from the environment; bad values exit with 2.
pub fn settings() -> Result<dash_api::ApiSettings, UsageError> {
    dash_api::ApiSettings::from_env().map_err(|e| UsageError(e.to_string()))
}

/// `$DASH_HOME`, default `./.dash`.
pub fn dash_home() -> std::path::PathBuf {
    std::env::var_os("DASH_HOME")
        .map(Into::into)
        .unwrap_or_else(|| ".dash".into())
}
