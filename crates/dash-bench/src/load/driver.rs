//! The workers: each loops over its mix with one request in flight, retrying
//! the same id when the policy allows, until the deadline, the request
//! budget or a stop request.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use reqwest::header::CONTENT_TYPE;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::report::{Ack, LoadReport, LoadSummary, Op, Outcome, RequestRecord};
use super::{list, seed, LoadConfig, LoadError, Mix};

/// A live view of a running load, for callers that act while it runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// HTTP requests answered or failed so far.
    pub requests: u64,
    /// Of those, not 2xx.
    pub failed: u64,
    /// Creates acknowledged so far.
    pub acked: u64,
    /// When the latest acknowledgement arrived.
    pub last_ack: Option<Instant>,
}

/// State shared by the handle and the workers.
#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    started_ops: AtomicU64,
    requests: AtomicU64,
    failed: AtomicU64,
    acked: AtomicU64,
    last_ack: Mutex<Option<Instant>>,
}

/// A running load; dropping it asks the workers to stop.
pub struct LoadHandle {
    shared: Arc<Shared>,
    task: Option<JoinHandle<Result<LoadReport, LoadError>>>,
}

impl LoadHandle {
    /// Asks every worker to stop after its current operation (bounded by the
    /// request timeout); retries are abandoned.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
    }

    /// Counts so far.
    pub fn progress(&self) -> Progress {
        let s = &self.shared;
        Progress {
            requests: s.requests.load(Ordering::SeqCst),
            failed: s.failed.load(Ordering::SeqCst),
            acked: s.acked.load(Ordering::SeqCst),
            last_ack: *s.last_ack.lock().unwrap_or_else(|p| p.into_inner()),
        }
    }

    /// Waits for the run to end and returns what it recorded.
    pub async fn join(mut self) -> Result<LoadReport, LoadError> {
        let task = self.task.take().expect("joined once");
        task.await.map_err(|e| LoadError::Worker(e.to_string()))?
    }
}

impl Drop for LoadHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs a load to its end.
pub async fn run(config: LoadConfig) -> Result<LoadReport, LoadError> {
    start(config)?.join().await
}

/// Starts a load in the background (seeding first for the get mix). Must be
/// called inside a Tokio runtime.
pub fn start(config: LoadConfig) -> Result<LoadHandle, LoadError> {
    let base = config.validate()?;
    let client = reqwest::Client::builder()
        .timeout(config.request_timeout)
        .connect_timeout(config.request_timeout.min(Duration::from_secs(1)))
        .pool_max_idle_per_host(config.concurrency)
        .tcp_nodelay(true)
        .no_proxy()
        .build()
        .map_err(LoadError::Client)?;
    let ctx = Arc::new(Ctx {
        client,
        base: base.clone(),
        create_url: format!("{base}/api/v1/agents"),
        agent_url: format!("{base}/api/v1/agents/"),
        task_json: serde_json::to_string(&config.task).expect("a string serializes"),
        config,
    });
    let shared = Arc::new(Shared::default());
    let task = tokio::spawn(run_all(ctx, shared.clone()));
    Ok(LoadHandle {
        shared,
        task: Some(task),
    })
}

/// What every request needs.
pub(super) struct Ctx {
    client: reqwest::Client,
    /// The API's base URL, without a trailing `/`.
    pub(super) base: String,
    pub(super) create_url: String,
    agent_url: String,
    pub(super) task_json: String,
    pub(super) config: LoadConfig,
}

impl Ctx {
    /// Sends one request; returns how it ended and when it started and
    /// ended. For [`Op::List`], `id` is the swarm listed.
    async fn attempt(&self, op: Op, id: Uuid) -> RequestRecord {
        let req = match op {
            Op::Create => self.post(
                &self.create_url,
                format!(r#"{{"id":"{id}","task":{}}}"#, self.task_json),
            ),
            Op::Get => self.client.get(format!("{}{id}", self.agent_url)),
            Op::List => self.client.get(list::page_url(&self.base, id)),
        };
        let start = Instant::now();
        let outcome = self.send(req, op).await;
        RequestRecord {
            op,
            id,
            attempt: 1,
            start,
            end: Instant::now(),
            outcome,
        }
    }

    /// An authorized JSON POST.
    pub(super) fn post(&self, url: &str, body: String) -> reqwest::RequestBuilder {
        self.client
            .post(url)
            .bearer_auth(self.config.token.expose())
            .header(CONTENT_TYPE, "application/json")
            .body(body)
    }

    /// Sends `req` and reads its whole answer.
    pub(super) async fn send(&self, req: reqwest::RequestBuilder, op: Op) -> Outcome {
        match req.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                // Read the body so the connection is reused, and so a reset
                // mid-body is not mistaken for an answer.
                match resp.bytes().await {
                    Ok(b) if op == Op::List && status == 200 && !list::full_page(&b) => {
                        Outcome::ShortPage(status)
                    }
                    Ok(_) if (200..300).contains(&status) => Outcome::Ok(status),
                    Ok(_) => Outcome::Status(status),
                    Err(e) => transport(&e),
                }
            }
            Err(e) => transport(&e),
        }
    }
}

fn transport(e: &reqwest::Error) -> Outcome {
    if e.is_timeout() {
        Outcome::Timeout
    } else if e.is_connect() {
        Outcome::Connect
    } else {
        Outcome::Transport
    }
}

/// What one worker recorded.
#[derive(Default)]
struct WorkerLog {
    records: Vec<RequestRecord>,
    acks: Vec<Ack>,
    unacked: Vec<Uuid>,
    read_misses: Vec<Uuid>,
}

struct Worker {
    ctx: Arc<Ctx>,
    shared: Arc<Shared>,
    deadline: Instant,
    log: WorkerLog,
}

impl Worker {
    fn stopping(&self) -> bool {
        self.shared.stop.load(Ordering::SeqCst) || Instant::now() >= self.deadline
    }

    /// Claims the next operation, or says the run is over.
    fn next_op(&self) -> bool {
        if self.stopping() {
            return false;
        }
        let n = self.shared.started_ops.fetch_add(1, Ordering::SeqCst);
        self.ctx.config.max_requests.is_none_or(|max| n < max)
    }

    /// One operation, with retries of the same id; returns its last outcome.
    async fn call(&mut self, op: Op, id: Uuid) -> (Outcome, Instant, Instant, u32) {
        let policy = self.ctx.config.retry;
        let sent = Instant::now();
        let mut attempt = 1;
        loop {
            let mut rec = self.ctx.attempt(op, id).await;
            rec.attempt = attempt;
            self.shared.requests.fetch_add(1, Ordering::SeqCst);
            if !rec.outcome.is_ok() {
                self.shared.failed.fetch_add(1, Ordering::SeqCst);
            }
            self.log.records.push(rec);
            let pause = policy.pause_after(attempt);
            let give_up = rec.outcome.is_ok()
                || !rec.outcome.is_retryable()
                || attempt >= policy.max_attempts
                || self.shared.stop.load(Ordering::SeqCst)
                || Instant::now() + pause >= self.deadline;
            if give_up {
                return (rec.outcome, sent, rec.end, attempt);
            }
            tokio::time::sleep(pause).await;
            attempt += 1;
        }
    }

    /// Creates agent `id`; true when acknowledged.
    async fn create(&mut self, id: Uuid) -> bool {
        let (outcome, sent, at, attempts) = self.call(Op::Create, id).await;
        let Outcome::Ok(status) = outcome else {
            self.log.unacked.push(id);
            return false;
        };
        self.log.acks.push(Ack {
            id,
            sent,
            at,
            status,
            attempts,
        });
        self.shared.acked.fetch_add(1, Ordering::SeqCst);
        let mut last = self
            .shared
            .last_ack
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *last = (*last).max(Some(at));
        true
    }

    async fn run(mut self, seeds: Arc<Vec<Uuid>>) -> WorkerLog {
        let mut rng = rand::rngs::StdRng::from_entropy();
        while self.next_op() {
            match self.ctx.config.mix {
                Mix::CreateAgent => {
                    self.create(Uuid::new_v4()).await;
                }
                Mix::GetAgent => {
                    let id = seeds[rng.gen_range(0..seeds.len())];
                    self.call(Op::Get, id).await;
                }
                Mix::ListAgents => {
                    let swarm = seeds[rng.gen_range(0..seeds.len())];
                    self.call(Op::List, swarm).await;
                }
                Mix::CreateThenGet => {
                    let id = Uuid::new_v4();
                    if self.create(id).await {
                        let (outcome, ..) = self.call(Op::Get, id).await;
                        if outcome == Outcome::Status(404) {
                            self.log.read_misses.push(id);
                        }
                    }
                }
            }
        }
        self.log
    }
}

async fn run_all(ctx: Arc<Ctx>, shared: Arc<Shared>) -> Result<LoadReport, LoadError> {
    let seeds = match ctx.config.mix {
        Mix::GetAgent => seed::agents(&ctx).await?,
        Mix::ListAgents if ctx.config.list_swarms.is_empty() => list::seed_over_http(&ctx).await?,
        Mix::ListAgents => ctx.config.list_swarms.clone(),
        _ => Vec::new(),
    };
    let seeds = Arc::new(seeds);
    let started = Instant::now();
    let deadline = started + ctx.config.duration;
    let workers: Vec<_> = (0..ctx.config.concurrency)
        .map(|_| {
            let worker = Worker {
                ctx: ctx.clone(),
                shared: shared.clone(),
                deadline,
                log: WorkerLog::default(),
            };
            tokio::spawn(worker.run(seeds.clone()))
        })
        .collect();
    let mut all = WorkerLog::default();
    for w in workers {
        let log = w.await.map_err(|e| LoadError::Worker(e.to_string()))?;
        all.records.extend(log.records);
        all.acks.extend(log.acks);
        all.unacked.extend(log.unacked);
        all.read_misses.extend(log.read_misses);
    }
    let finished = Instant::now();
    all.records.sort_by_key(|r| r.start);
    all.acks.sort_by_key(|a| a.at);
    let summary = LoadSummary::of(
        ctx.config.mix,
        ctx.config.concurrency,
        finished - started,
        &all.records,
        &all.acks,
        all.unacked.len(),
        all.read_misses.len(),
    );
    Ok(LoadReport {
        started,
        finished,
        records: all.records,
        acks: all.acks,
        unacked: all.unacked,
        read_misses: all.read_misses,
        seeded: Arc::unwrap_or_clone(seeds),
        summary,
    })
}
