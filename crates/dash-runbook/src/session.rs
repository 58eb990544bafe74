//! The CLI's own database sessions: one host at a time, every call under a
//! client-side deadline (a frozen server accepts TCP and then hangs).

use std::future::Future;
use std::time::Duration;

use dash_store::pool::{describe, driver_config, find_primary};
use dash_store::{DbSettings, HostPort};
use tokio_postgres::{Client, NoTls};

use super::{RunbookError, Target};

/// Deadline of one short query (probes, listings).
pub const QUERY_DEADLINE: Duration = Duration::from_secs(5);

/// Runs `f` under `limit`; a timeout or a database error names `context`.
pub async fn within<T>(
    context: &str,
    limit: Duration,
    f: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, RunbookError> {
    match tokio::time::timeout(limit, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(RunbookError::db(context, e)),
        Err(_) => Err(RunbookError::Timeout {
            context: context.to_string(),
            limit,
        }),
    }
}

/// Connects to `dbname` on `host` (the connect deadline covers TCP, the
/// handshake and authentication).
pub async fn connect(
    settings: &DbSettings,
    host: &HostPort,
    dbname: &str,
) -> Result<Client, RunbookError> {
    let mut config = driver_config(settings, host);
    config.dbname(dbname);
    let context = format!("connect to {dbname} on {host}");
    let (client, conn) = within(&context, settings.connect_timeout, config.connect(NoTls)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// A session on the writable primary.
pub struct Primary {
    pub client: Client,
    pub host: HostPort,
}

/// Finds the writable primary among the target's candidate nodes.
pub async fn primary(target: &Target) -> Result<Primary, RunbookError> {
    let settings = target.candidate_settings();
    match find_primary(&settings, None, |_| {}).await {
        Ok(found) => Ok(Primary {
            client: found.client,
            host: found.host.clone(),
        }),
        Err(errors) => Err(RunbookError::NoPrimary(describe(&errors))),
    }
}

/// `"name"` quoted as an SQL identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("dash"), "\"dash\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
