//! The agent's own PostgreSQL as the tick sees it: what it observes (every
//! query under a deadline), the settings changed on a running server
//! (synchronous standbys, whom to follow), and the blocking steps of
//! `control.rs` run on the control thread.

use std::time::Duration;

use dash_pg::PgError;
use tokio_postgres::{Client, NoTls};

use crate::control::PgControl;
use crate::options::NodeOptions;
use dash_pg::ParentThread;

/// Every query of an observation runs under this deadline.
const QUERY_DEADLINE: Duration = Duration::from_millis(500);

/// One tick's reading of the local server.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub running: bool,
    pub answered: bool,
    pub in_recovery: Option<bool>,
    pub timeline: Option<u32>,
    /// Primary: current LSN; standby: the greater of received and replayed.
    pub lsn: Option<u64>,
    pub streaming: bool,
    /// Primary only: its standbys as `pg_stat_replication` shows them.
    pub standbys: Vec<StandbyRow>,
    /// Primary only: the longest a commit has waited for a standby, in ms.
    pub syncrep_wait_ms: u64,
    /// Primary only: `synchronous_standby_names`.
    pub sync_names: String,
}

/// One row of `pg_stat_replication`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StandbyRow {
    pub name: String,
    pub streaming: bool,
    pub sync: bool,
    pub flush_lsn: u64,
    /// Milliseconds since the standby last replied.
    pub reply_age_ms: u64,
}

/// The local PostgreSQL of one agent.
pub struct LocalPg {
    pub ctl: PgControl,
    thread: ParentThread,
    conn: Option<Client>,
}

impl LocalPg {
    pub fn new(opts: &NodeOptions) -> Result<LocalPg, PgError> {
        Ok(LocalPg {
            ctl: PgControl::new(opts)?,
            thread: ParentThread::start("pg-control"),
            conn: None,
        })
    }

    /// Runs a blocking step on the control thread; the kept connection is
    /// dropped first (the step may stop the server).
    pub async fn step<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&PgControl) -> Result<T, PgError> + Send + 'static,
    ) -> Result<T, PgError> {
        self.conn = None;
        let ctl = self.ctl.clone();
        self.thread.run(move || f(&ctl)).await
    }

    pub fn has_data(&self) -> bool {
        self.ctl.has_data()
    }
    pub fn needs_rewind(&self) -> bool {
        self.ctl.needs_rewind()
    }
    pub fn was_primary(&self) -> bool {
        self.ctl.was_primary()
    }
    pub fn running(&self) -> bool {
        self.ctl.running()
    }
    pub fn address(&self) -> String {
        self.ctl.address()
    }
    pub fn following_addr(&self) -> Option<String> {
        self.ctl.following_addr()
    }

    async fn client(&mut self) -> Option<&Client> {
        if self.conn.as_ref().is_some_and(|c| c.is_closed()) {
            self.conn = None;
        }
        if self.conn.is_none() {
            let sock = self.ctl.node().ok()?.socket_dir().to_path_buf();
            let mut cfg = tokio_postgres::Config::new();
            cfg.host_path(&sock)
                .port(self.ctl.cfg.port)
                .user(&self.ctl.cfg.superuser)
                .dbname("postgres")
                .application_name("dashctl node")
                .connect_timeout(QUERY_DEADLINE);
            let (client, conn) = tokio::time::timeout(QUERY_DEADLINE, cfg.connect(NoTls))
                .await
                .ok()?
                .ok()?;
            tokio::spawn(conn);
            self.conn = Some(client);
        }
        self.conn.as_ref()
    }

    /// Runs each statement on its own (`ALTER SYSTEM` refuses a
    /// multi-statement batch), each under the deadline; a failure drops the
    /// connection.
    pub async fn execute(&mut self, statements: &[&str]) -> Result<(), String> {
        for sql in statements {
            self.execute_one(sql).await?;
        }
        Ok(())
    }

    async fn execute_one(&mut self, sql: &str) -> Result<(), String> {
        let client = self.client().await.ok_or("postgres is not reachable")?;
        let out = tokio::time::timeout(QUERY_DEADLINE, client.batch_execute(sql)).await;
        match out {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                self.conn = None;
                Err(dash_core::error_chain(&e))
            }
            Err(_) => {
                self.conn = None;
                Err(format!("no answer within {QUERY_DEADLINE:?}"))
            }
        }
    }

    /// Sets `synchronous_standby_names` (empty: asynchronous) and reloads.
    pub async fn set_sync_names(&mut self, standbys: &[String]) -> Result<(), String> {
        let value = crate::control::sync_names_value(standbys);
        let set = format!(
            "ALTER SYSTEM SET synchronous_standby_names = '{}'",
            value.replace('\'', "''")
        );
        self.execute(&[&set, "SELECT pg_reload_conf()"]).await
    }

    /// Reads this tick's state; every query is bounded.
    /// The archiver's state (`archive.rs`); `None` when the server is
    /// stopped or did not answer in time.
    pub async fn archive(&mut self) -> Option<crate::archive::ArchiveReading> {
        if !self.running() {
            return None;
        }
        let client = self.client().await?;
        tokio::time::timeout(QUERY_DEADLINE, crate::archive::read(client))
            .await
            .ok()
            .flatten()
    }

    pub async fn observe(&mut self) -> Observed {
        let mut o = Observed {
            running: self.running(),
            ..Observed::default()
        };
        if !o.running {
            self.conn = None;
            return o;
        }
        match tokio::time::timeout(QUERY_DEADLINE * 2, read(self)).await {
            Ok(Some(read)) => {
                o.answered = true;
                o.in_recovery = Some(read.in_recovery);
                o.timeline = read.timeline;
                o.lsn = read.lsn;
                o.streaming = read.streaming;
                o.standbys = read.standbys;
                o.syncrep_wait_ms = read.syncrep_wait_ms;
                o.sync_names = read.sync_names;
            }
            _ => self.conn = None,
        }
        o
    }
}

struct Reading {
    in_recovery: bool,
    timeline: Option<u32>,
    lsn: Option<u64>,
    streaming: bool,
    standbys: Vec<StandbyRow>,
    syncrep_wait_ms: u64,
    sync_names: String,
}

async fn read(pg: &mut LocalPg) -> Option<Reading> {
    let client = pg.client().await?;
    let row = client
        .query_one("SELECT pg_is_in_recovery()", &[])
        .await
        .ok()?;
    let in_recovery: bool = row.get(0);
    if in_recovery {
        let row = client
            .query_one(
                "SELECT (SELECT status = 'streaming' FROM pg_stat_wal_receiver), \
                 (SELECT received_tli FROM pg_stat_wal_receiver), \
                 (SELECT timeline_id FROM pg_control_checkpoint()), \
                 GREATEST(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::text",
                &[],
            )
            .await
            .ok()?;
        let received_tli: Option<i32> = row.get(1);
        let checkpoint_tli: Option<i32> = row.get(2);
        return Some(Reading {
            in_recovery,
            streaming: row.get::<_, Option<bool>>(0).unwrap_or(false),
            timeline: received_tli.or(checkpoint_tli).map(|t| t as u32),
            lsn: row
                .get::<_, Option<String>>(3)
                .and_then(|s| dash_pg::parse_lsn(&s)),
            standbys: Vec::new(),
            syncrep_wait_ms: 0,
            sync_names: String::new(),
        });
    }
    let row = client
        .query_one(
            "SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8), \
             pg_current_wal_lsn()::text, current_setting('synchronous_standby_names'), \
             COALESCE((SELECT (extract(epoch FROM max(now() - query_start)) * 1000)::bigint \
               FROM pg_stat_activity WHERE wait_event = 'SyncRep'), 0)",
            &[],
        )
        .await
        .ok()?;
    let tli_hex: String = row.get(0);
    let rows = client
        .query(
            "SELECT application_name, state = 'streaming', sync_state = 'sync', \
             COALESCE(flush_lsn::text, '0/0'), \
             COALESCE((extract(epoch FROM now() - reply_time) * 1000)::bigint, 1000000) \
             FROM pg_stat_replication",
            &[],
        )
        .await
        .ok()?;
    Some(Reading {
        in_recovery,
        timeline: u32::from_str_radix(&tli_hex, 16).ok(),
        lsn: dash_pg::parse_lsn(&row.get::<_, String>(1)),
        streaming: false,
        sync_names: row.get(2),
        syncrep_wait_ms: row.get::<_, i64>(3).max(0) as u64,
        standbys: rows
            .iter()
            .map(|r| StandbyRow {
                name: r.get(0),
                streaming: r.get::<_, Option<bool>>(1).unwrap_or(false),
                sync: r.get::<_, Option<bool>>(2).unwrap_or(false),
                flush_lsn: dash_pg::parse_lsn(&r.get::<_, String>(3)).unwrap_or(0),
                reply_age_ms: r.get::<_, i64>(4).max(0) as u64,
            })
            .collect(),
    })
}

pub(crate) fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line.find(key)? + key.len();
    line[start..].split([' ', '\'']).next()
}

/// `host:port` (IPv6 in brackets) into its parts; port 5432 when absent.
pub fn split_host_port(s: &str) -> (String, u16) {
    if let Some(rest) = s.strip_prefix('[') {
        if let Some((host, port)) = rest.split_once("]:") {
            return (host.to_string(), port.parse().unwrap_or(5432));
        }
        return (rest.trim_end_matches(']').to_string(), 5432);
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h.to_string(), p.parse().unwrap_or(5432)),
        _ => (s.to_string(), 5432),
    }
}
