//! The `dashctl` binary: parse the command line, set up logging, run the command.

mod cli;
mod commands;
mod telemetry;

use clap::Parser;

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
            eprintln!("dashctl: error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            std::process::ExitCode::from(commands::exit_code_of(&e))
        }
    }
}
