//! The supervisor's decisions as a pure function of what the probes saw:
//! dead vs hung vs slow, which replica to promote, when to refuse rather
//! than lose acknowledged writes, and which standbys a commit waits for.

use std::time::Duration;

/// What one probe of one node found.
#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    /// It answered in time.
    Up(Observation),
    /// Connection refused or closed: nothing is listening (dead).
    Refused,
    /// No answer within the probe deadline (hung, or very slow).
    TimedOut,
}

/// A node's answer to a probe.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Observation {
    pub in_recovery: bool,
    /// Primary: flushed WAL. Replica: WAL on disk, received or replayed (what it keeps if promoted;
    /// the receive position alone restarts at a segment boundary when streaming resumes).
    pub lsn: u64,
    /// Names of standbys streaming from this node (primary only).
    pub streaming: Vec<String>,
    /// This node's `synchronous_standby_names`.
    pub sync_names: String,
    /// How long the probe took.
    pub took: Duration,
}

/// How many bad probes in a row mean what.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Refused probes in a row before the primary is declared dead.
    pub dead_after: u32,
    /// Timed-out probes in a row before the primary is declared hung.
    pub hung_after: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            dead_after: 3,
            hung_after: 4,
        }
    }
}

/// The recent history of one node, as the supervisor keeps it.
#[derive(Debug, Clone, Default)]
pub struct NodeState {
    pub name: String,
    pub refused_in_a_row: u32,
    pub timeouts_in_a_row: u32,
    pub last: Option<Observation>,
}

impl NodeState {
    pub fn new(name: &str) -> NodeState {
        NodeState {
            name: name.to_string(),
            ..NodeState::default()
        }
    }

    pub fn record(&mut self, p: Probe) {
        match p {
            Probe::Up(o) => {
                self.refused_in_a_row = 0;
                self.timeouts_in_a_row = 0;
                self.last = Some(o);
            }
            Probe::Refused => {
                self.refused_in_a_row += 1;
                self.timeouts_in_a_row = 0;
            }
            Probe::TimedOut => {
                self.timeouts_in_a_row += 1;
                self.refused_in_a_row = 0;
            }
        }
    }

    /// Answered the latest probe.
    pub fn is_up(&self) -> bool {
        self.refused_in_a_row == 0 && self.timeouts_in_a_row == 0 && self.last.is_some()
    }
}

/// What is wrong with the primary, if anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrimaryHealth {
    Healthy,
    /// Missed some probes, not yet enough to act.
    Suspect,
    Dead,
    Hung,
    /// Answers, but is in recovery: someone else promoted or it was demoted.
    NotPrimary,
}

pub fn primary_health(s: &NodeState, p: &Policy) -> PrimaryHealth {
    if s.refused_in_a_row >= p.dead_after {
        PrimaryHealth::Dead
    } else if s.timeouts_in_a_row >= p.hung_after {
        PrimaryHealth::Hung
    } else if s.refused_in_a_row > 0 || s.timeouts_in_a_row > 0 {
        PrimaryHealth::Suspect
    } else if s.last.as_ref().is_some_and(|o| o.in_recovery) {
        PrimaryHealth::NotPrimary
    } else {
        PrimaryHealth::Healthy
    }
}

/// The outcome of choosing a replica to promote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    Promote { name: String, lsn: u64 },
    Refuse(String),
}

/// Picks the replica to promote: the most advanced by received LSN, among
/// replicas that answered. Refuses when promoting could lose acknowledged
/// writes: a replica that may hold them did not answer (synchronous mode,
/// where an acknowledgement needs only one standby), or the best candidate
/// is behind what the primary acknowledged while running without a standby.
pub fn choose_replica(
    replicas: &[NodeState],
    synchronous: bool,
    async_high_water: Option<u64>,
) -> Choice {
    let silent: Vec<&str> = replicas
        .iter()
        .filter(|r| !r.is_up())
        .map(|r| r.name.as_str())
        .collect();
    let best = replicas
        .iter()
        .filter(|r| r.is_up())
        .filter_map(|r| {
            r.last
                .as_ref()
                .filter(|o| o.in_recovery)
                .map(|o| (r, o.lsn))
        })
        .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.name.cmp(&a.0.name)));
    let Some((r, lsn)) = best else {
        return Choice::Refuse(
            "no replica answered; nothing can be promoted without losing data".into(),
        );
    };
    if synchronous && !silent.is_empty() {
        return Choice::Refuse(format!(
            "replica(s) {} did not answer and may hold acknowledged writes that {} lacks",
            silent.join(", "),
            r.name
        ));
    }
    if let Some(hw) = async_high_water {
        if lsn < hw {
            return Choice::Refuse(format!(
                "{} has WAL up to {} but the primary acknowledged writes up to {} while no standby was attached",
                r.name,
                fmt_lsn(lsn),
                fmt_lsn(hw)
            ));
        }
    }
    Choice::Promote {
        name: r.name.clone(),
        lsn,
    }
}

/// The `synchronous_standby_names` the primary should have: every recorded
/// replica that is streaming now, so a commit waits for one of them; empty
/// (writes continue, exposure tracked) when none is.
pub fn desired_sync(synchronous: bool, replicas: &[String], streaming: &[String]) -> Vec<String> {
    if !synchronous {
        return Vec::new();
    }
    replicas
        .iter()
        .filter(|r| streaming.contains(r))
        .cloned()
        .collect()
}

pub fn parse_lsn(s: &str) -> Option<u64> {
    let (hi, lo) = s.split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

pub fn fmt_lsn(v: u64) -> String {
    format!("{:X}/{:X}", v >> 32, v & 0xffff_ffff)
}

#[cfg(test)]
mod tests;
