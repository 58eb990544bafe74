//! A [`Net`]: a bridge and its hosts, built by [`Net::create`] and torn down
//! on drop.

use crate::cmd::{ip, ip_in};
use crate::host::Host;
use crate::names::{self, SubnetLock, MAX_HOSTS, SUBNETS};
use crate::{is_root, sweep, NetError};

/// A bridge in the root namespace and the hosts plugged into it.
///
/// Dropping it (also while a test panics) kills every process in its hosts,
/// deletes their namespaces, veths and nftables rules and the bridge, and
/// frees its subnet; failures are logged. [`Net::destroy`] does the same and
/// returns the first failure.
///
/// Create and drop it on a thread of the root network namespace, not inside
/// [`Host::run_in`]: the `ip` commands that build and remove the bridge and
/// veths act on the namespace of the thread that runs them.
#[derive(Debug)]
pub struct Net {
    bridge: String,
    hosts: Vec<Host>,
    /// `None` once torn down.
    lock: Option<SubnetLock>,
}

impl Net {
    /// Creates a bridge and `n` hosts (1 to 254). Host `i` is a network
    /// namespace with loopback up and `eth0` (one end of a veth pair whose
    /// other end is on the bridge) at `198.18.<subnet>.<i+1>/24` (or 198.19
    /// for subnets past 255). The subnet is one no live Net on this machine
    /// holds, in this process or another; leftovers of a dead process on it
    /// are removed first. `label` goes into the namespace names, for humans.
    ///
    /// On failure, whatever was made is removed again.
    #[tracing::instrument(skip_all, fields(label = %label, n = n), err)]
    pub fn create(label: &str, n: usize) -> Result<Net, NetError> {
        if !is_root() {
            return Err(NetError::NotRoot(nix::unistd::geteuid().as_raw()));
        }
        if n == 0 || n > MAX_HOSTS {
            return Err(NetError::Invalid(format!(
                "a Net has 1 to {MAX_HOSTS} hosts, not {n}"
            )));
        }
        let pid = std::process::id();
        let lock = claim_subnet(pid)?;
        let subnet = lock.subnet();
        let mut net = Net {
            bridge: names::bridge_name(subnet, pid),
            hosts: Vec::with_capacity(n),
            lock: Some(lock),
        };
        // From here on an early return drops `net`, which removes everything
        // with this subnet's prefix: all of it is ours while we hold the lock.
        let bridge = net.bridge.clone();
        ip(&["link", "add", "name", &bridge, "type", "bridge"])?;
        // No IPv6 link-local address either: the root namespace stays off the net.
        ip(&["link", "set", "dev", &bridge, "addrgenmode", "none"])?;
        ip(&["link", "set", "dev", &bridge, "up"])?;
        for i in 0..n {
            let host = Host::new(
                names::ns_name(subnet, pid, label, i),
                names::veth_name(subnet, i),
                names::host_addr(subnet, i),
            );
            net.hosts.push(host.clone());
            plug_in(&host, &bridge)?;
        }
        tracing::info!(bridge, subnet, hosts = n, "created network");
        Ok(net)
    }

    /// The hosts, in the order of their addresses.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// Host `i` (address `.i+1`). Panics if there is no such host.
    pub fn host(&self, i: usize) -> &Host {
        &self.hosts[i]
    }

    /// The bridge's name (in the root namespace).
    pub fn bridge(&self) -> &str {
        &self.bridge
    }

    /// Tears the Net down like drop does, but returns the first failure (the
    /// rest are logged).
    pub fn destroy(mut self) -> Result<(), NetError> {
        self.teardown()
    }

    fn teardown(&mut self) -> Result<(), NetError> {
        let Some(lock) = self.lock.take() else {
            return Ok(());
        };
        let result = sweep::list_subnet(lock.subnet()).and_then(|objects| sweep::remove(&objects));
        // Released even after a failure: whoever takes the subnet next
        // removes what is left.
        drop(lock);
        result
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            tracing::error!(bridge = %self.bridge, error = %e, "network teardown left something behind");
        }
    }
}

/// Takes a subnet no live Net holds, starting from one picked by our pid so
/// that processes starting together rarely try the same ones, and removes
/// any leftovers on it.
fn claim_subnet(pid: u32) -> Result<SubnetLock, NetError> {
    let start = (pid % u32::from(SUBNETS)) as u16;
    for k in 0..SUBNETS {
        let subnet = (start + k) % SUBNETS;
        let Some(lock) = names::try_lock(subnet)? else {
            continue;
        };
        let leftovers = sweep::list_subnet(subnet)?;
        if !leftovers.is_empty() {
            tracing::info!(subnet, ?leftovers, "removing leftovers of a dead process");
            sweep::remove(&leftovers)?;
        }
        return Ok(lock);
    }
    Err(NetError::NoFreeSubnet)
}

/// Makes `host`'s namespace and veth pair and plugs it into `bridge`.
fn plug_in(host: &Host, bridge: &str) -> Result<(), NetError> {
    let (ns, veth) = (host.name(), host.veth());
    ip(&["netns", "add", ns])?;
    ip(&[
        "link", "add", "name", veth, "type", "veth", "peer", "name", "eth0", "netns", ns,
    ])?;
    ip(&["link", "set", "dev", veth, "addrgenmode", "none"])?;
    ip(&["link", "set", "dev", veth, "master", bridge])?;
    ip(&["link", "set", "dev", veth, "up"])?;
    ip_in(ns, &["link", "set", "dev", "lo", "up"])?;
    // Only the address we give: no IPv6 link-local chatter on the bridge.
    ip_in(ns, &["link", "set", "dev", "eth0", "addrgenmode", "none"])?;
    let addr = format!("{}/24", host.addr());
    ip_in(ns, &["addr", "add", &addr, "dev", "eth0"])?;
    ip_in(ns, &["link", "set", "dev", "eth0", "up"])?;
    Ok(())
}
