//! Several "hosts" on one machine, each a Linux network namespace, for
//! multi-host failover tests and chaos runs.
//!
//! [`Net::create`] makes a bridge and `n` [`Host`]s. Each host is a network
//! namespace whose `eth0` is one end of a veth pair; the other end sits on the
//! bridge in the root namespace. A host runs programs ([`Host::command`]) and
//! closures ([`Host::run_in`]) inside itself, can be partitioned from its peers
//! with nftables ([`Host::isolate`], [`Host::block`], [`Host::heal`]), frozen
//! ([`Host::freeze`]) and crashed ([`Host::kill_all`]). Dropping the [`Net`]
//! kills every process in it and removes everything it made, also when a test
//! panics.
//!
//! Nothing can leave the machine: addresses come only from the 198.18.0.0/15
//! benchmarking range (RFC 2544), and the root namespace gets no address on
//! the bridge (not even an IPv6 link-local one), so traffic stays between the
//! namespaces.
//!
//! Everything here needs root (`CAP_NET_ADMIN` and `CAP_SYS_ADMIN`) and the
//! `ip` (iproute2) and `nft` (nftables) programs.
//!
//! Names: a Net owns one of the 512 `/24` subnets of 198.18.0.0/15, held by an
//! `flock` on `/run/dash-netns/<subnet>.lock` for its lifetime. Its bridge is
//! `dnet<subnet>-<pid>`, its veths `dnet<subnet>v<i>`, its namespaces
//! `dnet<subnet>-<pid>-<label>-<i>`. The kernel drops the lock when the owning
//! process dies, however it dies, so whoever takes the subnet next (or
//! [`sweep_leftovers`]) knows that objects with that prefix are leftovers.

mod cmd;
mod error;
mod host;
mod names;
mod net;
mod partition;
mod procs;
mod sweep;

pub use error::NetError;
pub use host::Host;
pub use net::Net;
pub use sweep::sweep_leftovers;

/// Whether we run as root, which everything in this crate needs. Tests call
/// it to skip (with a printed reason) rather than fail elsewhere.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}
