//! The faults of `dashctl chaos --hosts`, each with its undo (the host
//! boots again, the partition heals, the agent restarts).

use std::time::Duration;

use nix::sys::signal::Signal;
use serde::Serialize;

use super::bed::Bed;
use super::HostsError;

/// What a round does to the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostScenario {
    /// The primary's host crashes: every process frozen, then killed; it boots again later.
    HostCrash,
    /// Only the primary's PostgreSQL crashes; its agent lives (the fast path).
    PgCrash,
    /// Only the primary's agent crashes (its PostgreSQL dies with it); restarted later.
    AgentCrash,
    /// The primary's agent freezes (SIGSTOP) for two TTLs, then continues and must fence.
    AgentFreeze,
    /// The primary's host is cut off from every other host; a writer on it keeps trying.
    Partition,
    /// The primary's host is cut off from etcd only (ports 2379/2380 of the other hosts).
    EtcdCut,
    /// The etcd member on the primary's host dies: no failover, no write gap.
    EtcdMemberLost,
    /// Two etcd members die: no majority, so the primary fences until etcd is back.
    EtcdQuorumLost,
    /// The synchronous standby's host crashes: writes go on (no stall over 1 s).
    ReplicaLost,
    /// Every replica's agent (and PostgreSQL) is lost, then the primary's PostgreSQL crashes: it is restarted in place.
    ReplicaThenPgCrash,
    /// No fault: writes for `--duration`; any failover is a spurious one.
    Soak,
}

impl HostScenario {
    /// A writer on the old primary's host (the classic split brain).
    pub fn has_local_writer(self) -> bool {
        matches!(
            self,
            HostScenario::Partition | HostScenario::EtcdCut | HostScenario::AgentFreeze
        )
    }
    /// The leader is expected to change.
    pub fn fails_over(self) -> bool {
        !matches!(
            self,
            HostScenario::EtcdMemberLost
                | HostScenario::EtcdQuorumLost
                | HostScenario::ReplicaLost
                | HostScenario::ReplicaThenPgCrash
                | HostScenario::Soak
        )
    }
}

/// What to undo after the fault.
pub enum Undo {
    Boot(usize),
    StartAgent(usize),
    StartAgents(Vec<usize>),
    Thaw(usize),
    Heal(usize),
    StartEtcd(Vec<usize>),
    Nothing,
}

/// Injects `scenario` with `p` the primary's index and `s` a standby's.
pub async fn inject(
    bed: &Bed,
    scenario: HostScenario,
    p: usize,
    s: usize,
) -> Result<Undo, HostsError> {
    let others: Vec<usize> = (0..bed.opts.members).filter(|i| *i != p).collect();
    Ok(match scenario {
        HostScenario::HostCrash => {
            bed.crash_host(p)?;
            Undo::Boot(p)
        }
        HostScenario::PgCrash => {
            let dir = bed.dir().join(Bed::member_name(p)).join("data");
            if dash_pg::data_dir_pids(&dir).is_empty() {
                return Err(HostsError::Fault(
                    "no PostgreSQL process on the primary".into(),
                ));
            }
            crate::chaos::crash(&dir);
            Undo::Nothing
        }
        HostScenario::AgentCrash => {
            bed.kill_agent(p);
            Undo::StartAgent(p)
        }
        HostScenario::AgentFreeze => {
            if !bed.signal_agent(p, Signal::SIGSTOP) {
                return Err(HostsError::Fault("no agent to freeze".into()));
            }
            Undo::Thaw(p)
        }
        HostScenario::Partition => {
            bed.host(p).isolate()?;
            Undo::Heal(p)
        }
        HostScenario::EtcdCut => {
            for j in &others {
                bed.host(p).block(bed.addr(*j), Some(&[2379, 2380]))?;
            }
            Undo::Heal(p)
        }
        HostScenario::EtcdMemberLost => {
            bed.kill_etcd(p);
            Undo::StartEtcd(vec![p])
        }
        HostScenario::EtcdQuorumLost => {
            let lost: Vec<usize> = others.iter().copied().take(2).collect();
            for i in &lost {
                bed.kill_etcd(*i);
            }
            Undo::StartEtcd(lost)
        }
        HostScenario::ReplicaLost => {
            bed.crash_host(s)?;
            Undo::Boot(s)
        }
        HostScenario::ReplicaThenPgCrash => {
            // A server that crashed within 5 s of its last start is restarted
            // with a backoff (a crash loop); rounds must not look like one.
            tokio::time::sleep(Duration::from_secs(5)).await;
            for i in &others {
                bed.kill_agent(*i);
            }
            // The primary notices and records asynchronous mode first.
            tokio::time::sleep(Duration::from_secs(2)).await;
            let dir = bed.dir().join(Bed::member_name(p)).join("data");
            crate::chaos::crash(&dir);
            Undo::StartAgents(others)
        }
        HostScenario::Soak => Undo::Nothing,
    })
}

/// Undoes a fault.
pub fn undo(bed: &Bed, undo: Undo) -> Result<(), HostsError> {
    match undo {
        Undo::Boot(i) => bed.boot_host(i),
        Undo::StartAgent(i) => bed.start_agent(i),
        Undo::StartAgents(list) => list.into_iter().try_for_each(|i| bed.start_agent(i)),
        Undo::Thaw(i) => {
            bed.signal_agent(i, Signal::SIGCONT);
            Ok(())
        }
        Undo::Heal(i) => Ok(bed.host(i).heal()?),
        Undo::StartEtcd(list) => {
            // Started together: a lone member cannot become ready without a majority.
            list.into_iter().try_for_each(|i| bed.start_etcd_nowait(i))
        }
        Undo::Nothing => Ok(()),
    }
}
