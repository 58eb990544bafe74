//! Rule 5: while a halt stands (a physical restore is under way), nothing
//! runs. Every server stops cleanly and the key holder gives the key up;
//! once the restore names the member holding the restored cluster, every
//! other member sets its data aside so that it is cloned from that member
//! after the halt. A halt is read from etcd, so an agent that cannot read
//! etcd follows the ordinary rules (and a primary that cannot renew its
//! lease fences itself under them).

use dash_dcs::Halt;

use super::{Action, Facts};

pub(super) fn halted(f: &Facts, halt: &Halt) -> Action {
    let holds_key = f
        .view
        .and_then(|v| v.leader.as_ref())
        .is_some_and(|l| l.name == f.me);
    let lease_ok = f.lease.is_some_and(|l| l.valid_at(f.now));
    let writable_or_unknown = f.local.running && f.local.in_recovery != Some(true);
    if writable_or_unknown && !lease_ok {
        // Invariant 1 still comes first: a clean stop takes a checkpoint's
        // time, which a server without certain leadership does not get.
        return Action::Fence("halted, and the etcd lease is not certainly valid".into());
    }
    if f.local.running || holds_key {
        return Action::HaltStop(format!("halted by {}: {}", halt.by, halt.reason));
    }
    match &halt.restored {
        Some(member) if member != f.me && f.local.has_data => Action::SetAside(format!(
            "{member} holds the restored cluster; this member is cloned from it after the halt"
        )),
        Some(member) if member == f.me => {
            Action::Wait("halted: this member holds the restored cluster".into())
        }
        _ => Action::Wait(format!("halted by {}: {}", halt.by, halt.reason)),
    }
}
