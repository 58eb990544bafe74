//! `dashctl db failover` and `dashctl db switchover`: runbook scenario 3 as one
//! checked command. The request goes to the supervisor that holds the
//! cluster (or, when none runs, this process acts as the supervisor once).

use std::io::IsTerminal;
use std::time::Duration;

use dash_ha::control::{self, Outcome, Request, RequestKind};
use dash_ha::supervisor::{Supervisor, SupervisorLock};
use dash_ha::{LocalCluster, Topology};

use super::{dash_home, EXIT_OK};

/// Exit code of a refusal, as for every `dashctl db` guard rail: no healthy
/// replica, too much lag, data would be lost, or no confirmation.
pub const EXIT_REFUSED: u8 = 4;

#[derive(Debug, clap::Args)]
pub struct FailoverArgs {
    /// The replica to promote (default: the most advanced one).
    #[arg(long)]
    pub target: Option<String>,
    /// Refuse when the replica is further behind the primary than this many bytes of WAL.
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    pub max_lag: u64,
    /// Print every step and the check after it, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
    /// Print the outcome as JSON.
    #[arg(long)]
    pub json: bool,
}

fn plan(kind: RequestKind, topo: &Topology, args: &FailoverArgs) -> Vec<String> {
    let primary = topo
        .primary()
        .map_or("(none)".to_string(), |p| p.name.clone());
    let target = args
        .target
        .clone()
        .unwrap_or_else(|| "the most advanced replica by received LSN".into());
    match kind {
        RequestKind::Failover => vec![
            format!("1. check: {target} answers, is in recovery, and no silent replica may hold acknowledged writes it lacks"),
            format!("2. fence {primary}: SIGKILL every process in its data directory, write standby.signal, record it as fenced; check: nothing listens on its port"),
            format!("3. promote {target} (pg_ctl promote); check: it accepts a write"),
            "4. record the new primary in cluster.json and point every other replica at it; check: they stream from it".into(),
            format!("5. rejoin {primary} as a replica with pg_rewind (or a fresh clone); check: it streams and synchronous replication covers it"),
        ],
        RequestKind::Switchover => vec![
            format!("1. check: {target} is healthy and at most {} bytes behind {primary}", args.max_lag),
            format!("2. stop {primary} cleanly (fast shutdown); it can only restart as a standby"),
            format!("3. check: {target} has received the shutdown checkpoint (pg_controldata); otherwise undo and restart {primary} as primary"),
            format!("4. promote {target}; check: it accepts a write; record it and re-point the replicas"),
            format!("5. start {primary} as a replica of {target}; check: it streams"),
        ],
    }
}

pub async fn run(kind: RequestKind, args: FailoverArgs) -> anyhow::Result<u8> {
    let home = dash_home();
    let topo = Topology::load(&home)?;
    let verb = match kind {
        RequestKind::Failover => "failover",
        RequestKind::Switchover => "switchover",
    };
    if args.dry_run {
        println!("dashctl db {verb} --dry-run: nothing will be changed");
        for line in plan(kind, &topo, &args) {
            println!("  {line}");
        }
        return Ok(EXIT_OK);
    }
    if !args.yes {
        if !std::io::stdin().is_terminal() {
            eprintln!("dashctl db {verb}: refusing: it changes which node is the primary; pass --yes to run it without a terminal");
            return Ok(EXIT_REFUSED);
        }
        eprint!("Run a {verb} of the cluster in {}? [y/N] ", home.display());
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            eprintln!("dashctl db {verb}: cancelled");
            return Ok(EXIT_REFUSED);
        }
    }
    let req = Request {
        id: uuid::Uuid::new_v4().simple().to_string(),
        kind,
        target: args.target.clone(),
        max_lag_bytes: args.max_lag,
    };
    let outcome = match SupervisorLock::acquire(&home) {
        Ok(lock) => {
            drop(lock);
            eprintln!("dashctl db {verb}: no supervisor is running; acting as the supervisor once");
            let supervisor = Supervisor::new(LocalCluster::open(&home)?)?;
            supervisor.handle_once(req).await
        }
        Err(_) => {
            eprintln!("dashctl db {verb}: handing the request to the running supervisor");
            control::submit(&home, &req)?;
            let id = req.id.clone();
            let h = home.clone();
            tokio::task::spawn_blocking(move || control::wait(&h, &id, Duration::from_secs(90)))
                .await?
                .ok_or_else(|| anyhow::anyhow!("the supervisor did not answer within 90 s"))?
        }
    };
    print(&outcome, args.json)?;
    Ok(if outcome.ok { EXIT_OK } else { EXIT_REFUSED })
}

fn print(o: &Outcome, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(o)?);
        return Ok(());
    }
    for s in &o.steps {
        println!("  {:>8.1} ms  {}", s.ms, s.what);
    }
    if o.ok {
        println!(
            "done: {} -> {}{}",
            o.old_primary.as_deref().unwrap_or("(none)"),
            o.new_primary.as_deref().unwrap_or("(none)"),
            o.write_gap_ms
                .map_or(String::new(), |g| format!(", writes paused {g:.0} ms"))
        );
    } else {
        println!("refused: {}", o.message);
    }
    Ok(())
}
