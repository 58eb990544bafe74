//! Probing one node: a kept-open connection, each probe under a deadline,
//! telling refused (dead) from no answer (hung).

use std::time::{Duration, Instant};

use dash_store::ConnFailure;
use tokio_postgres::{Client, Config, NoTls};

use super::decide::{parse_lsn, Observation, Probe};
use super::topology::{NodeInfo, Topology};

const PROBE_SQL: &str = "SELECT pg_is_in_recovery(),
    (CASE WHEN pg_is_in_recovery() THEN greatest(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())
          ELSE pg_current_wal_flush_lsn() END)::text,
    coalesce((SELECT string_agg(application_name, ',') FROM pg_stat_replication WHERE state = 'streaming'), ''),
    current_setting('synchronous_standby_names')";

/// A probe channel to one node.
pub struct Prober {
    config: Config,
    client: Option<Client>,
    pub deadline: Duration,
}

impl Prober {
    pub fn new(topo: &Topology, node: &NodeInfo, deadline: Duration) -> Prober {
        let mut config = topo.pg_config(node, "postgres");
        config
            .application_name("dash-supervisor")
            .connect_timeout(deadline);
        Prober {
            config,
            client: None,
            deadline,
        }
    }

    /// Drops the kept connection (the node changed role or was fenced).
    pub fn reset(&mut self) {
        self.client = None;
    }

    /// The kept connection, for the supervisor's own statements (promote, reload).
    pub fn client(&self) -> Option<&Client> {
        self.client.as_ref()
    }

    pub async fn probe(&mut self) -> Probe {
        let started = Instant::now();
        let deadline = self.deadline;
        let result = tokio::time::timeout(deadline, self.probe_inner()).await;
        match result {
            Ok(Ok(mut o)) => {
                o.took = started.elapsed();
                Probe::Up(o)
            }
            Ok(Err(p)) => {
                self.client = None;
                p
            }
            Err(_) => {
                self.client = None;
                Probe::TimedOut
            }
        }
    }

    async fn probe_inner(&mut self) -> Result<Observation, Probe> {
        if self.client.as_ref().is_none_or(|c| c.is_closed()) {
            let (client, conn) = self.config.connect(NoTls).await.map_err(|e| classify(&e))?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            self.client = Some(client);
        }
        let client = self.client.as_ref().expect("just set");
        let row = client
            .query_one(PROBE_SQL, &[])
            .await
            .map_err(|e| classify(&e))?;
        let lsn: Option<String> = row.get(1);
        let streaming: String = row.get(2);
        Ok(Observation {
            in_recovery: row.get(0),
            lsn: lsn.as_deref().and_then(parse_lsn).unwrap_or(0),
            streaming: streaming
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            sync_names: row.get(3),
            took: Duration::ZERO,
        })
    }
}

/// A failure is a timeout (hung) when a deadline passed, on our side or
/// the server's; anything else is refused (dead).
fn classify(e: &tokio_postgres::Error) -> Probe {
    match ConnFailure::of(e) {
        ConnFailure::Timeout | ConnFailure::ServerTimeout => Probe::TimedOut,
        _ => Probe::Refused,
    }
}
