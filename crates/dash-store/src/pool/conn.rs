//! A checked-out connection whose every call runs under the client-side
//! deadline, is timed, and poisons the connection when it fails in a way
//! that makes the connection unusable.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use deadpool::managed::Object;
use tokio_postgres::types::ToSql;
use tokio_postgres::{GenericClient, Row, Statement};

use super::{ConnErrorReason, Manager, Shared};
use crate::error::{classify, StoreError};

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// Runs one driver call under the deadline, classifies its failure and
/// poisons the connection (and retires the pool) when the failure says the
/// node is gone, hung or demoted.
async fn guarded<T>(
    shared: &Shared,
    poisoned: &mut bool,
    fut: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, StoreError> {
    let limit = shared.settings.query_timeout;
    let started = Instant::now();
    // Poisoned while the call is in flight: if the caller's future is dropped
    // mid-call (a request timeout, a client that hung up), the connection still
    // has a statement running and must not go back into the pool.
    let was_poisoned = std::mem::replace(poisoned, true);
    let result = match tokio::time::timeout(limit, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(classify(e)),
        Err(_) => Err(StoreError::Deadline(limit)),
    };
    shared.observer.query(started.elapsed());
    *poisoned = was_poisoned;
    if let Err(e) = &result {
        if e.poisons_connection() {
            *poisoned = true;
            shared.retire_all();
            shared.observer.connection_error(match e {
                StoreError::ReadOnly(_) => ConnErrorReason::ReadOnly,
                StoreError::Deadline(_) => ConnErrorReason::Timeout,
                _ => ConnErrorReason::Lost,
            });
        }
    }
    result
}

/// Prepared statements of one connection, by SQL text. Preparing once per
/// connection instead of per call halves the round trips and skips a parse
/// and plan on the server for every statement after the first. The keys
/// are Dash's own SQL (never a caller's), so the fast non-keyed Fx hash
/// replaces SipHash, which cost ~1,100 instructions per call on a 250-byte
/// statement (callgrind).
pub(crate) type StmtCache = rustc_hash::FxHashMap<String, Statement>;

async fn prepared<C: GenericClient>(
    shared: &Shared,
    poisoned: &mut bool,
    stmts: &mut StmtCache,
    client: &C,
    sql: &str,
) -> Result<Statement, StoreError> {
    if let Some(st) = stmts.get(sql) {
        return Ok(st.clone());
    }
    let st = guarded(shared, poisoned, client.prepare(sql)).await?;
    stmts.insert(sql.to_string(), st.clone());
    Ok(st)
}

/// A cached plan that no longer fits the table (it was dropped and created
/// again, as a restore does) fails with 0A000: retire this connection and
/// its cache so the next call prepares afresh.
fn forget_stale_plans<T>(result: &Result<T, StoreError>, poisoned: &mut bool) {
    if let Err(StoreError::Db(e)) = result {
        if e.code() == Some(&tokio_postgres::error::SqlState::FEATURE_NOT_SUPPORTED) {
            *poisoned = true;
        }
    }
}

/// A pooled connection to the primary, returned to the pool on drop.
pub struct Conn {
    obj: Object<Manager>,
    shared: Arc<Shared>,
}

impl Conn {
    pub(super) fn new(obj: Object<Manager>, shared: Arc<Shared>) -> Conn {
        Conn { obj, shared }
    }

    pub async fn query(&mut self, sql: &str, params: Params<'_>) -> Result<Vec<Row>, StoreError> {
        let c = &mut *self.obj;
        let st = prepared(&self.shared, &mut c.poisoned, &mut c.stmts, &c.client, sql).await?;
        let r = guarded(&self.shared, &mut c.poisoned, c.client.query(&st, params)).await;
        forget_stale_plans(&r, &mut c.poisoned);
        r
    }

    pub async fn query_one(&mut self, sql: &str, params: Params<'_>) -> Result<Row, StoreError> {
        let c = &mut *self.obj;
        let st = prepared(&self.shared, &mut c.poisoned, &mut c.stmts, &c.client, sql).await?;
        let r = guarded(
            &self.shared,
            &mut c.poisoned,
            c.client.query_one(&st, params),
        )
        .await;
        forget_stale_plans(&r, &mut c.poisoned);
        r
    }

    pub async fn query_opt(
        &mut self,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Option<Row>, StoreError> {
        let c = &mut *self.obj;
        let st = prepared(&self.shared, &mut c.poisoned, &mut c.stmts, &c.client, sql).await?;
        let r = guarded(
            &self.shared,
            &mut c.poisoned,
            c.client.query_opt(&st, params),
        )
        .await;
        forget_stale_plans(&r, &mut c.poisoned);
        r
    }

    pub async fn execute(&mut self, sql: &str, params: Params<'_>) -> Result<u64, StoreError> {
        let c = &mut *self.obj;
        let st = prepared(&self.shared, &mut c.poisoned, &mut c.stmts, &c.client, sql).await?;
        let r = guarded(&self.shared, &mut c.poisoned, c.client.execute(&st, params)).await;
        forget_stale_plans(&r, &mut c.poisoned);
        r
    }

    pub async fn batch_execute(&mut self, sql: &str) -> Result<(), StoreError> {
        let c = &mut *self.obj;
        guarded(&self.shared, &mut c.poisoned, c.client.batch_execute(sql)).await
    }

    /// Starts a transaction. Dropping the `Tx` without `commit` rolls it back.
    pub async fn transaction(&mut self) -> Result<Tx<'_>, StoreError> {
        let shared = &*self.shared;
        let c = &mut *self.obj;
        let tx = guarded(shared, &mut c.poisoned, c.client.transaction()).await?;
        Ok(Tx {
            tx: Some(tx),
            shared,
            poisoned: &mut c.poisoned,
            stmts: &mut c.stmts,
        })
    }

    /// The host this connection is attached to.
    pub fn host(&self) -> &crate::config::HostPort {
        &self.obj.host
    }
}

/// A transaction on a pooled connection; each statement is deadline-bound.
pub struct Tx<'a> {
    tx: Option<tokio_postgres::Transaction<'a>>,
    shared: &'a Shared,
    poisoned: &'a mut bool,
    stmts: &'a mut StmtCache,
}

macro_rules! tx_call {
    ($self:ident, $method:ident ( $sql:expr, $params:expr )) => {{
        let tx = $self.tx.as_ref().expect("transaction used after commit");
        let st = prepared($self.shared, $self.poisoned, $self.stmts, tx, $sql).await?;
        let r = guarded($self.shared, $self.poisoned, tx.$method(&st, $params)).await;
        forget_stale_plans(&r, $self.poisoned);
        r
    }};
    ($self:ident, $method:ident ( $($arg:expr),* )) => {{
        let tx = $self.tx.as_ref().expect("transaction used after commit");
        guarded($self.shared, $self.poisoned, tx.$method($($arg),*)).await
    }};
}

impl Tx<'_> {
    pub async fn query(&mut self, sql: &str, params: Params<'_>) -> Result<Vec<Row>, StoreError> {
        tx_call!(self, query(sql, params))
    }

    pub async fn query_one(&mut self, sql: &str, params: Params<'_>) -> Result<Row, StoreError> {
        tx_call!(self, query_one(sql, params))
    }

    pub async fn query_opt(
        &mut self,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Option<Row>, StoreError> {
        tx_call!(self, query_opt(sql, params))
    }

    pub async fn execute(&mut self, sql: &str, params: Params<'_>) -> Result<u64, StoreError> {
        tx_call!(self, execute(sql, params))
    }

    pub async fn batch_execute(&mut self, sql: &str) -> Result<(), StoreError> {
        tx_call!(self, batch_execute(sql))
    }

    /// Commits. On a deadline or a lost connection the outcome is unknown:
    /// the caller learns that from the error kind (`Deadline`, `ConnectionLost`).
    pub async fn commit(mut self) -> Result<(), StoreError> {
        let tx = self.tx.take().expect("transaction committed twice");
        guarded(self.shared, self.poisoned, tx.commit()).await
    }
}
