//! Cluster-wide settings (`dash_control`): the one settings row every API
//! process follows (maintenance mode, pool size), the processes' reports of
//! what they applied, and the log of every change with who and when.

use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::Row;
use uuid::Uuid;

use super::col;
use crate::error::StoreError;
use crate::pool::{Db, Tx};

/// An instance is live while it reported within this long (it reports
/// about once a second).
pub const LIVE_WITHIN: Duration = Duration::from_secs(5);
/// Instances not seen for this long are left out of every answer.
pub const FORGET_AFTER: Duration = Duration::from_secs(3600);
/// The longest `changed_by` kept (longer ones are cut).
pub const MAX_CHANGED_BY_CHARS: usize = 300;

/// The settings row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterSettings {
    /// `Some(reason)` while writes are stopped everywhere.
    pub maintenance: Option<String>,
    /// The pool size every process uses; `None`: each keeps its own.
    pub pool_size: Option<i32>,
    /// Grows by one with every change.
    pub version: i64,
    pub changed_at: DateTime<Utc>,
    pub changed_by: String,
}

/// One change of the settings row.
#[derive(Debug, Clone, PartialEq)]
pub enum SettingChange {
    Maintenance(Option<String>),
    PoolSize(i32),
}

impl SettingChange {
    fn name(&self) -> &'static str {
        match self {
            SettingChange::Maintenance(_) => "maintenance",
            SettingChange::PoolSize(_) => "pool_size",
        }
    }

    fn value(&self) -> Option<String> {
        match self {
            SettingChange::Maintenance(m) => m.clone(),
            SettingChange::PoolSize(n) => Some(n.to_string()),
        }
    }
}

/// What one API process reports about itself.
#[derive(Debug, Clone)]
pub struct InstanceReport {
    pub id: Uuid,
    pub host: String,
    pub pid: i32,
    pub started_at: SystemTime,
    /// The maintenance reason it applies (`None`: it accepts writes).
    pub maintenance: Option<String>,
    /// Its pool's maximum size.
    pub pool_size: i32,
    /// The settings version it follows.
    pub settings_version: i64,
}

/// One instance as the database last heard from it.
#[derive(Debug, Clone, Serialize)]
pub struct Instance {
    pub id: Uuid,
    pub host: String,
    pub pid: i32,
    pub started_at: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// Seconds since `last_seen`, on the database's clock.
    pub seen_secs_ago: f64,
    /// Reported within [`LIVE_WITHIN`].
    pub live: bool,
    pub maintenance: Option<String>,
    pub pool_size: i32,
    pub settings_version: i64,
}

impl Instance {
    /// Whether it applies `s`: the same maintenance state and, when the
    /// cluster sets one, the same pool size.
    pub fn follows(&self, s: &ClusterSettings) -> bool {
        self.maintenance == s.maintenance && s.pool_size.is_none_or(|n| n == self.pool_size)
    }
}

/// One entry of the settings' history.
#[derive(Debug, Clone, Serialize)]
pub struct AdminLogEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// `maintenance`, `pool_size`, or `rewound` (the row was put back after
    /// a restore had rewound it).
    pub setting: String,
    pub old_value: Option<String>,
    pub new_value: Option<String>,
    pub changed_by: String,
    pub version: i64,
}

const SETTINGS: &str = "SELECT maintenance_reason, pool_size, version, changed_at, changed_by
                        FROM dash_control.settings";

fn settings_from(r: &Row) -> Result<ClusterSettings, StoreError> {
    Ok(ClusterSettings {
        maintenance: col(r, 0)?,
        pool_size: col(r, 1)?,
        version: col(r, 2)?,
        changed_at: col(r, 3)?,
        changed_by: col(r, 4)?,
    })
}

fn bounded(by: &str) -> String {
    by.chars().take(MAX_CHANGED_BY_CHARS).collect()
}

async fn log(
    tx: &mut Tx<'_>,
    setting: &str,
    old: Option<String>,
    new: Option<String>,
    by: &str,
    version: i64,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO dash_control.admin_log (setting, old_value, new_value, changed_by, version)
         VALUES ($1, $2, $3, $4, $5)",
        &[&setting, &old, &new, &by, &version],
    )
    .await?;
    Ok(())
}

fn describe(s: &ClusterSettings) -> String {
    format!(
        "maintenance={} pool_size={} version={}",
        s.maintenance.as_deref().unwrap_or("off"),
        s.pool_size.map_or("unset".into(), |n| n.to_string()),
        s.version
    )
}

impl Db {
    /// The settings row.
    pub async fn cluster_settings(&self) -> Result<ClusterSettings, StoreError> {
        let row = self.conn().await?.query_one(SETTINGS, &[]).await?;
        settings_from(&row)
    }

    /// Changes one setting and logs it, in one transaction. With
    /// `decided_before` (a change decided while the database was out of
    /// reach), it is written only when nobody changed the row since then;
    /// `None` says somebody did.
    pub async fn change_setting(
        &self,
        change: &SettingChange,
        by: &str,
        decided_before: Option<SystemTime>,
    ) -> Result<Option<ClusterSettings>, StoreError> {
        let by = bounded(by);
        let decided_before = decided_before.map(DateTime::<Utc>::from);
        let mut conn = self.conn().await?;
        let mut tx = conn.transaction().await?;
        let row = tx.query_one(&format!("{SETTINGS} FOR UPDATE"), &[]).await?;
        let old = settings_from(&row)?;
        if decided_before.is_some_and(|t| old.changed_at > t) {
            return Ok(None);
        }
        let (reason, size) = match change {
            SettingChange::Maintenance(m) => (m.clone(), old.pool_size),
            SettingChange::PoolSize(n) => (old.maintenance.clone(), Some(*n)),
        };
        let row = tx
            .query_one(
                "UPDATE dash_control.settings SET maintenance_reason = $1, pool_size = $2,
                        version = version + 1, changed_at = now(), changed_by = $3
                 RETURNING maintenance_reason, pool_size, version, changed_at, changed_by",
                &[&reason, &size, &by],
            )
            .await?;
        let new = settings_from(&row)?;
        let before = match change {
            SettingChange::Maintenance(_) => old.maintenance.clone(),
            SettingChange::PoolSize(_) => old.pool_size.map(|n| n.to_string()),
        };
        log(
            &mut tx,
            change.name(),
            before,
            change.value(),
            &by,
            new.version,
        )
        .await?;
        tx.commit().await?;
        Ok(Some(new))
    }

    /// Puts `newest` back when the row is older than it (a restore rewound
    /// it, or the database was rebuilt): the processes that applied it know
    /// better. `None` when the row was not older.
    pub async fn rewrite_rewound_settings(
        &self,
        newest: &ClusterSettings,
        by: &str,
    ) -> Result<Option<ClusterSettings>, StoreError> {
        let by = bounded(by);
        let mut conn = self.conn().await?;
        let mut tx = conn.transaction().await?;
        let row = tx.query_one(&format!("{SETTINGS} FOR UPDATE"), &[]).await?;
        let old = settings_from(&row)?;
        if old.version >= newest.version {
            return Ok(None);
        }
        let row = tx
            .query_one(
                "UPDATE dash_control.settings SET maintenance_reason = $1, pool_size = $2,
                        version = $3, changed_at = now(), changed_by = $4
                 RETURNING maintenance_reason, pool_size, version, changed_at, changed_by",
                &[&newest.maintenance, &newest.pool_size, &newest.version, &by],
            )
            .await?;
        let new = settings_from(&row)?;
        let (was, now) = (describe(&old), describe(&new));
        log(&mut tx, "rewound", Some(was), Some(now), &by, new.version).await?;
        tx.commit().await?;
        Ok(Some(new))
    }

    /// Records what this process applies, and that it is alive.
    pub async fn report_instance(&self, r: &InstanceReport) -> Result<(), StoreError> {
        let started_at = DateTime::<Utc>::from(r.started_at);
        self.conn()
            .await?
            .execute(
                "INSERT INTO dash_control.instances (instance_id, host, pid, started_at,
                        last_seen, maintenance_reason, pool_size, settings_version)
                 VALUES ($1, $2, $3, $4, now(), $5, $6, $7)
                 ON CONFLICT (instance_id) DO UPDATE SET last_seen = now(),
                        maintenance_reason = EXCLUDED.maintenance_reason,
                        pool_size = EXCLUDED.pool_size,
                        settings_version = EXCLUDED.settings_version",
                &[
                    &r.id,
                    &r.host,
                    &r.pid,
                    &started_at,
                    &r.maintenance,
                    &r.pool_size,
                    &r.settings_version,
                ],
            )
            .await?;
        Ok(())
    }

    /// The instances seen within [`FORGET_AFTER`], the live ones first,
    /// each with `live` decided on the database's clock.
    pub async fn instances(&self) -> Result<Vec<Instance>, StoreError> {
        let rows = self
            .conn()
            .await?
            .query(
                "SELECT instance_id, host, pid, started_at, last_seen,
                        extract(epoch FROM now() - last_seen)::float8,
                        now() - last_seen <= make_interval(secs => $1),
                        maintenance_reason, pool_size, settings_version
                 FROM dash_control.instances
                 WHERE last_seen > now() - make_interval(secs => $2)
                 ORDER BY 7 DESC, host, pid, instance_id LIMIT 1000",
                &[&LIVE_WITHIN.as_secs_f64(), &FORGET_AFTER.as_secs_f64()],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Instance {
                    id: col(r, 0)?,
                    host: col(r, 1)?,
                    pid: col(r, 2)?,
                    started_at: col(r, 3)?,
                    last_seen: col(r, 4)?,
                    seen_secs_ago: col::<f64>(r, 5)?.max(0.0),
                    live: col(r, 6)?,
                    maintenance: col(r, 7)?,
                    pool_size: col(r, 8)?,
                    settings_version: col(r, 9)?,
                })
            })
            .collect()
    }

    /// Forgets instances not seen for [`FORGET_AFTER`]; returns how many.
    pub async fn prune_instances(&self) -> Result<u64, StoreError> {
        self.conn()
            .await?
            .execute(
                "DELETE FROM dash_control.instances
                 WHERE last_seen < now() - make_interval(secs => $1)",
                &[&FORGET_AFTER.as_secs_f64()],
            )
            .await
    }

    /// The settings' history since `since` (everything without it), oldest
    /// first, at most `limit` (1 to 10,000) entries: the newest ones when
    /// there are more.
    pub async fn admin_log(
        &self,
        since: Option<DateTime<Utc>>,
        limit: i64,
    ) -> Result<Vec<AdminLogEntry>, StoreError> {
        let limit = limit.clamp(1, 10_000);
        let rows = self
            .conn()
            .await?
            .query(
                "SELECT * FROM (
                     SELECT id, at, setting, old_value, new_value, changed_by, version
                     FROM dash_control.admin_log
                     WHERE $1::timestamptz IS NULL OR at >= $1
                     ORDER BY at DESC, id DESC LIMIT $2) newest
                 ORDER BY at, id",
                &[&since, &limit],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(AdminLogEntry {
                    id: col(r, 0)?,
                    at: col(r, 1)?,
                    setting: col(r, 2)?,
                    old_value: col(r, 3)?,
                    new_value: col(r, 4)?,
                    changed_by: col(r, 5)?,
                    version: col(r, 6)?,
                })
            })
            .collect()
    }
}
