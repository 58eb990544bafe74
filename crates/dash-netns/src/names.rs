//! Names and addresses of a Net's objects, and the per-subnet lock that makes
//! them unique among live Nets on the machine.
//!
//! A Net owns subnet `s` (0..512, one `/24` of 198.18.0.0/15) while it holds
//! an exclusive `flock` on `/run/dash-netns/<s>.lock`. Every object it makes
//! starts with `dnet<s>`, so whoever holds the lock owns every object with
//! that prefix: anything found there is a leftover of a dead process (the
//! kernel drops a dead process's locks). The pid in bridge and namespace
//! names says, to a human reading `ip link`, which process made them.

use std::fs::File;
use std::net::Ipv4Addr;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::NetError;

/// The start of every name this crate gives a namespace or an interface.
const PREFIX: &str = "dnet";
/// Number of `/24` subnets in 198.18.0.0/15.
pub(crate) const SUBNETS: u16 = 512;
/// Hosts per Net: addresses `.1` to `.254` of its `/24`.
pub(crate) const MAX_HOSTS: usize = 254;
/// Where iproute2 keeps named network namespaces.
pub(crate) const NETNS_DIR: &str = "/var/run/netns";
/// Where the per-subnet lock files live.
const LOCK_DIR: &str = "/run/dash-netns";

/// The bridge of the Net on `subnet` made by `pid` (at most 15 characters).
pub(crate) fn bridge_name(subnet: u16, pid: u32) -> String {
    format!("{PREFIX}{subnet}-{pid}")
}

/// The root-namespace end of host `i`'s veth pair (its other end is `eth0`
/// inside the host).
pub(crate) fn veth_name(subnet: u16, i: usize) -> String {
    format!("{PREFIX}{subnet}v{i}")
}

/// The network namespace of host `i`.
pub(crate) fn ns_name(subnet: u16, pid: u32, label: &str, i: usize) -> String {
    format!("{PREFIX}{subnet}-{pid}-{}-{i}", clean_label(label))
}

/// The file that names namespace `ns` (what `setns` opens).
pub(crate) fn ns_path(ns: &str) -> String {
    format!("{NETNS_DIR}/{ns}")
}

/// Host `i`'s address: `.i+1` in the subnet's `/24` of 198.18.0.0/15.
pub(crate) fn host_addr(subnet: u16, i: usize) -> Ipv4Addr {
    debug_assert!(subnet < SUBNETS && i < MAX_HOSTS);
    let [hi, lo] = subnet.to_be_bytes();
    Ipv4Addr::new(198, 18 + hi, lo, i as u8 + 1)
}

/// Whether an object name is a bridge (`dnet<s>-...`), a veth (`dnet<s>v...`)
/// or neither (`None`), and its subnet.
pub(crate) fn parse(name: &str) -> Option<(u16, Kind)> {
    let rest = name.strip_prefix(PREFIX)?;
    let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    if digits == 0 || digits > 3 {
        return None;
    }
    let subnet: u16 = rest[..digits].parse().ok()?;
    let kind = match rest[digits..].chars().next()? {
        '-' => Kind::Dashed,
        'v' => Kind::Veth,
        _ => return None,
    };
    (subnet < SUBNETS).then_some((subnet, kind))
}

/// What a parsed name is: a veth, or (for links a bridge, and for
/// namespaces a host) a name that carries the pid after a dash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `dnet<s>-<pid>...`: a bridge or a namespace.
    Dashed,
    /// `dnet<s>v<i>`: the root end of a veth pair.
    Veth,
}

/// A label fit for a namespace name: ASCII letters, digits, `-` and `_`,
/// at most 24 characters, `net` when nothing is left.
fn clean_label(label: &str) -> String {
    let clean: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(24)
        .collect();
    if clean.is_empty() {
        "net".to_string()
    } else {
        clean
    }
}

/// An exclusive hold on one subnet; dropping it releases the subnet.
#[derive(Debug)]
pub(crate) struct SubnetLock {
    subnet: u16,
    _lock: Flock<File>,
}

impl SubnetLock {
    pub(crate) fn subnet(&self) -> u16 {
        self.subnet
    }
}

/// Takes subnet `subnet` if no live process holds it (`Ok(None)` if one does).
pub(crate) fn try_lock(subnet: u16) -> Result<Option<SubnetLock>, NetError> {
    std::fs::create_dir_all(LOCK_DIR).map_err(|e| NetError::io(format!("create {LOCK_DIR}"), e))?;
    let path = format!("{LOCK_DIR}/{subnet}.lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| NetError::io(format!("open {path}"), e))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(Some(SubnetLock {
            subnet,
            _lock: lock,
        })),
        Err((_, Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, e)) => Err(NetError::io(format!("flock {path}"), e.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Linux's limit on interface names (IFNAMSIZ - 1).
    const IFNAME_MAX: usize = 15;

    #[test]
    fn interface_names_fit_the_kernel_limit_at_the_largest_subnet_and_pid() {
        // PID_MAX_LIMIT on 64-bit Linux is 2^22.
        assert_eq!(bridge_name(SUBNETS - 1, 4_194_304), "dnet511-4194304");
        assert!(bridge_name(SUBNETS - 1, 4_194_304).len() <= IFNAME_MAX);
        assert!(veth_name(SUBNETS - 1, MAX_HOSTS - 1).len() <= IFNAME_MAX);
    }

    #[test]
    fn addresses_cover_198_18_0_0_slash_15_and_nothing_else() {
        assert_eq!(host_addr(0, 0), Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(host_addr(255, 2), Ipv4Addr::new(198, 18, 255, 3));
        assert_eq!(host_addr(256, 0), Ipv4Addr::new(198, 19, 0, 1));
        assert_eq!(host_addr(511, 253), Ipv4Addr::new(198, 19, 255, 254));
    }

    #[test]
    fn parse_reads_back_what_the_namers_write() {
        assert_eq!(parse(&bridge_name(7, 1234)), Some((7, Kind::Dashed)));
        assert_eq!(parse(&veth_name(37, 2)), Some((37, Kind::Veth)));
        assert_eq!(parse(&ns_name(511, 9, "x y", 0)), Some((511, Kind::Dashed)));
        assert_eq!(ns_name(511, 9, "x y", 0), "dnet511-9-x-y-0");
    }

    #[test]
    fn parse_ignores_names_that_are_not_ours() {
        for name in [
            "eth0",
            "dnet",
            "dnetv1",
            "dnet1x",
            "dnet512-1",
            "dnet0001v1",
            "dnet7",
        ] {
            assert_eq!(parse(name), None, "{name}");
        }
    }

    #[test]
    fn labels_are_cleaned_for_namespace_names() {
        assert_eq!(clean_label("fail over/1"), "fail-over-1");
        assert_eq!(clean_label(""), "net");
        assert_eq!(clean_label(&"a".repeat(40)).len(), 24);
    }
}
