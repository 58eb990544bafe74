//! `dashctl db add-replica`: the runbook's "Consider enabling HA" step, on a
//! running local platform, online. The node is recorded in `cluster.json`;
//! the running `dashctl up` follows its record and starts the node's agent,
//! which clones the leader (`pg_basebackup`, from a leader that keeps
//! serving writes) and streams from it; the API's pool tries the node too.
//! The leader's synchronous standby set is left alone (adding a node never
//! makes a write wait), so once caught up the node is the standby the
//! leader records next if the present one is lost: a failover candidate.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use dash_node::Status;
use dash_platform::{ha, NewNode, NodeInfo, PlatformError, Topology, TopologyError};
use serde::Serialize;

use crate::output::{bytes, duration, Progress};
use crate::{exit, RunbookError};

/// How long the running platform may take to start the recorded node's agent.
const AGENT_START: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(250);

#[derive(Debug, Clone)]
pub struct AddReplicaOptions {
    /// `$DASH_HOME`: the running platform's directory.
    pub home: PathBuf,
    pub node: NewNode,
    /// How long to wait for the node to stream and catch up.
    pub wait: Duration,
    pub dry_run: bool,
}

#[derive(Debug, Serialize)]
pub struct AddReplicaReport {
    pub name: String,
    pub postgres: String,
    pub node_api: String,
    pub data_dir: PathBuf,
    pub leader: String,
    pub dry_run: bool,
    /// `--dry-run`: what would be done.
    pub steps: Vec<String>,
    pub streaming: bool,
    pub caught_up: bool,
    pub lag_bytes: Option<u64>,
    /// The leader's recorded synchronous standbys when done.
    pub sync_standbys: Vec<String>,
    /// From recording the node until it streams (agent start, clone, start).
    pub to_streaming_ms: Option<u64>,
    pub total_ms: u64,
    /// Why it is not done, when it is not.
    pub problem: Option<String>,
}

impl AddReplicaReport {
    pub fn exit_code(&self) -> u8 {
        match self.dry_run || self.caught_up {
            true => exit::OK,
            false => exit::CHECK_FAILED,
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let place = format!(
            "  PostgreSQL {}   node API {}   data {}\n",
            self.postgres,
            self.node_api,
            self.data_dir.display()
        );
        if self.dry_run {
            out.push_str(&format!("would add {} (nothing changed):\n", self.name));
            out.push_str(&place);
            for s in &self.steps {
                out.push_str(&format!("  {s}\n"));
            }
            return out;
        }
        match &self.problem {
            None => out.push_str(&format!(
                "ADDED: {} streams from {} and has caught up (lag {})\n",
                self.name,
                self.leader,
                bytes(self.lag_bytes.unwrap_or(0))
            )),
            Some(p) => out.push_str(&format!("NOT DONE: {} — {p}\n", self.name)),
        }
        out.push_str(&place);
        let streaming = self
            .to_streaming_ms
            .map_or("-".into(), |ms| duration(Duration::from_millis(ms)));
        out.push_str(&format!(
            "  took {} (streaming after {streaming})\n",
            duration(Duration::from_millis(self.total_ms))
        ));
        let sync = &self.sync_standbys;
        let candidate = if sync.contains(&self.name) {
            format!(
                "{} is the synchronous standby: the failover target",
                self.name
            )
        } else if sync.is_empty() {
            format!(
                "no synchronous standby is recorded: {} is the next one the leader records",
                self.name
            )
        } else {
            format!(
                "synchronous standby: {}; {} takes its place (becoming the failover target) if it is lost",
                sync.join(", "),
                self.name
            )
        };
        if self.problem.is_none() {
            out.push_str(&format!("  {candidate}\n"));
            out.push_str(
                "  the API's pool tries this node too (dashctl up follows cluster.json)\n",
            );
        }
        out
    }
}

fn report(node: &NodeInfo, leader: &str, dry_run: bool) -> AddReplicaReport {
    AddReplicaReport {
        name: node.name.clone(),
        postgres: node.host_port().to_string(),
        node_api: node.node_url(),
        data_dir: node.data_dir.clone(),
        leader: leader.to_string(),
        dry_run,
        steps: Vec::new(),
        streaming: false,
        caught_up: false,
        lag_bytes: None,
        sync_standbys: Vec::new(),
        to_streaming_ms: None,
        total_ms: 0,
        problem: None,
    }
}

/// The leader's status: the node that holds the key as a writable primary.
async fn leader(topo: &Topology) -> Option<(NodeInfo, Status)> {
    let statuses = ha::statuses(topo).await;
    (topo.nodes.iter().cloned())
        .zip(statuses)
        .find_map(|(n, s)| {
            s.filter(|s| s.role == "primary" && s.holds_key)
                .map(|s| (n, s))
        })
}

/// A name, port or directory the caller chose is a usage error.
fn usage(e: PlatformError) -> RunbookError {
    match e {
        PlatformError::Invalid(m) => RunbookError::Usage(m),
        e => RunbookError::Invalid(e.to_string()),
    }
}

/// Adds a streaming replica to the platform running from `opts.home`.
pub async fn add_replica(opts: &AddReplicaOptions) -> Result<AddReplicaReport, RunbookError> {
    let started = Instant::now();
    let topo = Topology::load(&opts.home).map_err(|e| match e {
        TopologyError::Missing(_) => RunbookError::Usage(e.to_string()),
        e => e.into(),
    })?;
    let Some((leader_node, _)) = leader(&topo).await else {
        return Err(RunbookError::Refused(format!(
            "no node of {} answers as the key-holding primary: add-replica adds to a running platform, \
             so start it with `dashctl up` (same DASH_HOME) first; nothing was recorded",
            Topology::path(&opts.home).display()
        )));
    };
    let lead = leader_node.name.clone();
    let planned = topo.plan_node(&opts.home, &opts.node).map_err(usage)?;
    if opts.dry_run {
        let mut r = report(&planned, &lead, true);
        let n = &planned.name;
        r.steps = vec![
            format!("1. check: {lead} holds the leader key and answers as primary (checked now: ok); the name, ports and data directory are free (checked now: ok)"),
            format!("2. record {n} in {}", Topology::path(&opts.home).display()),
            format!("3. the running `dashctl up` starts {n}'s agent within a second, and its API's pool tries {n} too"),
            format!("4. {n}'s agent clones {lead} (pg_basebackup; {lead} keeps serving writes, its synchronous standby set is unchanged) and starts streaming"),
            format!("5. check: {n} streams and has replayed everything {lead} had written when it started streaming, within {}", duration(opts.wait)),
        ];
        return Ok(r);
    }
    let node = Topology::add_node(&opts.home, &opts.node).map_err(usage)?;
    eprintln!(
        "recorded {} in {} (PostgreSQL {}, node API {})",
        node.name,
        Topology::path(&opts.home).display(),
        node.host_port(),
        node.node_url()
    );
    let mut r = report(&node, &lead, false);
    let deadline = started + opts.wait;
    let outcome = follow(
        &node,
        &topo,
        deadline.min(started + AGENT_START),
        deadline,
        &mut r,
    )
    .await;
    r.problem = outcome.err();
    if let Some((_, st)) = leader(&topo).await {
        r.leader = st.name;
        r.sync_standbys = st.sync_standbys;
    }
    r.total_ms = started.elapsed().as_millis() as u64;
    Ok(r)
}

/// Watches the new node: its agent starts, it streams, it catches up.
async fn follow(
    node: &NodeInfo,
    topo: &Topology,
    agent_by: Instant,
    deadline: Instant,
    r: &mut AddReplicaReport,
) -> Result<(), String> {
    let recorded_at = Instant::now();
    let p = Progress::start(format!(
        "waiting for `dashctl up` to start {}'s agent",
        node.name
    ));
    let mut st = loop {
        if let Some(st) = ha::status(node).await {
            p.finish("running");
            break st;
        }
        if Instant::now() >= agent_by {
            p.finish("not started");
            return Err(format!(
                "no agent answers on {} within {}: is `dashctl up` running for this DASH_HOME (a dashctl \
                 that follows cluster.json)? {} stays recorded; the next `dashctl up` starts it",
                node.node_url(),
                duration(AGENT_START),
                node.name
            ));
        }
        tokio::time::sleep(POLL).await;
    };
    let p = Progress::start(format!(
        "{} clones {} (pg_basebackup) and starts streaming",
        node.name, r.leader
    ));
    while !(st.role == "replica" && st.streaming) {
        if Instant::now() >= deadline {
            p.finish("not streaming");
            return Err(format!(
                "not streaming within --wait (role {}, last action: {}); its agent keeps trying, see its log",
                st.role, st.last_action
            ));
        }
        p.update(&format!("{}: {}", st.role, st.last_action));
        tokio::time::sleep(POLL).await;
        st = ha::status(node).await.unwrap_or(st);
    }
    r.streaming = true;
    r.to_streaming_ms = Some(recorded_at.elapsed().as_millis() as u64);
    p.finish("streaming");
    // Caught up: replayed what the leader had written when it began streaming.
    let target = leader(topo)
        .await
        .and_then(|(_, s)| s.lsn)
        .and_then(|l| dash_pg::parse_lsn(&l));
    let p = Progress::start(format!("{} catches up with {}", node.name, r.leader));
    loop {
        let at = st.lsn.as_deref().and_then(dash_pg::parse_lsn);
        r.lag_bytes = st.lag_bytes;
        let done = match (target, at) {
            (Some(t), Some(a)) => a >= t,
            _ => st.lag_bytes == Some(0),
        };
        if done && st.streaming {
            r.caught_up = true;
            p.finish(&format!("lag {}", bytes(st.lag_bytes.unwrap_or(0))));
            return Ok(());
        }
        if Instant::now() >= deadline {
            p.finish("behind");
            return Err(format!(
                "streaming but not caught up within --wait (lag {})",
                crate::output::or_dash(st.lag_bytes.map(bytes))
            ));
        }
        p.update(&format!(
            "lag {}",
            crate::output::or_dash(st.lag_bytes.map(bytes))
        ));
        tokio::time::sleep(POLL).await;
        st = ha::status(node).await.unwrap_or(st);
    }
}
