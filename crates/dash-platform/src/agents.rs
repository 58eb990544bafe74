//! One `dashctl node` agent per local node, as child processes of the
//! platform: each in its own process group (a Ctrl-C aimed at `dashctl up`
//! reaches only `dashctl up`, which stops them in order), bound to the
//! platform's parent thread by a parent-death signal (if the platform dies,
//! they die, and their PostgreSQL with them), output appended to
//! `<node>.agent.log` beside the data directory, signalled only by PID.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dash_pg::ParentThread;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::topology::{NodeInfo, Topology};
use crate::PlatformError;

/// How long a stopping agent may take (a leader's clean shutdown) before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Environment the agents must not inherit from whoever runs the platform:
/// the platform passes their settings as flags, and these would add to them
/// (a Kubernetes pod name makes an agent patch labels; `DASH_ASYNC` flips
/// the replication mode the record says).
const NOT_INHERITED: &[&str] = &["POD_NAME", "POD_NAMESPACE", "DASH_ASYNC", "DATABASE_URL"];

/// Where agent `node` writes its log.
pub fn log_path(node: &NodeInfo) -> PathBuf {
    let mut name = node.data_dir.file_name().unwrap_or_default().to_owned();
    name.push(".agent.log");
    node.data_dir.with_file_name(name)
}

/// The running agents, in the record's node order.
pub struct Agents {
    parent: ParentThread,
    dashctl: PathBuf,
    /// The pgBackRest repository every agent archives into, if any.
    backrest: Option<dash_backrest::Repo>,
    children: Vec<(String, Option<Child>)>,
}

impl Agents {
    /// Starts one agent per node of `topo`, running `dashctl` (this binary, or
    /// the one a test built), from `parent`: they die when it ends. With
    /// `backrest`, every agent archives its WAL into that repository.
    pub async fn start(
        parent: ParentThread,
        dashctl: &Path,
        topo: &Topology,
        backrest: Option<dash_backrest::Repo>,
    ) -> Result<Agents, PlatformError> {
        let mut agents = Agents {
            parent,
            dashctl: dashctl.to_path_buf(),
            backrest,
            children: Vec::new(),
        };
        for n in &topo.nodes {
            agents.add(topo, n).await?;
        }
        Ok(agents)
    }

    /// Whether an agent of node `name` was started.
    pub fn runs(&self, name: &str) -> bool {
        self.children.iter().any(|(n, _)| n == name)
    }

    /// Starts the agent of node `n` of `topo`.
    pub async fn add(&mut self, topo: &Topology, n: &NodeInfo) -> Result<(), PlatformError> {
        let cmd = command(&self.dashctl, topo, n, self.backrest.as_ref())?;
        let child = self
            .parent
            .run(move || {
                let mut cmd = cmd;
                cmd.spawn()
            })
            .await
            .map_err(|e| {
                PlatformError::io_owned(format!("run {} node", self.dashctl.display()), e)
            })?;
        self.children.push((n.name.clone(), Some(child)));
        Ok(())
    }

    /// Agents that have exited, with how (an agent exits only on a bad
    /// configuration or a failure it cannot recover from).
    pub fn exited(&mut self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (name, child) in &mut self.children {
            if let Some(c) = child {
                if let Ok(Some(status)) = c.try_wait() {
                    out.push((name.clone(), status.to_string()));
                    *child = None;
                }
            }
        }
        out
    }

    /// Stops the agents named in `order` first, one after another, then the
    /// rest: SIGTERM, then SIGKILL after [`STOP_TIMEOUT`]. An agent stops its
    /// own PostgreSQL (a leader cleanly, handing the key over).
    pub fn stop(&mut self, order: &[String], progress: &dyn Fn(&str)) {
        let rest: Vec<String> = self.children.iter().map(|(n, _)| n.clone()).collect();
        for name in order.iter().chain(&rest) {
            // A name met again finds its slot already empty.
            let slot = self.children.iter_mut().find(|(n, _)| n == name);
            if let Some(child) = slot.and_then(|(_, c)| c.take()) {
                progress(&format!("stopping the agent of {name}"));
                stop_child(child, name, progress);
            }
        }
    }
}

impl Drop for Agents {
    fn drop(&mut self) {
        // Whatever happened: no agent outlives the platform.
        for (_, slot) in &mut self.children {
            if let Some(mut c) = slot.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

fn stop_child(mut child: Child, name: &str, progress: &dyn Fn(&str)) {
    // Not reaped until we wait, so the PID is still this child's.
    if let Ok(None) = child.try_wait() {
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => return,
            Ok(None) if Instant::now() > deadline => {
                progress(&format!(
                    "the agent of {name} did not stop within {STOP_TIMEOUT:?}; killing it"
                ));
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// `setpriv --pdeathsig KILL -- dashctl node ...` for node `n`.
fn command(
    dashctl: &Path,
    topo: &Topology,
    n: &NodeInfo,
    backrest: Option<&dash_backrest::Repo>,
) -> Result<Command, PlatformError> {
    let log_file = log_path(n);
    let log = std::fs::File::options()
        .create(true)
        .append(true)
        .open(&log_file)
        .map_err(|e| PlatformError::io_owned(format!("open {}", log_file.display()), e))?;
    let log_err = log
        .try_clone()
        .map_err(|e| PlatformError::io_owned(format!("open {}", log_file.display()), e))?;
    let mut cmd = Command::new("setpriv");
    cmd.args(["--pdeathsig", "KILL", "--"]).arg(dashctl);
    cmd.args(["node", "--name", &n.name])
        .args(["--cluster", &topo.cluster])
        .args(["--etcd", &topo.etcd_endpoints().join(",")])
        .arg("--pg-data")
        .arg(&n.data_dir)
        .args(["--pg-port", &n.port.to_string()])
        .args(["--pg-listen", &n.host, "--advertise", &n.host])
        .args([
            "--node-bind",
            &n.host,
            "--node-port",
            &n.node_port.to_string(),
        ])
        .args(["--pg-user", &topo.user, "--database", &topo.dbname]);
    if !topo.synchronous {
        cmd.arg("--async");
    }
    if let Some(repo) = backrest {
        cmd.arg("--pgbackrest-config").arg(&repo.config);
        cmd.args(["--pgbackrest-stanza", &repo.stanza]);
    }
    for var in NOT_INHERITED {
        cmd.env_remove(var);
    }
    cmd.env("DATABASE_PASSWORD", topo.password.expose())
        .env("DASH_NODE_TOKEN", topo.node_token())
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .process_group(0);
    Ok(cmd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_command_carries_the_record_and_never_inherits_a_pod_name() {
        let dir = tempfile::tempdir().unwrap();
        let mut topo = crate::topology::tests::sample();
        topo.synchronous = false;
        for n in &mut topo.nodes {
            n.data_dir = dir.path().join(&n.name);
        }
        let cmd = command(Path::new("/bin/dashctl"), &topo, &topo.nodes[1], None).unwrap();
        let args: Vec<String> = (cmd.get_args())
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let joined = args.join(" ");
        assert_eq!(cmd.get_program(), "setpriv");
        assert!(joined.starts_with("--pdeathsig KILL -- /bin/dashctl node --name node1"));
        for want in [
            "--etcd http://127.0.0.1:2379",
            "--pg-port 5501",
            "--node-port 8009",
            "--async",
        ] {
            assert!(joined.contains(want), "{want} in {joined}");
        }
        assert!(!joined.contains("pw"), "the password is not an argument");
        let envs: Vec<_> = cmd.get_envs().collect();
        assert!(envs.contains(&("POD_NAME".as_ref(), None)));
        assert_eq!(log_path(&topo.nodes[1]), dir.path().join("node1.agent.log"));
    }
}
