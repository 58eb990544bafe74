//! `dashctl chaos <scenario> --hosts`: the same drill on several machines.
//! Database hosts are network namespaces (`dash-netns`), each with an etcd
//! member and `dashctl node`; the writers and the checker run on a client
//! host. Faults include crashes, freezes and partitions (nftables). Every
//! acknowledged write is recorded with the node and timeline that gave it,
//! and checked against the final primary after healing.

mod bed;
mod faults;
mod round;
mod writers;

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

pub use bed::{Bed, BedOptions};
pub use faults::HostScenario;
pub use round::{statuses, wait_ha, NodeStatus};
pub use writers::{Ack, Writers};

use crate::chaos::Spread;

/// What to drill.
#[derive(Debug, Clone)]
pub struct HostsOptions {
    pub scenario: HostScenario,
    /// Fault rounds, 1 to 1000.
    pub rounds: u32,
    /// Client writers.
    pub concurrency: usize,
    pub synchronous: bool,
    /// Database hosts.
    pub members: usize,
    /// Leader lease TTL of every agent.
    pub ttl: Duration,
    /// Soak: how long writes run without a fault.
    pub duration: Duration,
    /// The `dashctl` binary the hosts run (normally this one).
    pub dashctl: std::path::PathBuf,
    pub keep: bool,
}

/// Why a multi-host run could not start or stopped early.
#[derive(Debug, thiserror::Error)]
pub enum HostsError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Io(String),
    #[error("injecting the fault: {0}")]
    Fault(String),
    #[error("round {round}: {reason}")]
    Round { round: u32, reason: String },
    #[error(transparent)]
    Net(#[from] dash_netns::NetError),
    #[error(transparent)]
    Etcd(#[from] dash_dcs::EtcdError),
}

/// One round's figures.
#[derive(Debug, Clone, Serialize, Default)]
pub struct HostRound {
    pub round: u32,
    pub old_primary: String,
    pub new_primary: String,
    /// Longest silence between client acknowledgements around the fault, ms.
    pub write_gap_ms: f64,
    /// From the fault to the last client acknowledgement before that
    /// silence (negative: before the fault), and to the first after it, ms.
    pub gap_from_ms: Option<f64>,
    pub resumed_ms: Option<f64>,
    /// The server that gave the first acknowledgement after the silence.
    pub resumed_on: String,
    /// From the fault until etcd deleted the leader key (its lease expired
    /// and etcd revoked it, or its holder released it), ms.
    pub key_freed_ms: Option<f64>,
    /// From the fault until the next leader held the key, ms.
    pub key_taken_ms: Option<f64>,
    /// Client acknowledgements from the old primary after the fault was in
    /// place (writes in flight that a dying server still committed).
    pub old_acked_after_fault: usize,
    pub acked_writes: usize,
    /// Of those, acknowledged to the writer on the old primary's host.
    pub local_acked: usize,
    /// Acknowledged writes missing on the final primary.
    pub lost: usize,
    /// Writes stored more than once.
    pub duplicates: usize,
    /// Acknowledged by the old primary after the new one was promoted.
    pub superseded_writes: usize,
    /// From the fault until a standby streams from the leader again, ms.
    pub ha_restored_ms: Option<f64>,
    /// Promotions recorded in etcd during the round (1 per failover; any in a soak is spurious).
    pub promotions: usize,
    /// After a failover: from the fault until the old primary streamed as a replica, ms.
    pub old_rejoined_ms: Option<f64>,
}

fn spread(rounds: &[HostRound], field: impl Fn(&HostRound) -> Option<f64>) -> Option<Spread> {
    Spread::of(&rounds.iter().filter_map(field).collect::<Vec<_>>())
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct HostsReport {
    pub scenario: HostScenario,
    pub synchronous: bool,
    pub hosts: usize,
    pub ttl_ms: u64,
    pub rounds: Vec<HostRound>,
    pub write_gap_ms: Option<Spread>,
    /// Where the gap went: fault → leader key freed → taken → writes resumed.
    pub key_freed_ms: Option<Spread>,
    pub key_taken_ms: Option<Spread>,
    pub resumed_ms: Option<Spread>,
    pub ha_restored_ms: Option<Spread>,
    pub old_rejoined_ms: Option<Spread>,
    pub acked_writes: usize,
    pub lost: usize,
    pub duplicates: usize,
    pub superseded_writes: usize,
    pub promotions: usize,
}

impl HostsReport {
    pub fn new(opts: &HostsOptions, rounds: Vec<HostRound>) -> HostsReport {
        let gaps: Vec<f64> = rounds.iter().map(|r| r.write_gap_ms).collect();
        let ha: Vec<f64> = rounds.iter().filter_map(|r| r.ha_restored_ms).collect();
        HostsReport {
            scenario: opts.scenario,
            synchronous: opts.synchronous,
            hosts: opts.members,
            ttl_ms: opts.ttl.as_millis() as u64,
            write_gap_ms: Spread::of(&gaps),
            key_freed_ms: spread(&rounds, |r| r.key_freed_ms),
            key_taken_ms: spread(&rounds, |r| r.key_taken_ms),
            resumed_ms: spread(&rounds, |r| r.resumed_ms),
            ha_restored_ms: Spread::of(&ha),
            old_rejoined_ms: Spread::of(
                &rounds
                    .iter()
                    .filter_map(|r| r.old_rejoined_ms)
                    .collect::<Vec<_>>(),
            ),
            acked_writes: rounds.iter().map(|r| r.acked_writes).sum(),
            lost: rounds.iter().map(|r| r.lost).sum(),
            duplicates: rounds.iter().map(|r| r.duplicates).sum(),
            superseded_writes: rounds.iter().map(|r| r.superseded_writes).sum(),
            promotions: rounds.iter().map(|r| r.promotions).sum(),
            rounds,
        }
    }

    /// Safe: nothing acknowledged was lost, doubled or taken by a superseded primary.
    pub fn clean(&self) -> bool {
        self.lost == 0 && self.duplicates == 0 && self.superseded_writes == 0
    }

    /// The summary as `dashctl chaos --hosts` prints it.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let mode = if self.synchronous {
            "synchronous"
        } else {
            "asynchronous"
        };
        let _ = writeln!(
            out,
            "scenario {:?} on {} hosts, {mode} replication, TTL {} ms, {} round(s)",
            self.scenario,
            self.hosts,
            self.ttl_ms,
            self.rounds.len()
        );
        for (label, spread) in [
            ("write gap ms", &self.write_gap_ms),
            ("key freed ms", &self.key_freed_ms),
            ("key taken ms", &self.key_taken_ms),
            ("writes resumed ms", &self.resumed_ms),
            ("HA restored ms", &self.ha_restored_ms),
            ("old primary back", &self.old_rejoined_ms),
        ] {
            if let Some(s) = spread {
                let _ = writeln!(
                    out,
                    "  {label:<17} min {:.0}  median {:.0}  p90 {:.0}  max {:.0}",
                    s.min, s.median, s.p90, s.max
                );
            }
        }
        let _ = writeln!(out, "  acknowledged      {}", self.acked_writes);
        let _ = writeln!(out, "  lost              {}", self.lost);
        let _ = writeln!(out, "  duplicates        {}", self.duplicates);
        let _ = writeln!(out, "  superseded writes {}", self.superseded_writes);
        let _ = writeln!(out, "  promotions        {}", self.promotions);
        out
    }
}

/// A finished run: the rounds that completed and, when it stopped early, why.
pub struct HostsRun {
    pub report: HostsReport,
    pub stopped_early: Option<HostsError>,
}

/// Runs the drill end to end (blocking: call from a blocking context).
/// The bed is built here; the rounds run on the client host.
pub fn run(
    opts: &HostsOptions,
    progress: Arc<dyn Fn(&str) + Send + Sync>,
) -> Result<HostsRun, HostsError> {
    if opts.rounds == 0 || opts.rounds > 1000 {
        return Err(HostsError::Usage("--rounds must be from 1 to 1000".into()));
    }
    if opts.concurrency == 0 || opts.concurrency > 64 {
        return Err(HostsError::Usage(
            "--concurrency must be from 1 to 64".into(),
        ));
    }
    let bed = Arc::new(Bed::start(
        BedOptions {
            members: opts.members,
            synchronous: opts.synchronous,
            ttl: opts.ttl,
            dashctl: opts.dashctl.clone(),
            keep: opts.keep,
        },
        progress.as_ref(),
    )?);
    let (b, o, p) = (bed.clone(), opts.clone(), progress.clone());
    let outcome = bed.client().run_in(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| HostsError::Io(format!("runtime: {e}")))?;
        Ok::<_, HostsError>(rt.block_on(drive(&b, &o, p.as_ref())))
    })?;
    drop(bed);
    let (rounds, stopped_early) = outcome?;
    Ok(HostsRun {
        report: HostsReport::new(opts, rounds),
        stopped_early,
    })
}

fn ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.0} ms"))
}

async fn drive(
    bed: &Bed,
    opts: &HostsOptions,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> (Vec<HostRound>, Option<HostsError>) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(800))
        .build()
        .expect("an HTTP client");
    progress("waiting for a leader and a synchronous standby");
    let mut rounds = Vec::new();
    for n in 1..=opts.rounds {
        match round::round(n, bed, opts, &http).await {
            Ok(r) => {
                progress(&format!(
                    "round {n}/{}: {} -> {}, write gap {:.0} ms (key freed {}, taken {}, writes resumed {} on {}), {} acked ({} on the old primary's host), {} lost, {} duplicates, {} superseded, {} promotion(s), HA again after {}, old primary back after {}",
                    opts.rounds,
                    r.old_primary,
                    r.new_primary,
                    r.write_gap_ms,
                    ms(r.key_freed_ms),
                    ms(r.key_taken_ms),
                    ms(r.resumed_ms),
                    r.resumed_on,
                    r.acked_writes,
                    r.local_acked,
                    r.lost,
                    r.duplicates,
                    r.superseded_writes,
                    r.promotions,
                    r.ha_restored_ms.map_or("never".into(), |v| format!("{v:.0} ms")),
                    r.old_rejoined_ms.map_or("-".into(), |v| format!("{v:.0} ms"))
                ));
                rounds.push(r);
            }
            Err(e) => return (rounds, Some(e)),
        }
    }
    (rounds, None)
}
