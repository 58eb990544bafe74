//! The process's open-file limit: raised to the hard limit at start, since
//! every connection and event stream holds a descriptor.

use nix::sys::resource::{getrlimit, setrlimit, Resource, RLIM_INFINITY};

/// The most descriptors asked for when the hard limit is unlimited (Linux
/// refuses more than `fs.nr_open`, 1,048,576 by default).
const UNLIMITED_TARGET: u64 = 1 << 20;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit where allowed and
/// returns the effective soft limit (`None` when it cannot be read).
pub fn raise_nofile() -> Option<u64> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    let target = if hard == RLIM_INFINITY {
        UNLIMITED_TARGET
    } else {
        hard
    };
    if soft != RLIM_INFINITY
        && soft < target
        && setrlimit(Resource::RLIMIT_NOFILE, target, hard).is_ok()
    {
        return Some(target);
    }
    Some(soft)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_ends_at_the_hard_limit() {
        let effective = raise_nofile().expect("a limit");
        let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("read");
        assert_eq!(effective, soft);
        assert!(soft == hard || hard == RLIM_INFINITY, "{soft} < {hard}");
    }
}
