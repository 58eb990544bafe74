//! Connecting to the writable primary: the candidate hosts are tried in turn
//! (staggered), each attempt under its own deadline that covers the TCP
//! connect, the startup handshake and the read-write check (a frozen server
//! accepts TCP and then hangs, so a driver-level connect timeout is not
//! enough); standbys that say no are asked again while the search lasts.

use std::time::{Duration, Instant};

use tokio_postgres::{Client, Config, NoTls};

use super::observer::ConnErrorReason;
use crate::config::{DbSettings, HostPort};
use crate::conn_failure::ConnFailure;

/// How long the preferred host has to answer before the next one is tried
/// as well (a healthy primary answers in a few milliseconds).
const HEAD_START: Duration = Duration::from_millis(100);

/// How often a standby that said no is asked again during a search (a
/// one-row query on a connection it already gave): a promotion is seen
/// within this.
const RECHECK: Duration = Duration::from_millis(25);

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

/// What one host said.
struct Answer {
    client: Client,
    writable: bool,
    /// A standby's upstream (`pg_stat_wal_receiver`), when it streams.
    upstream: Option<HostPort>,
}

/// Connects to `host` and reports whether it is a writable primary, and, if
/// it is a standby, which server it streams from.
async fn connect_one(s: &DbSettings, host: &HostPort) -> Result<Answer, AttemptError> {
    let attempt = async {
        let (client, conn) = driver_config(s, host)
            .connect(NoTls)
            .await
            .map_err(|e| failure(host, reason_of(&e), e.to_string()))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "database connection ended");
            }
        });
        ask(client, host).await
    };
    match tokio::time::timeout(s.connect_timeout, attempt).await {
        Ok(r) => r,
        Err(_) => Err(timed_out(s, host)),
    }
}

/// Asks a standby again, over the connection it already gave: a session
/// opened on a standby can write once the standby is promoted.
async fn ask_again(
    s: &DbSettings,
    client: Client,
    host: &HostPort,
) -> Result<Answer, AttemptError> {
    tokio::time::sleep(RECHECK).await;
    match tokio::time::timeout(s.connect_timeout, ask(client, host)).await {
        Ok(r) => r,
        Err(_) => Err(timed_out(s, host)),
    }
}

async fn ask(client: Client, host: &HostPort) -> Result<Answer, AttemptError> {
    let row = client
        .query_one(
            "SELECT pg_is_in_recovery(), current_setting('transaction_read_only'), \
             (SELECT sender_host FROM pg_stat_wal_receiver), \
             (SELECT sender_port FROM pg_stat_wal_receiver)",
            &[],
        )
        .await
        .map_err(|e| failure(host, reason_of(&e), e.to_string()))?;
    let in_recovery: bool = row.get(0);
    let read_only: String = row.get(1);
    let upstream = match (
        row.get::<_, Option<String>>(2),
        row.get::<_, Option<i32>>(3),
    ) {
        // A Unix socket path is this machine's, not a host to try.
        (Some(h), Some(p)) if !h.starts_with('/') && (1..=65535).contains(&p) => Some(HostPort {
            host: h,
            port: p as u16,
        }),
        _ => None,
    };
    Ok(Answer {
        client,
        writable: !in_recovery && read_only == "off",
        upstream,
    })
}

fn failure(host: &HostPort, reason: ConnErrorReason, detail: String) -> AttemptError {
    AttemptError {
        host: host.clone(),
        reason,
        detail,
    }
}

fn timed_out(s: &DbSettings, host: &HostPort) -> AttemptError {
    failure(
        host,
        ConnErrorReason::Timeout,
        format!("no answer within {:?}", s.connect_timeout),
    )
}

fn reason_of(e: &tokio_postgres::Error) -> ConnErrorReason {
    ConnFailure::of(e).into()
}

/// The result of a successful search for the primary.
pub struct Found {
    pub client: Client,
    /// Index into the listed hosts; `hosts.len()` and up for a host reached
    /// by following a standby to its upstream.
    pub host_index: usize,
    pub host: HostPort,
    pub took: Duration,
}

/// Tries every host, starting with `prefer` (the last known primary), and
/// returns the first writable primary, or every host's last failure. The
/// next host is tried as soon as one says no, or after a short head start
/// while one is silent, so a partitioned or frozen old primary costs ~100 ms
/// instead of a whole connect timeout. A standby that says no is asked
/// again every [`RECHECK`] over its open connection until the connect
/// timeout has passed since the search began, so a standby promoted
/// meanwhile is found within [`RECHECK`], not after the silent host's
/// timeout and a new search. A standby that names the server it streams
/// from leads there too (index `hosts.len()` and up), so a list that holds
/// only replicas — the runbook's `DATABASE_HOST=postgres-replica` patch —
/// still reaches the primary.
pub async fn find_primary(
    s: &DbSettings,
    prefer: Option<usize>,
    mut on_error: impl FnMut(&AttemptError),
) -> Result<Found, Vec<AttemptError>> {
    use futures::future::BoxFuture;
    use futures::stream::{FuturesUnordered, StreamExt};
    use futures::FutureExt;

    type Step<'a> = BoxFuture<'a, (usize, HostPort, Result<Answer, AttemptError>)>;

    let started = Instant::now();
    let recheck_until = started + s.connect_timeout;
    let n = s.hosts.len();
    let first = prefer.filter(|i| *i < n).unwrap_or(0);
    let mut candidates: Vec<(usize, HostPort)> = (0..n)
        .map(|k| (first + k) % n)
        .map(|i| (i, s.hosts[i].clone()))
        .collect();
    let attempt = |(i, host): (usize, HostPort)| -> Step<'_> {
        async move {
            let outcome = connect_one(s, &host).await;
            (i, host, outcome)
        }
        .boxed()
    };
    let recheck = |i: usize, host: HostPort, client: Client| -> Step<'_> {
        async move {
            let outcome = ask_again(s, client, &host).await;
            (i, host, outcome)
        }
        .boxed()
    };
    let mut pending = FuturesUnordered::new();
    let mut next = 0;
    // The last failure of each host; a host's first one is reported.
    let mut errors: Vec<AttemptError> = Vec::new();
    let mut note = |e: AttemptError, errors: &mut Vec<AttemptError>| match errors
        .iter_mut()
        .find(|old| old.host == e.host)
    {
        Some(old) => *old = e,
        None => {
            on_error(&e);
            errors.push(e);
        }
    };
    loop {
        if pending.is_empty() {
            if next >= candidates.len() {
                return Err(errors);
            }
            pending.push(attempt(candidates[next].clone()));
            next += 1;
        }
        // Staggered, like happy eyeballs: a host that has not answered
        // within the head start (hung, partitioned, slow) no longer holds
        // up the next one; every attempt keeps its own deadline.
        let head_start = tokio::time::sleep(HEAD_START);
        tokio::pin!(head_start);
        tokio::select! {
            done = pending.next() => {
                let Some((i, host, outcome)) = done else { continue };
                match outcome {
                    Ok(a) if a.writable => {
                        return Ok(Found {
                            client: a.client,
                            host_index: i,
                            host,
                            took: started.elapsed(),
                        })
                    }
                    Ok(a) => {
                        note(failure(&host, ConnErrorReason::ReadOnly, "node is a standby or read-only".into()), &mut errors);
                        let known = |h: &HostPort| candidates.iter().any(|(_, c)| c == h);
                        if let Some(up) = a.upstream.filter(|u| !known(u)) {
                            // Bounded: at most as many followed hosts as listed ones.
                            if candidates.len() < 2 * n.max(1) {
                                let index = candidates.len();
                                candidates.push((index, up));
                            }
                        }
                        if Instant::now() + RECHECK < recheck_until {
                            pending.push(recheck(i, host, a.client));
                        }
                    }
                    Err(e) => note(e, &mut errors),
                }
                // A host that answered no: try the next at once.
                if next < candidates.len() {
                    pending.push(attempt(candidates[next].clone()));
                    next += 1;
                }
            }
            _ = &mut head_start, if next < candidates.len() => {
                pending.push(attempt(candidates[next].clone()));
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
