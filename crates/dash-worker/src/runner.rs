//! One claimed agent, run: its runtime process, its output streamed back,
//! its reports charged, its lease renewed, and its end reported once.
//!
//! The runtime is stopped at once when the lease is lost (killed, paused,
//! reclaimed), or when this worker could not renew it for the lease less
//! one heartbeat (so it is dead before anyone may reclaim it); at the next
//! report when the swarm is paused or out of budget (then the agent is
//! handed back, no attempt spent); and on a drain's end.

use std::future::Future;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dash_store::repo::agents::lease::{Claim, Directive, Finish};
use dash_store::{Db, StoreError};
use futures::StreamExt;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};

use crate::metrics::WorkerMetrics;
use crate::process::{pdeathsig_wrapper, stop_group, GroupGuard};
use crate::protocol::{clean, parse, Line, Report, MAX_LINE};
use crate::settings::WorkerSettings;

/// Output is sent at least this often, and at most this many lines at once.
const FLUSH_EVERY: Duration = Duration::from_millis(250);
const FLUSH_LINES: usize = 200;
/// The last stderr lines kept for a failure's error.
const ERROR_TAIL: usize = 20;
/// How long a completion keeps being retried across a database outage.
const FINISH_FOR: Duration = Duration::from_secs(300);

/// What a worker shares with each run.
pub struct Ctx {
    pub db: Db,
    pub settings: Arc<WorkerSettings>,
    pub metrics: Arc<WorkerMetrics>,
    /// Becomes true when a drain ends: stop and hand back.
    pub halt: watch::Receiver<bool>,
}

/// How a run ended, for the worker's log and the tests.
#[derive(Debug, Clone, PartialEq)]
pub enum RunEnd {
    Completed,
    Failed(String),
    /// Rejected by the database: the attempt no longer ran.
    Stale(String),
    /// Stopped and handed back (swarm paused, budget spent, drain).
    Yielded(String),
    /// The lease was lost, or could not be renewed in time.
    Lost(String),
}

/// Calls `f` until it succeeds, fails for good, or `until` passes; errors
/// that a retry can fix (a failover, a lost connection) are retried with
/// a backoff doubling from 50 ms to 1 s.
pub async fn persist<T, F, Fut>(until: Instant, mut f: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut pause = Duration::from_millis(50);
    loop {
        match f().await {
            Err(e) if e.is_retryable() && Instant::now() + pause < until => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            other => return other,
        }
    }
}

fn command(s: &WorkerSettings, c: &Claim) -> Command {
    let mut cmd = match (&s.guard, pdeathsig_wrapper()) {
        (Some(dashctl), _) => {
            let mut cmd = Command::new(dashctl);
            cmd.args(["runtime-guard", "--"]).arg(&s.runtime[0]);
            cmd
        }
        (None, Some(setpriv)) => {
            let mut cmd = Command::new(setpriv);
            cmd.args(["--pdeathsig", "KILL", "--"]).arg(&s.runtime[0]);
            cmd
        }
        (None, None) => Command::new(&s.runtime[0]),
    };
    cmd.args(&s.runtime[1..])
        .env("DASH_AGENT_ID", c.id.to_string())
        .env("DASH_AGENT_MODEL", &c.model)
        .env("DASH_AGENT_ATTEMPT", c.attempt.to_string())
        .env("DASH_AGENT_MAX_RETRIES", c.max_retries.to_string())
        .env("DASH_WORKER", &s.name)
        .env("DASH_BUDGET_CURRENCY", &c.currency)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    match c.budget_remaining {
        Some(r) => cmd.env("DASH_BUDGET_REMAINING", format!("{r:.6}")),
        None => cmd.env("DASH_BUDGET_REMAINING", "unlimited"),
    };
    if let Some(s) = c.swarm_id {
        cmd.env("DASH_SWARM_ID", s.to_string());
    }
    // Database credentials are the worker's, never the runtime's.
    for var in ["DATABASE_URL", "DATABASE_PASSWORD", "PGPASSWORD"] {
        cmd.env_remove(var);
    }
    cmd
}

fn lines<R: tokio::io::AsyncRead + Unpin>(r: R) -> FramedRead<R, LinesCodec> {
    FramedRead::new(r, LinesCodec::new_with_max_length(MAX_LINE))
}

/// A line, or the note that one was too long (and skipped).
fn line_of(item: Result<String, LinesCodecError>) -> Option<String> {
    match item {
        Ok(l) => Some(l),
        Err(LinesCodecError::MaxLineLengthExceeded) => {
            Some(format!("[dash: a line over {MAX_LINE} bytes was skipped]"))
        }
        Err(LinesCodecError::Io(_)) => None,
    }
}

/// The runtime that runs nothing and completes at once: what a claim and a
/// completion cost through the database, without a process (benchmarks).
pub const NOOP: &str = "noop";

/// Runs `claim` to its end.
pub async fn run(ctx: &Ctx, claim: Claim) -> RunEnd {
    if ctx.settings.runtime[0] == NOOP {
        return finish(ctx, &claim, true, None, None).await;
    }
    let mut child = match command(&ctx.settings, &claim).spawn() {
        Ok(c) => c,
        Err(e) => {
            let why = format!(
                "cannot start the runtime {:?}: {e}",
                ctx.settings.runtime[0]
            );
            return finish(ctx, &claim, false, Some(why), None).await;
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        let task = claim.task.clone();
        tokio::spawn(async move {
            // A runtime that does not read its task is not an error here.
            let _ = stdin.write_all(task.as_bytes()).await;
            let _ = stdin.shutdown().await;
        });
    }
    let out = lines(child.stdout.take().expect("piped"));
    let err = lines(child.stderr.take().expect("piped"));
    Run {
        ctx,
        claim: &claim,
        out_buf: Vec::new(),
        err_buf: Vec::new(),
        err_tail: Vec::new(),
        progress: None,
        result: None,
    }
    .drive(child, out, err)
    .await
}

struct Run<'a> {
    ctx: &'a Ctx,
    claim: &'a Claim,
    out_buf: Vec<String>,
    err_buf: Vec<String>,
    err_tail: Vec<String>,
    progress: Option<f64>,
    result: Option<Value>,
}

impl Run<'_> {
    async fn drive<O, E>(mut self, mut child: Child, mut out: O, mut err: E) -> RunEnd
    where
        O: futures::Stream<Item = Result<String, LinesCodecError>> + Unpin,
        E: futures::Stream<Item = Result<String, LinesCodecError>> + Unpin,
    {
        let s = self.ctx.settings.clone();
        let mut halt = self.ctx.halt.clone();
        let mut flush = tokio::time::interval(FLUSH_EVERY);
        let mut beat = tokio::time::interval(s.heartbeat);
        beat.tick().await; // the claim itself took the lease
        let mut renewed_at = Instant::now();
        let (mut out_open, mut err_open) = (true, true);
        let pid = child.id();
        let mut guard = GroupGuard::new(pid);
        let ended = loop {
            let fence_at = renewed_at + s.self_fence_after();
            tokio::select! {
                l = out.next(), if out_open => match l.and_then(line_of) {
                    Some(l) => if let Some(end) = self.on_stdout(&l).await {
                        break Some(end);
                    },
                    None => out_open = false,
                },
                l = err.next(), if err_open => match l.and_then(line_of) {
                    Some(l) => self.on_stderr(l),
                    None => err_open = false,
                },
                _ = flush.tick() => self.flush().await,
                _ = beat.tick() => {
                    let sent = Instant::now();
                    let beat = self.ctx.db.heartbeat(self.claim.id, self.claim.attempt, s.lease, self.progress);
                    match tokio::time::timeout(s.heartbeat, beat).await {
                        Ok(Ok(Directive::Continue)) => renewed_at = sent,
                        Ok(Ok(Directive::Stop(why))) => break Some(RunEnd::Yielded(why)),
                        Ok(Ok(Directive::Lost(why))) => break Some(RunEnd::Lost(why)),
                        Ok(Err(e)) => tracing::warn!(agent = %self.claim.id, error = %e, "heartbeat failed; retrying"),
                        Err(_) => tracing::warn!(agent = %self.claim.id, "heartbeat timed out; retrying"),
                    }
                }
                _ = tokio::time::sleep_until(fence_at.into()) => {
                    break Some(RunEnd::Lost(format!(
                        "the lease could not be renewed for {:?}: stopped before another worker may reclaim it",
                        s.self_fence_after()
                    )));
                }
                _ = async { let _ = halt.wait_for(|h| *h).await; } => {
                    break Some(RunEnd::Yielded("the worker is stopping".into()))
                }
                status = child.wait(), if !out_open && !err_open => break status.ok().map(|st| {
                    match st.success() {
                        true => RunEnd::Completed,
                        false => RunEnd::Failed(self.error_of(&st.to_string())),
                    }
                }),
            }
        };
        // Whatever ended the run, nothing of the runtime's group outlives
        // it; one handed back gets a moment to stop cleanly.
        let grace = match ended {
            Some(RunEnd::Yielded(_)) => Duration::from_secs(2),
            _ => Duration::ZERO,
        };
        stop_group(pid, &mut child, grace).await;
        guard.disarm();
        match ended {
            Some(RunEnd::Completed) => {
                self.flush().await;
                let result = self.result.take();
                finish(self.ctx, self.claim, true, None, result).await
            }
            Some(RunEnd::Failed(why)) => {
                self.flush().await;
                finish(self.ctx, self.claim, false, Some(why), None).await
            }
            Some(RunEnd::Lost(why)) => {
                self.ctx.metrics.leases_lost.inc();
                tracing::warn!(agent = %self.claim.id, attempt = self.claim.attempt, %why, "lease lost: runtime stopped");
                RunEnd::Lost(why)
            }
            Some(RunEnd::Yielded(why)) => {
                self.flush().await;
                let until = Instant::now() + s.self_fence_after();
                let (id, attempt) = (self.claim.id, self.claim.attempt);
                let db = &self.ctx.db;
                let _ = persist(until, || db.yield_attempt(id, attempt, &why)).await;
                RunEnd::Yielded(why)
            }
            other => {
                let why = format!("the runtime could not be waited for: {other:?}");
                finish(self.ctx, self.claim, false, Some(why), None).await
            }
        }
    }

    /// One stdout line; `Some` ends the run.
    async fn on_stdout(&mut self, line: &str) -> Option<RunEnd> {
        match parse(line) {
            Line::Output(l) => self.push_out(l),
            Line::BadReport(l, why) => {
                self.push_out(l);
                self.push_err(format!("[dash: not a valid report: {why}]"));
            }
            Line::Report(Report::Progress { progress, message }) => {
                self.progress = progress.or(self.progress);
                if let Some(m) = message {
                    self.push_out(clean(&m));
                }
            }
            Line::Report(Report::Result { result }) => self.result = Some(result),
            Line::Report(Report::Usage {
                message_id,
                tokens,
                cost,
                progress,
            }) => {
                self.progress = progress.or(self.progress);
                let (id, attempt) = (self.claim.id, self.claim.attempt);
                let until = Instant::now() + self.ctx.settings.self_fence_after();
                let db = &self.ctx.db;
                let report = || db.report_usage(id, attempt, &message_id, tokens, cost, progress);
                match persist(until, report).await {
                    Ok(Directive::Continue) => {}
                    Ok(Directive::Stop(why)) => return Some(RunEnd::Yielded(why)),
                    Ok(Directive::Lost(why)) => return Some(RunEnd::Lost(why)),
                    Err(e) => self.push_err(format!("[dash: usage report rejected: {e}]")),
                }
            }
        }
        None
    }

    fn on_stderr(&mut self, line: String) {
        self.push_err(clean(&line));
    }

    fn push_out(&mut self, l: String) {
        self.out_buf.push(l);
    }

    fn push_err(&mut self, l: String) {
        if self.err_tail.len() == ERROR_TAIL {
            self.err_tail.remove(0);
        }
        self.err_tail.push(l.clone());
        self.err_buf.push(l);
    }

    fn error_of(&self, status: &str) -> String {
        let tail = self.err_tail.join("\n");
        let mut e = format!("the runtime exited with {status}");
        if !tail.is_empty() {
            e.push_str(": ");
            e.push_str(&tail);
        }
        e.chars().take(8_000).collect()
    }

    async fn flush(&mut self) {
        let (id, attempt) = (self.claim.id, self.claim.attempt);
        for (stream, buf) in [("stdout", &mut self.out_buf), ("stderr", &mut self.err_buf)] {
            while !buf.is_empty() {
                let n = buf.len().min(FLUSH_LINES);
                let batch: Vec<String> = buf.drain(..n).collect();
                if let Err(e) = self.ctx.db.append_output(id, attempt, stream, &batch).await {
                    tracing::warn!(agent = %id, error = %e, "{} output lines lost", batch.len());
                }
            }
        }
    }
}

/// Reports the end of `claim`'s attempt, retrying across a failover until
/// it lands or is fenced out.
async fn finish(
    ctx: &Ctx,
    claim: &Claim,
    ok: bool,
    error: Option<String>,
    result: Option<Value>,
) -> RunEnd {
    let until = Instant::now() + FINISH_FOR;
    let (id, attempt) = (claim.id, claim.attempt);
    let db = &ctx.db;
    let done = persist(until, || {
        db.finish_attempt(id, attempt, ok, error.as_deref(), result.clone())
    })
    .await;
    match done {
        Ok(Finish::Applied(_)) if ok => {
            ctx.metrics.completed.inc();
            RunEnd::Completed
        }
        Ok(Finish::Applied(_)) => {
            ctx.metrics.failed.inc();
            RunEnd::Failed(error.unwrap_or_default())
        }
        Ok(Finish::Fenced(why)) => {
            ctx.metrics.stale_finishes.inc();
            tracing::warn!(agent = %id, attempt, %why, "the end of this attempt was rejected as stale");
            RunEnd::Stale(why)
        }
        Err(e) => {
            tracing::error!(agent = %id, attempt, error = %e, "could not report the end of this attempt; its lease will expire and it will be retried");
            RunEnd::Lost(e.to_string())
        }
    }
}
