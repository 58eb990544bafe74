//! The built-in demo runtime (`dashctl runtime demo`): reads its task on
//! stdin, then works through a number of steps, printing a line and a
//! usage report for each (the JSON-lines protocol of [`crate::protocol`]),
//! and a result at the end. For demos and tests: it spends no money and
//! calls nothing, but it behaves like an agent for the worker.
//!
//! With a journal file it also records, outside the database, when each
//! run started, stepped and ended (`start|step|end AGENT ATTEMPT [I] NS`,
//! nanoseconds since the Unix epoch): `dashctl chaos kill-worker` reads it
//! to prove that no two runs of one agent overlapped in time.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub steps: u32,
    /// Time each step takes.
    pub step: Duration,
    /// What each step costs (a delta, in the swarm's currency).
    pub cost: f64,
    pub tokens: i64,
    /// Fail (exit 1) while the attempt (`DASH_AGENT_ATTEMPT`) is at most this.
    pub fail_attempts: i32,
    /// Append `start`, `step` and `end` lines here (many runs may share it).
    pub journal: Option<PathBuf>,
}

/// Appends one line to the journal: opened with O_APPEND and written with
/// a single `write`, so lines of concurrent runs never interleave.
fn journal(path: Option<&Path>, what: std::fmt::Arguments) {
    let Some(path) = path else { return };
    let ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let line = format!("{what} {ns}\n");
    let file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path);
    if let Ok(mut f) = file {
        let _ = f.write(line.as_bytes());
    }
}

/// Runs the demo; returns the exit code.
pub fn run(
    opts: &DemoOptions,
    input: impl BufRead,
    mut out: impl Write,
    mut err: impl Write,
) -> i32 {
    let mut task = String::new();
    for line in input.lines().map_while(Result::ok).take(10_000) {
        if task.len() < 100_000 {
            task.push_str(&line);
            task.push('\n');
        }
    }
    let attempt: i32 = std::env::var("DASH_AGENT_ATTEMPT")
        .ok()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1);
    let agent = std::env::var("DASH_AGENT_ID").unwrap_or_default();
    let j = opts.journal.as_deref();
    journal(j, format_args!("start {agent} {attempt}"));
    let summary: String = task.split_whitespace().collect::<Vec<_>>().join(" ");
    let summary: String = summary.chars().take(60).collect();
    let _ = writeln!(
        out,
        "demo runtime: agent {agent}, attempt {attempt}, task: {summary}"
    );
    for i in 1..=opts.steps {
        std::thread::sleep(opts.step);
        let progress = f64::from(i) / f64::from(opts.steps.max(1));
        let _ = writeln!(out, "step {i}/{}: working", opts.steps);
        let report = serde_json::json!({
            "dash": "usage", "message_id": format!("a{attempt}-step{i}"),
            "tokens": opts.tokens, "cost": opts.cost, "progress": progress,
        });
        let _ = writeln!(out, "{report}");
        let _ = out.flush();
        journal(j, format_args!("step {agent} {attempt} {i}"));
        if attempt <= opts.fail_attempts && i == opts.steps.div_ceil(2) {
            let _ = writeln!(err, "demo runtime: failing attempt {attempt} on purpose");
            return 1;
        }
    }
    let result =
        serde_json::json!({"dash": "result", "result": {"steps": opts.steps, "attempt": attempt}});
    let _ = writeln!(out, "{result}");
    let _ = out.flush();
    journal(j, format_args!("end {agent} {attempt}"));
    0
}
