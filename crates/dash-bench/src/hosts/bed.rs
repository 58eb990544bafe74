//! The multi-host test bed: network-namespace hosts on one machine, each
//! database host running an etcd member and `dashctl node` (which runs its
//! PostgreSQL), plus one client host. Everything is torn down on drop, even
//! after a failure: processes by PID, then the namespaces.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use dash_dcs::{EtcdConfig, EtcdMember};
use dash_netns::{Host, Net};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::HostsError;

/// PostgreSQL, node API, etcd client and etcd peer ports on every host.
pub const PG_PORT: u16 = 5432;
pub const NODE_PORT: u16 = 8008;
pub const ETCD_CLIENT_PORT: u16 = 2379;
pub const ETCD_PEER_PORT: u16 = 2380;

/// How the bed is built.
#[derive(Debug, Clone)]
pub struct BedOptions {
    /// Database hosts (3: a majority survives losing one).
    pub members: usize,
    pub synchronous: bool,
    /// Leader lease TTL given to every agent.
    pub ttl: Duration,
    /// The `dashctl` binary the hosts run.
    pub dashctl: PathBuf,
    /// Keep the directory (logs, data) after the run.
    pub keep: bool,
}

/// A running bed.
pub struct Bed {
    pub opts: BedOptions,
    net: Net,
    dir: tempfile::TempDir,
    password: String,
    etcd: Mutex<Vec<Option<EtcdMember>>>,
    agents: Mutex<Vec<Option<Child>>>,
}

impl Bed {
    /// Creates the hosts, starts etcd on every database host and then an
    /// agent on each. Returns once the processes run (not once a leader is
    /// elected: see `wait_ha`).
    pub fn start(opts: BedOptions, progress: &dyn Fn(&str)) -> Result<Bed, HostsError> {
        if !dash_netns::is_root() {
            return Err(HostsError::Usage(
                "--hosts needs root: it creates network namespaces (ip netns) and nftables rules"
                    .into(),
            ));
        }
        if !(3..=5).contains(&opts.members) {
            return Err(HostsError::Usage("a bed has 3 to 5 database hosts".into()));
        }
        let _ = dash_netns::sweep_leftovers();
        let net = Net::create("chaos", opts.members + 1)?;
        let dir = tempfile::Builder::new()
            .prefix("dash-hosts-")
            .tempdir()
            .map_err(|e| HostsError::Io(format!("temp dir: {e}")))?;
        open_to_server_user(dir.path())?;
        progress(&format!(
            "{} database hosts and a client host in network namespaces; files in {}",
            opts.members,
            dir.path().display()
        ));
        let password = uuid::Uuid::new_v4().simple().to_string();
        let bed = Bed {
            etcd: Mutex::new((0..opts.members).map(|_| None).collect()),
            agents: Mutex::new((0..opts.members).map(|_| None).collect()),
            opts,
            net,
            dir,
            password,
        };
        for i in 0..bed.opts.members {
            bed.spawn_etcd(i)?;
        }
        for i in 0..bed.opts.members {
            let mut etcd = bed.etcd.lock().expect("etcd list");
            if let Some(m) = etcd[i].as_mut() {
                m.wait_ready(Duration::from_secs(30))?;
            }
        }
        progress("etcd is up on every database host");
        for i in 0..bed.opts.members {
            bed.start_agent(i)?;
        }
        progress("dashctl node runs on every database host");
        Ok(bed)
    }

    /// Database host `i`.
    pub fn host(&self, i: usize) -> &Host {
        self.net.host(i)
    }
    /// The client host (the API's and the writers' machine).
    pub fn client(&self) -> &Host {
        self.net.host(self.opts.members)
    }
    pub fn member_name(i: usize) -> String {
        format!("m{}", i + 1)
    }
    /// The member index of a name.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        (0..self.opts.members).find(|i| Bed::member_name(*i) == name)
    }
    pub fn addr(&self, i: usize) -> Ipv4Addr {
        self.host(i).addr()
    }
    pub fn password(&self) -> &str {
        &self.password
    }
    pub fn etcd_endpoints(&self) -> Vec<String> {
        (0..self.opts.members)
            .map(|i| format!("http://{}:{ETCD_CLIENT_PORT}", self.addr(i)))
            .collect()
    }
    /// Every database host's PostgreSQL, `ip:port`.
    pub fn pg_hosts(&self) -> Vec<String> {
        (0..self.opts.members)
            .map(|i| format!("{}:{PG_PORT}", self.addr(i)))
            .collect()
    }
    pub fn node_api(&self, i: usize) -> String {
        format!("http://{}:{NODE_PORT}", self.addr(i))
    }
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn etcd_config(&self, i: usize) -> EtcdConfig {
        let peers = (0..self.opts.members)
            .map(|j| {
                (
                    format!("e{}", j + 1),
                    SocketAddr::from((self.addr(j), ETCD_PEER_PORT)),
                )
            })
            .collect();
        EtcdConfig {
            name: format!("e{}", i + 1),
            data_dir: self.dir().join(format!("etcd{}", i + 1)),
            client: SocketAddr::from((self.addr(i), ETCD_CLIENT_PORT)),
            peer: SocketAddr::from((self.addr(i), ETCD_PEER_PORT)),
            initial_cluster: peers,
            cluster_token: "dash-hosts".into(),
            heartbeat: Duration::from_millis(100),
            election: Duration::from_millis(1000),
            netns: Some(self.host(i).name().to_string()),
        }
    }

    fn spawn_etcd(&self, i: usize) -> Result<(), HostsError> {
        let member = EtcdMember::spawn(self.etcd_config(i))?;
        self.etcd.lock().expect("etcd list")[i] = Some(member);
        Ok(())
    }

    /// Starts host `i`'s etcd member again (its data is kept) and waits
    /// until it serves.
    pub fn start_etcd(&self, i: usize) -> Result<(), HostsError> {
        self.spawn_etcd(i)?;
        let etcd = self.etcd.lock().expect("etcd list");
        if let Some(m) = etcd[i].as_ref() {
            m.wait_ready(Duration::from_secs(30))?;
        }
        Ok(())
    }

    /// Starts host `i`'s etcd member again without waiting (members that
    /// need each other for a majority are started together).
    pub fn start_etcd_nowait(&self, i: usize) -> Result<(), HostsError> {
        if self.etcd.lock().expect("etcd list")[i].is_none() {
            self.spawn_etcd(i)?;
        }
        Ok(())
    }

    /// SIGKILLs host `i`'s etcd member.
    pub fn kill_etcd(&self, i: usize) {
        if let Some(mut m) = self.etcd.lock().expect("etcd list")[i].take() {
            m.kill();
        }
    }

    /// Starts `dashctl node` on host `i`.
    pub fn start_agent(&self, i: usize) -> Result<(), HostsError> {
        let name = Bed::member_name(i);
        let home = self.dir().join(&name);
        std::fs::create_dir_all(&home).map_err(|e| HostsError::Io(format!("{name}: {e}")))?;
        open_to_server_user(&home)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(home.join("agent.log"))
            .map_err(|e| HostsError::Io(format!("{name} log: {e}")))?;
        let err_log = log
            .try_clone()
            .map_err(|e| HostsError::Io(format!("{name} log: {e}")))?;
        let mut cmd = self.host(i).command(&self.opts.dashctl);
        cmd.arg("node")
            .args(["--name", &name])
            .args(["--etcd", &self.etcd_endpoints().join(",")])
            .arg("--pg-data")
            .arg(home.join("data"))
            .args(["--pg-port", &PG_PORT.to_string()])
            .args(["--advertise", &self.addr(i).to_string()])
            .args(["--node-port", &NODE_PORT.to_string()])
            .args(["--ttl", &format!("{}s", self.opts.ttl.as_secs().max(2))]);
        if !self.opts.synchronous {
            cmd.arg("--async");
        }
        cmd.env("DATABASE_PASSWORD", &self.password)
            .env("DASH_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd
            .spawn()
            .map_err(|e| HostsError::Io(format!("start dashctl node on {name}: {e}")))?;
        self.agents.lock().expect("agent list")[i] = Some(child);
        Ok(())
    }

    /// The PID of host `i`'s agent, if it runs.
    pub fn agent_pid(&self, i: usize) -> Option<i32> {
        self.agents.lock().expect("agent list")[i]
            .as_ref()
            .map(|c| c.id() as i32)
    }

    /// Sends `signal` to host `i`'s agent.
    pub fn signal_agent(&self, i: usize, signal: Signal) -> bool {
        self.agent_pid(i)
            .is_some_and(|pid| kill(Pid::from_raw(pid), signal).is_ok())
    }

    /// SIGKILLs host `i`'s agent and reaps it (its PostgreSQL dies with it).
    pub fn kill_agent(&self, i: usize) {
        if let Some(mut child) = self.agents.lock().expect("agent list")[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Host `i` crashes: every process in it frozen, then killed.
    pub fn crash_host(&self, i: usize) -> Result<(), HostsError> {
        self.host(i).kill_all()?;
        self.kill_agent(i);
        self.kill_etcd(i);
        Ok(())
    }

    /// Host `i` boots again: etcd, then the agent.
    pub fn boot_host(&self, i: usize) -> Result<(), HostsError> {
        if self.etcd.lock().expect("etcd list")[i].is_none() {
            self.start_etcd(i)?;
        }
        if self.agent_pid(i).is_none() {
            self.start_agent(i)?;
        }
        Ok(())
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        for i in 0..self.opts.members {
            if let Some(mut child) = self.agents.lock().map(|mut a| a[i].take()).ok().flatten() {
                let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGCONT);
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        for i in 0..self.opts.members {
            let _ = self.host(i).kill_all();
            if let Some(mut m) = self.etcd.lock().map(|mut e| e[i].take()).ok().flatten() {
                m.kill();
            }
        }
        let _ = self.client().kill_all();
        if self.opts.keep {
            let path = std::mem::replace(&mut self.dir, tempfile::TempDir::new().expect("temp"));
            let _ = path.keep();
        }
    }
}

/// The server user must reach data directories below `dir`.
fn open_to_server_user(dir: &Path) -> Result<(), HostsError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| HostsError::Io(format!("chmod {}: {e}", dir.display())))
}
