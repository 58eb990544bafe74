//! Logging for every command: `tracing` to stderr, filtered by `DASH_LOG`
//! (else the command's default), JSON lines when asked, and colour only when
//! stderr is a terminal (a piped `make up` gets plain text).

use std::io::IsTerminal;

/// Installs the one subscriber of this process. `default_filter` applies when
/// `DASH_LOG` is unset or invalid: `info,tokio_postgres=warn` for the
/// long-running commands, `warn` for those whose report goes to stdout.
pub fn init(json: bool, default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DASH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    // try_init: a second call (tests running commands in one process) keeps the first.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// The filter of the long-running commands (`serve`, `up`, `node`).
pub const SERVICE: &str = "info,tokio_postgres=warn";
/// The filter of commands that print a report on stdout (`chaos`, `bench`).
pub const QUIET: &str = "warn";
