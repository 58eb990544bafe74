//! The checker's writers (Jepsen-style): each write carries a client-made
//! id, and every acknowledgement is recorded with the node and timeline that
//! gave it. Client writers go through the API's own failover-aware pool
//! (`dash_store::Db`, given every host); the split-brain writer sits on the
//! primary's host and talks only to its local server.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dash_store::pool::NoopObserver;
use dash_store::{Db, DbSettings, HostPort, Secret};
use uuid::Uuid;

/// The table the writers insert into (no unique key: a doubled write shows).
/// An index (not a unique key) on `id`, so the check after a long soak reads
/// millions of ids back without a scan per batch.
pub const TABLE_SQL: &str = "CREATE TABLE IF NOT EXISTS dash_chaos_writes (
    id uuid NOT NULL, writer text NOT NULL, at timestamptz NOT NULL DEFAULT now());
    CREATE INDEX IF NOT EXISTS dash_chaos_writes_id ON dash_chaos_writes (id)";

const INSERT: &str = "INSERT INTO dash_chaos_writes (id, writer) VALUES ($1, $2)
    RETURNING host(inet_server_addr()), substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)";

/// One acknowledged write.
#[derive(Debug, Clone)]
pub struct Ack {
    pub id: Uuid,
    /// The server address that committed it.
    pub node: String,
    pub timeline: u32,
    pub at: Instant,
    /// Wall-clock milliseconds (compared with etcd's decision history).
    pub wall_ms: i64,
    /// Written by the split-brain writer on the old primary's host.
    pub local: bool,
}

/// Writers running until stopped.
pub struct Writers {
    stop: Arc<AtomicBool>,
    counts: Arc<Counts>,
    tasks: Vec<tokio::task::JoinHandle<Vec<Ack>>>,
}

/// Acknowledgements counted as they come.
#[derive(Default)]
struct Counts {
    acked: AtomicU64,
    /// Of writes sent at or after `since`.
    fresh: AtomicU64,
    since: std::sync::Mutex<Option<Instant>>,
}

/// Settings for a pool over `hosts` (`ip:port`).
pub fn settings(hosts: &[String], password: &str, pool: usize) -> DbSettings {
    DbSettings {
        hosts: hosts
            .iter()
            .map(|h| {
                let (host, port) = dash_node::split_host_port(h);
                HostPort { host, port }
            })
            .collect(),
        password: Secret::new(password),
        pool_size: pool,
        query_timeout: Duration::from_secs(2),
        statement_timeout: Duration::from_millis(1500),
        application_name: "dash-chaos".into(),
        ..DbSettings::default()
    }
}

impl Writers {
    /// `n` writers on the current runtime over `hosts`.
    pub fn start(hosts: &[String], password: &str, n: usize, local: bool) -> Writers {
        let db = Db::new(settings(hosts, password, n + 2), Arc::new(NoopObserver));
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(Counts::default());
        let tasks = (0..n)
            .map(|w| {
                let (db, stop, counts) = (db.clone(), stop.clone(), counts.clone());
                tokio::spawn(write_loop(db, stop, counts, format!("w{w}"), local))
            })
            .collect();
        Writers {
            stop,
            counts,
            tasks,
        }
    }

    /// Acknowledgements so far.
    pub fn acked(&self) -> u64 {
        self.counts.acked.load(Ordering::Relaxed)
    }

    /// From now on, counts the acknowledgements of writes sent from now on
    /// (see [`Writers::fresh`]).
    pub fn count_fresh(&self) {
        *self.counts.since.lock().expect("counts") = Some(Instant::now());
    }

    /// Acknowledgements of writes sent since [`Writers::count_fresh`]: an
    /// acknowledgement of a write already in flight then (one a dying server
    /// may still give) does not count.
    pub fn fresh(&self) -> u64 {
        self.counts.fresh.load(Ordering::Relaxed)
    }

    /// Stops the writers and returns every acknowledgement.
    pub async fn finish(self) -> Vec<Ack> {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for t in self.tasks {
            if let Ok(acks) = t.await {
                all.extend(acks);
            }
        }
        all.sort_by_key(|a| a.at);
        all
    }
}

async fn write_loop(
    db: Db,
    stop: Arc<AtomicBool>,
    counts: Arc<Counts>,
    writer: String,
    local: bool,
) -> Vec<Ack> {
    let mut acks = Vec::new();
    // Bounded: a round never writes for more than ten minutes.
    let deadline = Instant::now() + Duration::from_secs(600);
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        let id = Uuid::new_v4();
        let sent = Instant::now();
        let outcome = async {
            let mut conn = db.conn().await?;
            conn.query_one(INSERT, &[&id, &writer]).await
        }
        .await;
        match outcome {
            Ok(row) => {
                let node: Option<String> = row.get(0);
                let tli: String = row.get(1);
                acks.push(Ack {
                    id,
                    node: node.unwrap_or_default(),
                    timeline: u32::from_str_radix(&tli, 16).unwrap_or(0),
                    at: Instant::now(),
                    wall_ms: unix_ms(),
                    local,
                });
                counts.acked.fetch_add(1, Ordering::Relaxed);
                let since = *counts.since.lock().expect("counts");
                if since.is_some_and(|t| sent >= t) {
                    counts.fresh.fetch_add(1, Ordering::Relaxed);
                }
            }
            // Unknown outcome or refused: not acknowledged, so not owed. The
            // pool already waited for a primary; try again soon.
            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
    acks
}

pub fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// What the final primary holds of the acknowledged writes.
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    pub acked: usize,
    pub lost: usize,
    pub duplicates: usize,
    /// Acknowledged by the old primary after the new one was promoted.
    pub superseded: usize,
}

/// Checks `acks` against the writable primary reachable over `hosts`.
/// `promoted_ms`: wall-clock time of the new leader's promotion, if any;
/// `old`: the old primary's address.
pub async fn check(
    hosts: &[String],
    password: &str,
    acks: &[Ack],
    old: &str,
    promoted_ms: Option<i64>,
) -> Result<Verdict, String> {
    // Long runs (a soak) check millions of ids: generous deadlines, in batches.
    let mut check_settings = settings(hosts, password, 2);
    check_settings.query_timeout = Duration::from_secs(120);
    check_settings.statement_timeout = Duration::from_secs(100);
    let db = Db::new(check_settings, Arc::new(NoopObserver));
    let ids: Vec<Uuid> = acks.iter().map(|a| a.id).collect();
    // The cluster was highly available a moment ago; give a disturbance
    // since then time to settle rather than reporting it as a check failure.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut conn = loop {
        match db.conn().await {
            Ok(c) => break c,
            Err(e) if Instant::now() > deadline => return Err(e.to_string()),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    let mut found = 0;
    let mut duplicates = 0;
    for batch in ids.chunks(50_000) {
        let rows = conn
            .query(
                "SELECT id, count(*) FROM dash_chaos_writes WHERE id = ANY($1) GROUP BY id",
                &[&batch],
            )
            .await
            .map_err(|e| e.to_string())?;
        found += rows.len();
        duplicates += rows.iter().filter(|r| r.get::<_, i64>(1) > 1).count();
    }
    let superseded = match promoted_ms {
        Some(t) => acks
            .iter()
            .filter(|a| a.node == old && a.wall_ms > t)
            .count(),
        None => 0,
    };
    Ok(Verdict {
        acked: acks.len(),
        lost: acks.len() - found,
        duplicates,
        superseded,
    })
}

/// The longest silence between consecutive client acknowledgements.
#[derive(Debug, Clone)]
pub struct Gap {
    pub ms: f64,
    /// The last acknowledgement before it.
    pub from: Instant,
    /// The first acknowledgement after it, and the server that gave it.
    pub to: Instant,
    pub resumed_on: String,
}

/// The longest silence between consecutive client acknowledgements from
/// just before `fault_at` on.
pub fn longest_gap(acks: &[Ack], fault_at: Instant) -> Option<Gap> {
    let start = fault_at
        .checked_sub(Duration::from_millis(500))
        .unwrap_or(fault_at);
    let client: Vec<&Ack> = acks.iter().filter(|a| !a.local && a.at >= start).collect();
    client
        .windows(2)
        .max_by_key(|w| w[1].at - w[0].at)
        .map(|w| Gap {
            ms: (w[1].at - w[0].at).as_secs_f64() * 1000.0,
            from: w[0].at,
            to: w[1].at,
            resumed_on: w[1].node.clone(),
        })
}

/// The split-brain writer: one writer on `host` (the old primary's
/// machine) that only ever talks to that host's own PostgreSQL.
pub struct LocalWriter {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<Vec<Ack>>,
}

impl LocalWriter {
    pub fn start(host: &dash_netns::Host, pg: String, password: String) -> Option<LocalWriter> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = host
            .spawn_in(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return Vec::new();
                };
                rt.block_on(async move {
                    let w = Writers::start(&[pg], &password, 1, true);
                    while !flag.load(Ordering::Relaxed) {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    w.finish().await
                })
            })
            .ok()?;
        Some(LocalWriter { stop, handle })
    }

    pub async fn finish(self) -> Vec<Ack> {
        self.stop.store(true, Ordering::Relaxed);
        tokio::task::spawn_blocking(move || self.handle.join().unwrap_or_default())
            .await
            .unwrap_or_default()
    }
}
