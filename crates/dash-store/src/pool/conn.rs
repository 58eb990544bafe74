//! A checked-out connection whose every call runs under the client-side
//! deadline, is timed, and poisons the connection when it fails in a way
//! that makes the connection unusable.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use deadpool::managed::Object;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

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
        guarded(&self.shared, &mut c.poisoned, c.client.query(sql, params)).await
    }

    pub async fn query_one(&mut self, sql: &str, params: Params<'_>) -> Result<Row, StoreError> {
        let c = &mut *self.obj;
        guarded(
            &self.shared,
            &mut c.poisoned,
            c.client.query_one(sql, params),
        )
        .await
    }

    pub async fn query_opt(
        &mut self,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Option<Row>, StoreError> {
        let c = &mut *self.obj;
        guarded(
            &self.shared,
            &mut c.poisoned,
            c.client.query_opt(sql, params),
        )
        .await
    }

    pub async fn execute(&mut self, sql: &str, params: Params<'_>) -> Result<u64, StoreError> {
        let c = &mut *self.obj;
        guarded(&self.shared, &mut c.poisoned, c.client.execute(sql, params)).await
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
        })
    }

    /// The host this connection is attached to.
    pub fn host(&self) -> &crate::config::HostPort {
        &self.shared.settings.hosts[self.obj.host_index]
    }
}

/// A transaction on a pooled connection; each statement is deadline-bound.
pub struct Tx<'a> {
    tx: Option<tokio_postgres::Transaction<'a>>,
    shared: &'a Shared,
    poisoned: &'a mut bool,
}

macro_rules! tx_call {
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
