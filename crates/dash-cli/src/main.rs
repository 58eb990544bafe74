//! The `dashctl` binary: parse the command line, set up logging, run the command.

mod cli;
mod commands;
mod telemetry;

use clap::Parser;

/// mimalloc instead of glibc's malloc: malloc, free and consolidation were
/// ~10 % of `dashctl serve`'s samples under `GET /agents/{id}` load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let args = cli::Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dashctl: cannot start the async runtime: {e}");
            return std::process::ExitCode::from(commands::EXIT_FAILURE);
        }
    };
    match runtime.block_on(commands::run(args)) {
        Ok(code) => std::process::ExitCode::from(code),
        Err(e) => {
            let err: &dyn std::error::Error = e.as_ref();
            let mut causes = dash_core::error_causes(err).into_iter();
            eprintln!("dashctl: error: {}", causes.next().unwrap_or_default());
            for cause in causes {
                eprintln!("  caused by: {cause}");
            }
            std::process::ExitCode::from(commands::exit_code_of(&e))
        }
    }
}
