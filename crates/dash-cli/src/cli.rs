//! The command line, as `dash --help` shows it.

use clap::{Parser, Subcommand};

const EXIT_CODES: &str = "Exit codes:
  0  success
  1  the command failed (the error and its causes are printed)
  2  bad usage or configuration (clap errors, invalid environment variables)";

#[derive(Debug, Parser)]
#[command(name = "dash", version, about = "Dash: a control plane for fleets of AI agents whose database tier survives failure", after_help = EXIT_CODES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the API server (port DASH_API_PORT, default 3001) and metrics (METRICS_PORT, default 9090) against DATABASE_*.
    Serve,
    /// Inspect configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration (environment and defaults) with secrets masked; exits 2 when it is invalid.
    Check {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}
