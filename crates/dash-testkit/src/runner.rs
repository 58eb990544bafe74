//! One way to run the real `dashctl` binary in a test: a clean environment,
//! no terminal on stdin, and on a wrong exit code a panic that prints the
//! command, its stdout and its stderr.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;

/// A binary and the environment every run of it gets.
#[derive(Debug, Clone)]
pub struct Runner {
    program: PathBuf,
    env: Vec<(String, OsString)>,
}

/// What one run printed and how it ended.
#[derive(Debug)]
pub struct Run {
    /// The command line, for messages.
    pub command: String,
    /// The exit code (-1 when killed by a signal).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Runner {
    /// `program` with an empty environment but `PATH` (pass
    /// `env!("CARGO_BIN_EXE_dashctl")`).
    pub fn new(program: impl Into<PathBuf>) -> Runner {
        Runner {
            program: program.into(),
            env: vec![("PATH".into(), std::env::var_os("PATH").unwrap_or_default())],
        }
    }

    /// Adds (or replaces) one environment variable of every run.
    pub fn env(mut self, key: &str, value: impl Into<OsString>) -> Runner {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_string(), value.into()));
        self
    }

    /// Runs `program ARGS` to completion.
    pub async fn run(&self, args: &[&str]) -> Run {
        let out = tokio::process::Command::from(self.command(args))
            .output()
            .await;
        self.finished(args, out)
    }

    /// [`Runner::run`] for tests without a runtime.
    pub fn run_blocking(&self, args: &[&str]) -> Run {
        let out = self.command(args).output();
        self.finished(args, out)
    }

    fn command(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = std::process::Command::new(&self.program);
        cmd.args(args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        cmd
    }

    fn finished(&self, args: &[&str], out: std::io::Result<std::process::Output>) -> Run {
        let out = out.unwrap_or_else(|e| panic!("cannot run {}: {e}", self.program.display()));
        let name = self.program.file_name().unwrap_or_default();
        Run {
            command: format!("{} {}", name.to_string_lossy(), args.join(" ")),
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Run {
    /// Panics, showing the command and everything it printed, unless it
    /// exited with `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Run {
        assert_eq!(self.code, code, "wrong exit code\n{}", self.show());
        self
    }

    /// The command, its exit code, stdout and stderr, for assertion messages.
    pub fn show(&self) -> String {
        format!(
            "$ {}\nexit {}\n--- stdout\n{}--- stderr\n{}",
            self.command, self.code, self.stdout, self.stderr
        )
    }

    /// stdout parsed as JSON; panics with the whole run when it is not.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e})\n{}", self.show()))
    }
}
