//! This process's link to the cluster-wide settings: who it is (what it
//! reports in `dash_control.instances`), the newest settings row it has
//! seen, and changes made through it that the database has not taken yet
//! (it was out of reach). A change made here wins over the database's row
//! until the database has it, so that a write stop never flickers.

use std::sync::Mutex;
use std::time::SystemTime;

use dash_store::repo::control::{ClusterSettings, SettingChange};
use uuid::Uuid;

/// The longest host name kept.
const MAX_HOST_CHARS: usize = 253;

/// A change made through this process that the database has not taken.
#[derive(Debug, Clone)]
pub struct Pending {
    pub change: SettingChange,
    pub by: String,
    pub decided_at: SystemTime,
    seq: u64,
}

impl Pending {
    pub fn seq(&self) -> u64 {
        self.seq
    }
}

#[derive(Default)]
struct Link {
    newest: Option<ClusterSettings>,
    pending: Vec<Pending>,
    seq: u64,
}

/// What the follower should do with a settings row it read.
#[derive(Debug, PartialEq)]
pub enum Follow {
    /// Applied (the fields with a pending change of ours were left alone).
    Applied,
    /// The row is older than one this process applied: a restore rewound
    /// it. Put this one back instead of following it.
    Rewound(ClusterSettings),
}

pub struct ClusterLink {
    pub id: Uuid,
    pub host: String,
    pub pid: u32,
    pub started_at: SystemTime,
    inner: Mutex<Link>,
}

impl Default for ClusterLink {
    fn default() -> Self {
        Self::new()
    }
}

fn same_setting(a: &SettingChange, b: &SettingChange) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b)
}

/// This machine's name: `HOSTNAME` (a Kubernetes pod's name), else the
/// kernel's, cut to a sane length and stripped of control characters.
fn host_name() -> String {
    let raw = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.trim().is_empty())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .unwrap_or_default();
    let clean: String = raw
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_HOST_CHARS)
        .collect();
    match clean.is_empty() {
        true => "unknown".into(),
        false => clean,
    }
}

impl ClusterLink {
    pub fn new() -> ClusterLink {
        ClusterLink {
            id: Uuid::new_v4(),
            host: host_name(),
            pid: std::process::id(),
            started_at: SystemTime::now(),
            inner: Mutex::new(Link::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Link> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records `change` as this process's own, pending until the database
    /// has it, and applies it locally (`apply`) under the lock the follower
    /// applies under, so the follower can never undo it with an older row.
    /// Returns the change's number for [`ClusterLink::settle`].
    pub fn decide(&self, change: SettingChange, by: String, apply: impl FnOnce()) -> u64 {
        let mut link = self.lock();
        link.seq += 1;
        let seq = link.seq;
        link.pending.retain(|p| !same_setting(&p.change, &change));
        link.pending.push(Pending {
            change,
            by,
            decided_at: SystemTime::now(),
            seq,
        });
        apply();
        seq
    }

    /// Change `seq` is settled: the database took it (`Some(row)`), or it
    /// was dropped because the row changed after it was decided (`None`).
    pub fn settle(&self, seq: u64, row: Option<ClusterSettings>) {
        let mut link = self.lock();
        link.pending.retain(|p| p.seq != seq);
        if let Some(row) = row {
            if link
                .newest
                .as_ref()
                .is_none_or(|n| n.version <= row.version)
            {
                link.newest = Some(row);
            }
        }
    }

    /// Changes made here that the database has not taken yet.
    pub fn pending(&self) -> Vec<Pending> {
        self.lock().pending.clone()
    }

    /// The newest settings row this process has seen.
    pub fn newest(&self) -> Option<ClusterSettings> {
        self.lock().newest.clone()
    }

    /// Follows `row`: `apply(row, maintenance_is_ours, pool_is_ours)` runs
    /// under the lock, told which settings have a pending change of ours
    /// (it must leave those alone). A row older than the newest seen is not
    /// applied.
    pub fn follow(&self, row: &ClusterSettings, apply: impl FnOnce(bool, bool)) -> Follow {
        let mut link = self.lock();
        if let Some(newest) = link.newest.as_ref().filter(|n| n.version > row.version) {
            return Follow::Rewound(newest.clone());
        }
        let ours =
            |probe: SettingChange| link.pending.iter().any(|p| same_setting(&p.change, &probe));
        let maintenance = ours(SettingChange::Maintenance(None));
        let pool = ours(SettingChange::PoolSize(0));
        apply(maintenance, pool);
        link.newest = Some(row.clone());
        Follow::Applied
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(version: i64, maintenance: Option<&str>) -> ClusterSettings {
        ClusterSettings {
            maintenance: maintenance.map(str::to_string),
            pool_size: None,
            version,
            changed_at: chrono::Utc::now(),
            changed_by: "test".into(),
        }
    }

    #[test]
    fn a_pending_change_is_left_alone_until_settled() {
        let link = ClusterLink::new();
        let seq = link.decide(
            SettingChange::Maintenance(Some("restore".into())),
            "op".into(),
            || {},
        );
        let mut seen = None;
        assert_eq!(
            link.follow(&row(1, None), |m, p| seen = Some((m, p))),
            Follow::Applied
        );
        assert_eq!(
            seen,
            Some((true, false)),
            "maintenance is ours, pool is not"
        );
        link.settle(seq, Some(row(2, Some("restore"))));
        assert!(link.pending().is_empty());
        link.follow(&row(2, Some("restore")), |m, p| seen = Some((m, p)));
        assert_eq!(seen, Some((false, false)));
    }

    #[test]
    fn an_older_row_is_a_rewind_and_is_not_applied() {
        let link = ClusterLink::new();
        link.follow(&row(7, Some("restore")), |_, _| {});
        let mut applied = false;
        match link.follow(&row(3, None), |_, _| applied = true) {
            Follow::Rewound(newest) => assert_eq!(newest.version, 7),
            other => panic!("expected a rewind, got {other:?}"),
        }
        assert!(!applied);
    }

    #[test]
    fn a_new_decision_replaces_the_pending_one_of_the_same_setting() {
        let link = ClusterLink::new();
        link.decide(
            SettingChange::Maintenance(Some("a".into())),
            "x".into(),
            || {},
        );
        link.decide(SettingChange::PoolSize(5), "x".into(), || {});
        link.decide(SettingChange::Maintenance(None), "x".into(), || {});
        let changes: Vec<SettingChange> = link.pending().into_iter().map(|p| p.change).collect();
        assert_eq!(
            changes,
            [SettingChange::PoolSize(5), SettingChange::Maintenance(None)]
        );
    }
}
