//! Network partitions of a [`Host`]: nftables rules in the host's namespace
//! that silently drop its traffic to and from other hosts.
//!
//! The rules sit in one `netdev` table whose chains hook `eth0`'s ingress and
//! egress. Hooking the device rather than the IP layer has two effects a
//! partition needs. A packet dropped at egress vanishes like one lost on a
//! wire: the sender's `send` succeeds and a TCP peer sees a timeout, where an
//! `inet` output drop would hand local senders an immediate `EPERM`. And
//! traffic a host sends to itself, even to its own `eth0` address, goes over
//! loopback and never meets these rules. ARP is never dropped, so peers see
//! silence rather than "no route to host". Compared with taking the link
//! down: a link down removes the host's address and routes, so its own
//! services break and sockets see errors, and it cannot cut one peer or port.
//! The egress hook needs Linux 5.16 or later.

use std::net::Ipv4Addr;

use crate::cmd::nft_in;
use crate::{Host, NetError};

/// The table holding every rule this crate puts in a host.
const TABLE: &str = "dash_netns";

impl Host {
    /// Cuts this host off from every other host, both ways: all IPv4 and
    /// IPv6 traffic on `eth0` is dropped. The host still reaches itself, also
    /// at its own address. Adds to earlier [`Host::block`] rules.
    #[tracing::instrument(skip_all, fields(host = %self.name()), err)]
    pub fn isolate(&self) -> Result<(), NetError> {
        nft_in(self.name(), &isolate_script())
    }

    /// Cuts the traffic between this host and `peer`, both ways, with rules
    /// in this host only. With `ports`, only TCP to and from those ports of
    /// the peer is cut (e.g. etcd's 2379, while PostgreSQL replication still
    /// flows); connections the peer opens to this host's ports are not.
    /// Rules add up across calls until [`Host::heal`].
    #[tracing::instrument(skip_all, fields(host = %self.name(), %peer, ?ports), err)]
    pub fn block(&self, peer: Ipv4Addr, ports: Option<&[u16]>) -> Result<(), NetError> {
        if ports.is_some_and(|p| p.is_empty()) {
            return Err(NetError::Invalid(
                "block with an empty port list would cut nothing; pass None to cut every port"
                    .into(),
            ));
        }
        nft_in(self.name(), &block_script(peer, ports))
    }

    /// Removes every rule this crate put in this host. A host without rules
    /// is left as it is.
    #[tracing::instrument(skip_all, fields(host = %self.name()), err)]
    pub fn heal(&self) -> Result<(), NetError> {
        nft_in(self.name(), &heal_script())
    }
}

/// Declares the table and its two chains (a no-op if they exist).
fn chains() -> String {
    let chain = |hook: &str| {
        format!(
            "  chain {hook} {{ type filter hook {hook} device \"eth0\" priority 0; policy accept; }}\n"
        )
    };
    format!(
        "table netdev {TABLE} {{\n{}{}}}\n",
        chain("ingress"),
        chain("egress")
    )
}

fn isolate_script() -> String {
    let mut script = chains();
    for hook in ["ingress", "egress"] {
        script.push_str(&format!(
            "add rule netdev {TABLE} {hook} meta protocol {{ ip, ip6 }} drop\n"
        ));
    }
    script
}

fn block_script(peer: Ipv4Addr, ports: Option<&[u16]>) -> String {
    let (incoming, outgoing) = match ports {
        None => (String::new(), String::new()),
        Some(ports) => {
            let set = ports
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            (
                format!(" tcp sport {{ {set} }}"),
                format!(" tcp dport {{ {set} }}"),
            )
        }
    };
    let mut script = chains();
    script.push_str(&format!(
        "add rule netdev {TABLE} ingress ip saddr {peer}{incoming} drop\n"
    ));
    script.push_str(&format!(
        "add rule netdev {TABLE} egress ip daddr {peer}{outgoing} drop\n"
    ));
    script
}

/// Deletes the table; declaring it first makes this work when it is absent
/// (nft 1.0.6 has no `destroy`), in one transaction.
fn heal_script() -> String {
    format!("table netdev {TABLE}\ndelete table netdev {TABLE}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_with_ports_matches_the_peers_side_of_the_connection() {
        let script = block_script(Ipv4Addr::new(198, 18, 3, 2), Some(&[2379, 2380]));
        assert!(script.contains("ingress ip saddr 198.18.3.2 tcp sport { 2379, 2380 } drop"));
        assert!(script.contains("egress ip daddr 198.18.3.2 tcp dport { 2379, 2380 } drop"));
    }

    #[test]
    fn block_without_ports_drops_everything_to_and_from_the_peer() {
        let script = block_script(Ipv4Addr::new(198, 18, 3, 2), None);
        assert!(script.contains("ingress ip saddr 198.18.3.2 drop"));
        assert!(script.contains("egress ip daddr 198.18.3.2 drop"));
    }

    #[test]
    fn every_rule_hooks_eth0_only_so_loopback_is_untouched() {
        let script = isolate_script();
        assert_eq!(script.matches("device \"eth0\"").count(), 2);
        assert!(!script.contains("\"lo\""));
    }
}
