//! Running `ip` and `nft`: output captured, and every failure names the
//! command line and its stderr.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::NetError;

/// Runs `ip <args>` in the root namespace and returns its stdout.
pub(crate) fn ip(args: &[&str]) -> Result<String, NetError> {
    let mut cmd = Command::new("ip");
    cmd.args(args);
    run(cmd, None)
}

/// Runs `ip -n <ns> <args>`: `ip` acting on namespace `ns`.
pub(crate) fn ip_in(ns: &str, args: &[&str]) -> Result<String, NetError> {
    let mut cmd = Command::new("ip");
    cmd.args(["-n", ns]).args(args);
    run(cmd, None)
}

/// Runs the nftables `script` (one atomic transaction) inside namespace `ns`.
pub(crate) fn nft_in(ns: &str, script: &str) -> Result<(), NetError> {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, "nft", "-f", "-"]);
    run(cmd, Some(script)).map(drop)
}

/// Runs `cmd` with `input` on stdin (if any) and returns its stdout; a spawn
/// failure or non-zero exit is [`NetError::Command`].
fn run(mut cmd: Command, input: Option<&str>) -> Result<String, NetError> {
    let mut line = describe(&cmd);
    if let Some(input) = input {
        line.push_str(&format!(" <<EOF\n{}EOF", input));
    }
    tracing::debug!(command = %line, "running");
    let failed = |status: String, stderr: String| NetError::Command {
        command: line.clone(),
        status,
        stderr,
    };
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| failed(format!("could not run: {e}"), String::new()))?;
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        // A write error means the program exited early; its status says why.
        let _ = stdin.write_all(input.as_bytes());
    }
    let output = child
        .wait_with_output()
        .map_err(|e| failed(format!("could not wait: {e}"), String::new()))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() {
        return Ok(stdout);
    }
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
    let shown = if stderr.is_empty() {
        stdout.trim().to_string()
    } else {
        stderr
    };
    Err(failed(output.status.to_string(), shown))
}

/// The command line, for errors and logs.
fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}
