//! Finding a subnet's namespaces and interfaces by name, and removing them:
//! the one teardown path for a dropped [`crate::Net`], a half-built one, and
//! the leftovers of a process that died holding one.

use std::collections::BTreeMap;

use crate::cmd::ip;
use crate::names::{self, Kind, NETNS_DIR};
use crate::{is_root, procs, NetError};

/// The objects that carry one subnet's prefix.
#[derive(Debug, Default)]
pub(crate) struct Objects {
    pub(crate) namespaces: Vec<String>,
    pub(crate) veths: Vec<String>,
    pub(crate) bridges: Vec<String>,
}

impl Objects {
    pub(crate) fn is_empty(&self) -> bool {
        self.namespaces.is_empty() && self.veths.is_empty() && self.bridges.is_empty()
    }
}

/// Every namespace and root-namespace interface named by this crate, by subnet.
fn list() -> Result<BTreeMap<u16, Objects>, NetError> {
    let mut found: BTreeMap<u16, Objects> = BTreeMap::new();
    if let Ok(entries) = std::fs::read_dir(NETNS_DIR) {
        for name in entries.filter_map(|e| e.ok()?.file_name().into_string().ok()) {
            if let Some((subnet, Kind::Dashed)) = names::parse(&name) {
                found.entry(subnet).or_default().namespaces.push(name);
            }
        }
    }
    for line in ip(&["-o", "link", "show"])?.lines() {
        // "7: dnet3v0@if2: <BROADCAST,...> mtu 1500 ..."
        let Some(name) = line.split(": ").nth(1).and_then(|n| n.split('@').next()) else {
            continue;
        };
        match names::parse(name) {
            Some((subnet, Kind::Veth)) => found.entry(subnet).or_default().veths.push(name.into()),
            Some((subnet, Kind::Dashed)) => {
                found.entry(subnet).or_default().bridges.push(name.into())
            }
            None => {}
        }
    }
    Ok(found)
}

/// The objects of `subnet` only. The caller should hold its lock.
pub(crate) fn list_subnet(subnet: u16) -> Result<Objects, NetError> {
    Ok(list()?.remove(&subnet).unwrap_or_default())
}

/// Removes `objects`: kills every process in each namespace, deletes the
/// veths (which takes their `eth0` ends, and with them any nftables chains
/// bound to `eth0`, at once; deleting a namespace alone frees its interfaces
/// only later, in the kernel's background cleanup), the namespaces, then the
/// bridges. Carries on past failures and returns the first.
pub(crate) fn remove(objects: &Objects) -> Result<(), NetError> {
    let mut first = None;
    let mut note = |result: Result<(), NetError>| {
        if let Err(e) = result {
            tracing::error!(error = %e, "teardown step failed");
            first.get_or_insert(e);
        }
    };
    for ns in &objects.namespaces {
        note(procs::kill_all(ns));
    }
    for veth in &objects.veths {
        note(ip(&["link", "del", veth]).map(drop));
    }
    for ns in &objects.namespaces {
        note(ip(&["netns", "del", ns]).map(drop));
    }
    for bridge in &objects.bridges {
        note(ip(&["link", "del", bridge]).map(drop));
    }
    first.map_or(Ok(()), Err)
}

/// Removes the namespaces, veths and bridges left by processes that died
/// holding a [`crate::Net`] (killed, aborted, or stopped by a debugger before
/// `Drop` ran), with every process still running in them. Nets of live
/// processes, this one included, are left alone: a subnet is swept only when
/// its lock is free. Returns how many subnets it cleaned.
///
/// [`crate::Net::create`] already cleans the subnet it takes, so calling this
/// is only needed to tidy up the machine.
pub fn sweep_leftovers() -> Result<usize, NetError> {
    if !is_root() {
        return Err(NetError::NotRoot(nix::unistd::geteuid().as_raw()));
    }
    let mut swept = 0;
    for subnet in list()?.into_keys() {
        let Some(_lock) = names::try_lock(subnet)? else {
            continue; // a live Net owns it
        };
        // Listed again under the lock: the owner may have finished its own
        // teardown between our first look and taking the lock.
        let objects = list_subnet(subnet)?;
        if objects.is_empty() {
            continue;
        }
        tracing::info!(subnet, ?objects, "removing leftovers of a dead process");
        remove(&objects)?;
        swept += 1;
    }
    Ok(swept)
}
