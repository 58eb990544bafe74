//! Versioned, checksummed schema migrations, run at start-up. Safe when
//! several API replicas start at once: they take turns under an advisory lock.

use sha2::{Digest, Sha256};

use crate::error::StoreError;
use crate::pool::Conn;

/// One embedded migration.
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration, in order. Append only: an applied migration never changes.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        sql: include_str!("../migrations/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "cluster_settings",
        sql: include_str!("../migrations/0002_cluster_settings.sql"),
    },
    Migration {
        version: 3,
        name: "worker",
        sql: include_str!("../migrations/0003_worker.sql"),
    },
    Migration {
        version: 4,
        name: "list_indexes",
        sql: include_str!("../migrations/0004_list_indexes.sql"),
    },
];

/// Key of the advisory lock that serializes migrators (ASCII "dashmigr").
const LOCK_KEY: i64 = 0x6461_7368_6d69_6772;

pub fn checksum(sql: &str) -> String {
    hex::encode(Sha256::digest(sql.as_bytes()))
}

/// The latest version this build knows.
pub fn latest_version() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Applies every pending migration; returns how many it applied. Refuses to
/// run when an applied migration's checksum no longer matches this build.
pub async fn migrate(conn: &mut Conn) -> Result<usize, StoreError> {
    let mut tx = conn.transaction().await?;
    // Transaction-scoped, so a lost connection can never leave it held.
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS dash_schema_migrations (
             version integer PRIMARY KEY,
             name text NOT NULL,
             checksum text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await?;
    let rows = tx
        .query("SELECT version, checksum FROM dash_schema_migrations", &[])
        .await?;
    let applied: std::collections::HashMap<i32, String> =
        rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let mut count = 0;
    for m in MIGRATIONS {
        let sum = checksum(m.sql);
        match applied.get(&m.version) {
            Some(existing) if *existing == sum => continue,
            Some(_) => {
                return Err(StoreError::Migration(format!(
                    "migration {} ({}) was changed after it was applied",
                    m.version, m.name
                )))
            }
            None => {}
        }
        tx.batch_execute(m.sql)
            .await
            .map_err(|e| StoreError::Migration(format!("{} ({}): {e}", m.version, m.name)))?;
        tx.execute(
            "INSERT INTO dash_schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
            &[&m.version, &m.name, &sum],
        )
        .await?;
        count += 1;
    }
    if let Some(max) = applied.keys().max() {
        if *max > latest_version() {
            return Err(StoreError::Migration(format!(
                "the database is at schema version {max}, newer than this build ({})",
                latest_version()
            )));
        }
    }
    tx.commit().await?;
    Ok(count)
}

/// True when the schema is at this build's version.
pub async fn is_current(conn: &mut Conn) -> Result<bool, StoreError> {
    let row = conn
        .query_one(
            "SELECT CASE WHEN to_regclass('dash_schema_migrations') IS NULL THEN 0
                    ELSE (SELECT coalesce(max(version), 0) FROM dash_schema_migrations) END",
            &[],
        )
        .await?;
    Ok(row.get::<_, i32>(0) >= latest_version())
}
