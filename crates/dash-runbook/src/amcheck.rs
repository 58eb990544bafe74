//! `dashctl db diagnose --deep`: `amcheck` over the database. Every B-tree index
//! is checked with `bt_index_check(index, heapallindexed => true)` (which
//! also reads every heap page, so a page with a bad checksum shows up), and
//! every table with `verify_heapam` where the server has it (PostgreSQL 14+).

use std::time::Duration;

use serde::Serialize;
use tokio_postgres::Client;

use super::backup::tables;
use super::probe::error_text;
use super::session::{within, QUERY_DEADLINE};

/// Deadline of one relation's check.
const CHECK_DEADLINE: Duration = Duration::from_secs(600);
/// Problems reported per table by `verify_heapam`.
const HEAP_PROBLEMS: i64 = 5;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Amcheck {
    pub indexes_checked: usize,
    pub tables_checked: usize,
    /// One line per corrupt relation.
    pub failures: Vec<String>,
    /// Why amcheck could not run (not installed, no privilege).
    pub unavailable: Option<String>,
}

impl Amcheck {
    /// It ran and found nothing corrupt.
    pub fn ok(&self) -> bool {
        self.unavailable.is_none() && self.failures.is_empty()
    }

    /// Could not run at all, for `reason`.
    pub fn failed(reason: &str) -> Amcheck {
        Amcheck {
            unavailable: Some(reason.to_string()),
            ..Amcheck::default()
        }
    }

    /// One line: what was checked and what it found.
    pub fn summary(&self) -> String {
        match (&self.unavailable, self.failures.len()) {
            (Some(why), _) => format!("did not run ({why})"),
            (None, 0) => format!(
                "ok ({} index(es), {} table(s))",
                self.indexes_checked, self.tables_checked
            ),
            (None, n) => format!("{n} corrupt relation(s): {}", self.failures.join("; ")),
        }
    }
}

/// Runs amcheck on the database `client` is connected to (creating the
/// extension if needed; that needs a superuser, which Dash's clusters use).
pub async fn amcheck(client: &Client) -> Amcheck {
    let mut report = Amcheck::default();
    let created = within(
        "CREATE EXTENSION amcheck",
        QUERY_DEADLINE,
        client.batch_execute("CREATE EXTENSION IF NOT EXISTS amcheck"),
    )
    .await;
    if let Err(e) = created {
        report.unavailable = Some(dash_core::error_chain(&e));
        return report;
    }
    let indexes = within(
        "list B-tree indexes",
        QUERY_DEADLINE,
        client.query(
            "SELECT c.oid::regclass::text FROM pg_index i
             JOIN pg_class c ON c.oid = i.indexrelid
             JOIN pg_am am ON am.oid = c.relam
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE am.amname = 'btree' AND i.indisready AND i.indisvalid
               AND c.relpersistence <> 't'
               AND n.nspname NOT IN ('pg_catalog', 'information_schema')
               AND n.nspname NOT LIKE 'pg\\_%'
             ORDER BY 1",
            &[],
        ),
    )
    .await;
    let indexes: Vec<String> = match indexes {
        Ok(rows) => rows.iter().map(|r| r.get(0)).collect(),
        Err(e) => {
            report.unavailable = Some(dash_core::error_chain(&e));
            return report;
        }
    };
    for index in indexes {
        let checked = tokio::time::timeout(
            CHECK_DEADLINE,
            client.execute("SELECT bt_index_check($1::text::regclass, true)", &[&index]),
        )
        .await;
        report.indexes_checked += 1;
        match checked {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => report
                .failures
                .push(format!("index {index}: {}", error_text(&e))),
            Err(_) => report.failures.push(format!(
                "index {index}: no answer within {CHECK_DEADLINE:?}"
            )),
        }
    }

    let has_heapam = client
        .query_one(
            "SELECT to_regprocedure('verify_heapam(regclass,boolean,boolean,text,bigint,bigint)') IS NOT NULL",
            &[],
        )
        .await
        .map(|r| r.get::<_, bool>(0))
        .unwrap_or(false);
    if !has_heapam {
        return report;
    }
    let tables = match tables(client).await {
        Ok(t) => t,
        Err(e) => {
            report.failures.push(format!("list tables: {e}"));
            return report;
        }
    };
    for (name, sql_name) in tables {
        let checked = tokio::time::timeout(
            CHECK_DEADLINE,
            client.query(
                "SELECT blkno, coalesce(offnum, 0)::int4, msg
                 FROM verify_heapam($1::text::regclass) LIMIT $2",
                &[&sql_name, &HEAP_PROBLEMS],
            ),
        )
        .await;
        report.tables_checked += 1;
        match checked {
            Ok(Ok(rows)) => {
                for r in rows {
                    let (block, offset, msg): (i64, i32, String) = (r.get(0), r.get(1), r.get(2));
                    report
                        .failures
                        .push(format!("table {name}: block {block} item {offset}: {msg}"));
                }
            }
            Ok(Err(e)) => report
                .failures
                .push(format!("table {name}: {}", error_text(&e))),
            Err(_) => report
                .failures
                .push(format!("table {name}: no answer within {CHECK_DEADLINE:?}")),
        }
    }
    report
}
