//! `dashctl chaos`: builds a private local cluster (nodes, supervisor, API) in a
//! temp dir on loopback, drives writes through the API, injects the fault,
//! and measures each round. Everything is torn down at the end, even on error.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use dash_bench::chaos::{crash, signal_all, ChaosReport, RoundReport, Scenario};
use dash_bench::load::{LoadConfig, Mix, RetryPolicy};
use dash_ha::supervisor::Supervisor;
use dash_ha::{ClusterOptions, LocalCluster, Topology};
use dash_pg::kill_data_dir_processes;
use dash_store::Secret;
use nix::sys::signal::Signal;
use uuid::Uuid;

use super::{serve::init_tracing, EXIT_FAILURE, EXIT_OK};
use crate::cli::ChaosArgs;

/// Kills every node of the private cluster on drop, whatever happened.
struct Teardown {
    dirs: Vec<PathBuf>,
    home: Option<tempfile::TempDir>,
    keep: bool,
}

impl Drop for Teardown {
    fn drop(&mut self) {
        for d in &self.dirs {
            kill_data_dir_processes(d);
        }
        if let Some(h) = self.home.take() {
            if self.keep {
                eprintln!("dashctl chaos: kept {}", h.keep().display());
            }
        }
    }
}

async fn client(topo: &Topology, name: &str, db: &str) -> anyhow::Result<tokio_postgres::Client> {
    topo.connect(name, db, Duration::from_millis(500))
        .await
        .map_err(anyhow::Error::msg)
}

/// Waits until the recorded primary has a streaming replica; returns when.
async fn wait_ha(home: &Path, limit: Duration) -> Option<Instant> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(t) = Topology::load(home) {
            if let Some(p) = t.primary() {
                if let Ok(c) = client(&t, &p.name, "postgres").await {
                    let q = "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'";
                    if let Ok(Ok(row)) =
                        tokio::time::timeout(Duration::from_millis(500), c.query_one(q, &[])).await
                    {
                        if row.get::<_, i64>(0) > 0 {
                            return Some(Instant::now());
                        }
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// Tries a write on the fenced node for `window`; counts the ones it accepted.
async fn fence_probe(topo: &Topology, name: &str, window: Duration) -> usize {
    let deadline = Instant::now() + window;
    let mut accepted = 0;
    while Instant::now() < deadline {
        if let Ok(c) = client(topo, name, "postgres").await {
            let w = c.execute("INSERT INTO dash_chaos_probe DEFAULT VALUES", &[]);
            if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(300), w).await {
                accepted += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    accepted
}

async fn round(
    n: u32,
    args: &ChaosArgs,
    home: &Path,
    base_url: &str,
    token: &str,
) -> anyhow::Result<RoundReport> {
    if wait_ha(home, Duration::from_secs(60)).await.is_none() {
        bail!("round {n}: the cluster did not become highly available within 60 s");
    }
    let topo = Topology::load(home)?;
    let old = topo.primary().context("no primary recorded")?.clone();
    client(&topo, &old.name, "postgres")
        .await?
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS dash_chaos_probe (at timestamptz NOT NULL DEFAULT now())",
        )
        .await?;
    let mut cfg = LoadConfig::new(
        base_url,
        Secret::new(token),
        args.concurrency,
        Mix::CreateAgent,
    );
    cfg.duration = Duration::from_secs(45);
    cfg.retry = RetryPolicy::through_outages();
    cfg.request_timeout = Duration::from_secs(5);
    cfg.seed_agents = 0;
    cfg.task = format!("chaos round {n}");
    let load = dash_bench::load::start(cfg)?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let fault_at = Instant::now();
    let mut held = Vec::new();
    let mut held_sessions = 0;
    match Scenario::from(args.scenario) {
        Scenario::KillPrimary => {
            if crash(&old.data_dir) == 0 {
                bail!("round {n}: no process of {} to kill", old.name);
            }
        }
        Scenario::HangPrimary => {
            if signal_all(&old.data_dir, Signal::SIGSTOP) == 0 {
                bail!("round {n}: no process of {} to freeze", old.name);
            }
        }
        Scenario::RestartPrimary => {
            let cluster = LocalCluster::open(home)?;
            let pg = cluster.pg(&old.name)?;
            tokio::task::spawn_blocking(move || {
                let _ = pg.stop(dash_pg::StopMode::Immediate);
                // Started as it was; if the supervisor fenced it meanwhile, it comes up read-only.
                let _ = pg.start();
            })
            .await?;
        }
        Scenario::ExhaustPool => {
            for _ in 0..200 {
                match client(&topo, &old.name, "dash").await {
                    Ok(c) => {
                        let _ = c.batch_execute("BEGIN; SELECT 1").await;
                        held.push(c);
                    }
                    Err(_) => break,
                }
            }
            held_sessions = held.len();
            tokio::time::sleep(Duration::from_secs(3)).await;
            drop(held);
        }
    }
    // Writes must resume: more acknowledgements than there were requests in
    // flight once the fault was in place, so at least one write sent after it
    // was acknowledged. (Counted after injecting: finding every process takes
    // milliseconds, in which a healthy primary acknowledges dozens of writes.)
    let acked_at_fault = load.progress().acked;
    let resume_deadline = Instant::now() + Duration::from_secs(30);
    while load.progress().acked <= acked_at_fault + args.concurrency as u64 {
        if Instant::now() > resume_deadline {
            load.stop();
            bail!("round {n}: writes did not resume within 30 s of the fault");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    if Scenario::from(args.scenario) == Scenario::HangPrimary {
        // Wake the frozen node: the fence must hold.
        signal_all(&old.data_dir, Signal::SIGCONT);
    }
    let fenced_writes = if matches!(Scenario::from(args.scenario), Scenario::ExhaustPool) {
        0
    } else {
        let now = Topology::load(home)?;
        if now.primary().is_some_and(|p| p.name != old.name) {
            fence_probe(&now, &old.name, Duration::from_secs(1)).await
        } else {
            0
        }
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    load.stop();
    let report = load.join().await?;
    let ha = wait_ha(home, Duration::from_secs(60)).await;
    let topo = Topology::load(home)?;
    let new = topo
        .primary()
        .context("no primary after the fault")?
        .clone();
    let acked: Vec<Uuid> = report.acked_ids().collect();
    let db = client(&topo, &new.name, "dash").await?;
    let found: i64 = db
        .query_one("SELECT count(*) FROM agents WHERE id = ANY($1)", &[&acked])
        .await?
        .get(0);
    let dup_rows = db
        .query(
            "SELECT agent_id FROM events WHERE kind = 'agent.spawned' AND agent_id = ANY($1)
             GROUP BY agent_id HAVING count(*) > 1",
            &[&acked],
        )
        .await?;
    // The outage is the longest silence between consecutive acknowledgements
    // from just before the fault on: a reply to a write committed before the
    // fault can arrive just after it, so "first ack after" alone understates it.
    let window_start = fault_at
        .checked_sub(Duration::from_millis(500))
        .unwrap_or(fault_at);
    let acks: Vec<Instant> = report
        .acks
        .iter()
        .map(|a| a.at)
        .filter(|t| *t >= window_start)
        .collect();
    let gap = acks
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64() * 1000.0)
        .fold(0.0, f64::max);
    Ok(RoundReport {
        round: n,
        old_primary: old.name,
        new_primary: new.name,
        write_gap_ms: gap,
        acked_writes: acked.len(),
        lost: acked.len() - found as usize,
        duplicates: dup_rows.len() + report.duplicate_acks().len(),
        fenced_writes,
        // Holding connections never costs the cluster its standby.
        ha_restored_ms: if Scenario::from(args.scenario) == Scenario::ExhaustPool {
            None
        } else {
            ha.map(|t| (t - fault_at).as_secs_f64() * 1000.0)
        },
        failed_requests: report.summary.requests - report.summary.ok,
        held_sessions,
    })
}

pub async fn run(args: ChaosArgs) -> anyhow::Result<u8> {
    if std::env::var_os("DASH_LOG").is_none() {
        std::env::set_var("DASH_LOG", "warn");
    }
    init_tracing(false);
    if args.rounds == 0 || args.rounds > 1000 {
        return Err(super::UsageError("--rounds must be from 1 to 1000".into()).into());
    }
    let home_dir = tempfile::Builder::new().prefix("dash-chaos-").tempdir()?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(home_dir.path(), std::fs::Permissions::from_mode(0o755))?;
    }
    let home = home_dir.path().to_path_buf();
    let token = Uuid::new_v4().simple().to_string();
    let mut ports = vec![dash_pg::free_port()];
    while ports.len() < 2 {
        let p = dash_pg::free_port();
        if !ports.contains(&p) {
            ports.push(p);
        }
    }
    let opts = ClusterOptions {
        replicas: 1,
        synchronous: !args.asynchronous,
        base_port: ports[0],
        ports: Some(ports),
        api_url: String::new(),
        metrics_url: String::new(),
        api_token: Some(token.clone()),
    };
    eprintln!(
        "dashctl chaos: building a private cluster in {}",
        home.display()
    );
    let cluster = tokio::task::block_in_place(|| {
        LocalCluster::create(&home, &opts, &|m| eprintln!("dashctl chaos: {m}"))
    })?;
    let _teardown = Teardown {
        dirs: cluster
            .topo
            .nodes
            .iter()
            .map(|n| n.data_dir.clone())
            .collect(),
        home: Some(home_dir),
        keep: args.keep,
    };
    let topo = cluster.topo.clone();
    let mut api = dash_api::ApiSettings {
        bind: [127, 0, 0, 1].into(),
        api_port: 0,
        metrics_port: 0,
        tokens: vec![Secret::new(token.clone())],
        database: topo.db_settings(),
        ..dash_api::ApiSettings::default()
    };
    api.database.pool_size = (args.concurrency + 4).max(20);
    let supervisor = Supervisor::new(cluster)?;
    let app = dash_api::App::build(api).await?;
    let base_url = format!("http://127.0.0.1:{}", app.port());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let wait = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let sup = tokio::spawn(supervisor.run(wait(stop_rx.clone())));
    let server = tokio::spawn(app.run_until_stopped(wait(stop_rx.clone())));
    let mut rounds = Vec::new();
    let mut failure = None;
    for n in 1..=args.rounds {
        match round(n, &args, &home, &base_url, &token).await {
            Ok(r) => {
                eprintln!(
                    "dashctl chaos: round {n}/{}: {} -> {}, write gap {:.0} ms, {} acked, {} lost, {} duplicates, {} fenced writes, HA again after {}",
                    args.rounds,
                    r.old_primary,
                    r.new_primary,
                    r.write_gap_ms,
                    r.acked_writes,
                    r.lost,
                    r.duplicates,
                    r.fenced_writes,
                    r.ha_restored_ms.map_or("never".into(), |v| format!("{v:.0} ms"))
                );
                rounds.push(r);
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let _ = stop_tx.send(true);
    let _ = sup.await;
    let _ = server.await;
    let final_cluster = LocalCluster::open(&home)?;
    tokio::task::block_in_place(|| final_cluster.stop_all(&|_| {}));
    let report = ChaosReport::new(Scenario::from(args.scenario), !args.asynchronous, rounds);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    if let Some(e) = failure {
        return Err(e.context("chaos run stopped early"));
    }
    let clean = report.lost == 0 && report.duplicates == 0 && report.fenced_writes == 0;
    Ok(if clean || args.asynchronous {
        EXIT_OK
    } else {
        EXIT_FAILURE
    })
}

fn print_report(r: &ChaosReport) {
    let mode = if r.synchronous {
        "synchronous"
    } else {
        "asynchronous"
    };
    println!(
        "scenario {:?}, {mode} replication, {} round(s)",
        r.scenario,
        r.rounds.len()
    );
    if let Some(g) = &r.write_gap_ms {
        println!(
            "  write gap ms      min {:.0}  median {:.0}  p90 {:.0}  max {:.0}",
            g.min, g.median, g.p90, g.max
        );
    }
    if let Some(h) = &r.ha_restored_ms {
        println!(
            "  HA restored ms    min {:.0}  median {:.0}  p90 {:.0}  max {:.0}",
            h.min, h.median, h.p90, h.max
        );
    }
    println!("  acknowledged      {}", r.acked_writes);
    println!("  lost              {}", r.lost);
    println!("  duplicates        {}", r.duplicates);
    println!("  fenced writes     {}", r.fenced_writes);
}
