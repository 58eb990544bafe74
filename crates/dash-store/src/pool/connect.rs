//! Connecting to the writable primary: each candidate host is tried in turn,
//! each attempt under its own deadline that covers the TCP connect, the
//! startup handshake and the read-write check (a frozen server accepts TCP
//! and then hangs, so a driver-level connect timeout is not enough).

use std::time::{Duration, Instant};

use tokio_postgres::{Client, Config, NoTls};

use super::observer::ConnErrorReason;

/// How long the preferred host has to answer before the next one is tried
/// as well (a healthy primary answers in a few milliseconds).
const HEAD_START: Duration = Duration::from_millis(100);
use crate::config::{DbSettings, HostPort};
use crate::conn_failure::ConnFailure;

/// A connection attempt to one host that did not yield a writable primary.
#[derive(Debug, Clone)]
pub struct AttemptError {
    pub host: HostPort,
    pub reason: ConnErrorReason,
    pub detail: String,
}

/// Builds the driver config for one host. Session settings travel in the
/// startup packet, so a new connection needs no extra round trip.
pub fn driver_config(s: &DbSettings, host: &HostPort) -> Config {
    let mut c = Config::new();
    c.host(&host.host)
        .port(host.port)
        .user(&s.user)
        .dbname(&s.dbname)
        .application_name(&s.application_name)
        .connect_timeout(s.connect_timeout)
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(5))
        .keepalives_interval(Duration::from_secs(1))
        .keepalives_retries(3)
        .tcp_user_timeout(s.query_timeout)
        .options(format!(
            "-c statement_timeout={} -c idle_in_transaction_session_timeout={} -c lock_timeout={}",
            s.statement_timeout.as_millis(),
            s.idle_in_transaction_timeout.as_millis(),
            s.statement_timeout.as_millis(),
        ));
    if !s.password.is_empty() {
        c.password(s.password.expose());
    }
    c
}

/// Connects to `host` and reports whether it is a writable primary.
async fn connect_one(s: &DbSettings, host: &HostPort) -> Result<(Client, bool), AttemptError> {
    let fail = |reason, detail: String| AttemptError {
        host: host.clone(),
        reason,
        detail,
    };
    let attempt = async {
        let (client, conn) = driver_config(s, host)
            .connect(NoTls)
            .await
            .map_err(|e| fail(reason_of(&e), e.to_string()))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "database connection ended");
            }
        });
        let row = client
            .query_one(
                "SELECT pg_is_in_recovery(), current_setting('transaction_read_only')",
                &[],
            )
            .await
            .map_err(|e| fail(reason_of(&e), e.to_string()))?;
        let in_recovery: bool = row.get(0);
        let read_only: String = row.get(1);
        Ok((client, !in_recovery && read_only == "off"))
    };
    match tokio::time::timeout(s.connect_timeout, attempt).await {
        Ok(r) => r,
        Err(_) => Err(fail(
            ConnErrorReason::Timeout,
            format!("no answer within {:?}", s.connect_timeout),
        )),
    }
}

fn reason_of(e: &tokio_postgres::Error) -> ConnErrorReason {
    ConnFailure::of(e).into()
}

/// The result of a successful search for the primary.
pub struct Found {
    pub client: Client,
    pub host_index: usize,
    pub took: Duration,
}

/// Tries every host, starting with `prefer` (the last known primary), and
/// returns the first writable primary, or every attempt's failure. The next
/// host is tried as soon as one says no, or after a short head start while
/// one is silent, so a partitioned or frozen old primary costs ~100 ms
/// instead of a whole connect timeout.
pub async fn find_primary(
    s: &DbSettings,
    prefer: Option<usize>,
    mut on_error: impl FnMut(&AttemptError),
) -> Result<Found, Vec<AttemptError>> {
    use futures::stream::{FuturesUnordered, StreamExt};

    let started = Instant::now();
    let n = s.hosts.len();
    let first = prefer.filter(|i| *i < n).unwrap_or(0);
    let order: Vec<usize> = (0..n).map(|k| (first + k) % n).collect();
    let attempt = |i: usize| async move { (i, connect_one(s, &s.hosts[i]).await) };
    let mut pending = FuturesUnordered::new();
    let mut next = 0;
    let mut errors = Vec::new();
    loop {
        if pending.is_empty() {
            if next >= n {
                return Err(errors);
            }
            pending.push(attempt(order[next]));
            next += 1;
        }
        // Staggered, like happy eyeballs: a host that has not answered
        // within the head start (hung, partitioned, slow) no longer holds
        // up the next one; every attempt keeps its own deadline.
        let head_start = tokio::time::sleep(HEAD_START);
        tokio::pin!(head_start);
        tokio::select! {
            done = pending.next() => {
                let Some((i, outcome)) = done else { continue };
                match outcome {
                    Ok((client, true)) => {
                        return Ok(Found {
                            client,
                            host_index: i,
                            took: started.elapsed(),
                        })
                    }
                    Ok((_client, false)) => {
                        let e = AttemptError {
                            host: s.hosts[i].clone(),
                            reason: ConnErrorReason::ReadOnly,
                            detail: "node is a standby or read-only".into(),
                        };
                        on_error(&e);
                        errors.push(e);
                    }
                    Err(e) => {
                        on_error(&e);
                        errors.push(e);
                    }
                }
                // A host that answered no: try the next at once.
                if next < n {
                    pending.push(attempt(order[next]));
                    next += 1;
                }
            }
            _ = &mut head_start, if next < n => {
                pending.push(attempt(order[next]));
                next += 1;
            }
        }
    }
}

/// One line that names each host and why it was not usable.
pub fn describe(errors: &[AttemptError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}: {} ({})", e.host, e.reason.as_str(), e.detail))
        .collect::<Vec<_>>()
        .join("; ")
}
