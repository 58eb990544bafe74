//! Reading the cluster for the dashboard, every call bounded: from etcd (the
//! node agents' records and HA history) when the API knows its endpoints,
//! else from the API's pool (its hosts, the primary and the primary's
//! `pg_stat_replication`).

use std::time::{Duration, Instant};

use dash_dcs::{Dcs, HistoryEntry};
use dash_store::Db;

use super::snapshot::{self, ClusterSnapshot, Standby};

/// Bound on one etcd call (and on connecting).
const ETCD_TIMEOUT: Duration = Duration::from_millis(800);
/// Bound on the `pg_stat_replication` read.
const DB_TIMEOUT: Duration = Duration::from_secs(1);
/// How often the HA history is read again (it changes only on decisions).
const HISTORY_EVERY: Duration = Duration::from_secs(2);
/// Pause before connecting to etcd again after a failed connect.
const RECONNECT_AFTER: Duration = Duration::from_secs(2);

/// Where the cluster is read from.
pub enum ClusterSource {
    Etcd(EtcdSource),
    Pool,
}

/// A lazily made etcd connection and the last history read.
pub struct EtcdSource {
    endpoints: Vec<String>,
    cluster: String,
    dcs: Option<Dcs>,
    retry_at: Instant,
    history: Vec<HistoryEntry>,
    history_at: Option<Instant>,
}

impl ClusterSource {
    pub fn new(etcd: &[String], cluster: &str) -> ClusterSource {
        match etcd.is_empty() {
            true => ClusterSource::Pool,
            false => ClusterSource::Etcd(EtcdSource {
                endpoints: etcd.to_vec(),
                cluster: cluster.to_string(),
                dcs: None,
                retry_at: Instant::now(),
                history: Vec::new(),
                history_at: None,
            }),
        }
    }

    pub async fn read(&mut self, db: &Db) -> ClusterSnapshot {
        match self {
            ClusterSource::Etcd(e) => e.read().await,
            ClusterSource::Pool => {
                // A primary the pool cannot reach now is not shown as one.
                let primary = db.primary().filter(|_| db.reachable());
                let standbys = match primary {
                    Some(_) => standbys(db).await,
                    None => Ok(Vec::new()),
                };
                let mut c = snapshot::from_pool(
                    &db.hosts(),
                    primary.as_ref(),
                    standbys.as_deref().unwrap_or_default(),
                );
                c.error = standbys.err();
                c
            }
        }
    }
}

async fn bounded<T, E: std::fmt::Display>(
    limit: Duration,
    f: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(limit, f).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer within {limit:?}")),
    }
}

impl EtcdSource {
    async fn read(&mut self) -> ClusterSnapshot {
        match self.try_read().await {
            Ok(c) => c,
            Err(e) => ClusterSnapshot {
                source: "etcd",
                error: Some(format!("etcd: {e}")),
                incident: snapshot::latest_incident(&self.history),
                ..ClusterSnapshot::default()
            },
        }
    }

    async fn try_read(&mut self) -> Result<ClusterSnapshot, String> {
        let dcs = match &self.dcs {
            Some(d) => d.clone(),
            None if Instant::now() < self.retry_at => return Err("not connected".into()),
            None => {
                self.retry_at = Instant::now() + RECONNECT_AFTER;
                let connect = Dcs::connect(&self.endpoints, &self.cluster, ETCD_TIMEOUT);
                let d = bounded(ETCD_TIMEOUT * 2, connect).await?;
                self.dcs = Some(d.clone());
                d
            }
        };
        let view = bounded(ETCD_TIMEOUT * 2, dcs.view()).await?;
        if self.history_at.is_none_or(|t| t.elapsed() >= HISTORY_EVERY) {
            // A history that cannot be read keeps the last one read.
            if let Ok(h) = bounded(ETCD_TIMEOUT * 2, dcs.history()).await {
                self.history = h;
                self.history_at = Some(Instant::now());
            }
        }
        Ok(snapshot::from_etcd(&view, &self.history))
    }
}

/// The primary's standbys; bounded.
async fn standbys(db: &Db) -> Result<Vec<Standby>, String> {
    const SQL: &str = "SELECT coalesce(application_name, ''),
            coalesce(host(client_addr), 'local') || ':' || coalesce(client_port, 0)::text,
            state, sync_state, pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::int8
         FROM pg_stat_replication ORDER BY application_name LIMIT 64";
    let rows = bounded(DB_TIMEOUT, async {
        let mut conn = db.conn().await?;
        conn.query(SQL, &[]).await
    })
    .await?;
    Ok(rows
        .iter()
        .map(|r| Standby {
            name: r.get(0),
            address: r.get(1),
            state: r.get(2),
            sync_state: r.get(3),
            lag_bytes: r.get::<_, Option<i64>>(4).map(|l| l.max(0) as u64),
        })
        .collect())
}
