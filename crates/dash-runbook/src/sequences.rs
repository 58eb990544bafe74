//! Sequences behind their column: a `pg_restore` into a live database (the
//! runbook's raw line) fails on the CREATEs but still runs the dump's
//! `setval`, rewinding e.g. `public.events_id_seq` below ids already in
//! `public.events`; every insert then fails with a duplicate key until the
//! sequence passes the highest id. `diagnose` reads every sequence owned by a
//! column (serial or identity) outside the system schemas; `restore` moves
//! the ones behind past their column's maximum.

use serde::Serialize;
use tokio_postgres::Client;

use super::session::{quote_ident, within, QUERY_DEADLINE};

/// Reserved words that cannot stand unquoted as a column or table name.
const RESERVED: &[&str] = &[
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "both",
    "case",
    "cast",
    "check",
    "collate",
    "column",
    "constraint",
    "create",
    "current_user",
    "default",
    "deferrable",
    "desc",
    "distinct",
    "do",
    "else",
    "end",
    "except",
    "false",
    "fetch",
    "for",
    "foreign",
    "from",
    "grant",
    "group",
    "having",
    "in",
    "initially",
    "intersect",
    "into",
    "lateral",
    "leading",
    "limit",
    "not",
    "null",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "placing",
    "primary",
    "references",
    "returning",
    "select",
    "session_user",
    "some",
    "symmetric",
    "table",
    "then",
    "to",
    "trailing",
    "true",
    "union",
    "unique",
    "user",
    "using",
    "variadic",
    "when",
    "where",
    "window",
    "with",
];
use super::RunbookError;

/// One sequence and the column it feeds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SequenceState {
    /// `schema.sequence`.
    pub sequence: String,
    /// `schema.table.column`.
    pub column: String,
    /// The value `nextval` hands out next.
    pub next_value: i64,
    /// The column's highest value (lowest for a descending sequence); `None`
    /// when the table is empty.
    pub column_edge: Option<i64>,
    /// Negative for a descending sequence.
    pub increment: i64,
    /// SQL that moves the sequence past its column (only used when behind).
    pub fix_sql: String,
}

impl SequenceState {
    /// `nextval` would hand out a value the column already holds (or one
    /// below it): inserts that take their id from it can collide.
    pub fn behind(&self) -> bool {
        match (self.column_edge, self.increment >= 0) {
            (Some(max), true) => self.next_value <= max,
            (Some(min), false) => self.next_value >= min,
            (None, _) => false,
        }
    }

    /// One line of evidence for a sequence that is behind.
    pub fn describe(&self) -> String {
        format!(
            "sequence {} hands out {} next, but {} already holds {}: inserts fail with a duplicate key until it passes {}",
            self.sequence,
            self.next_value,
            self.column,
            self.column_edge.unwrap_or_default(),
            self.column_edge.unwrap_or_default(),
        )
    }

    /// The fix as a command line: the SQL through `dashctl psql`.
    pub fn fix_command(&self) -> String {
        format!("dashctl psql -- -c {}", shell_quote(&self.fix_sql))
    }
}

/// Every sequence owned by a column outside the system schemas, with the
/// value it hands out next and its column's edge.
pub async fn read(client: &Client) -> Result<Vec<SequenceState>, RunbookError> {
    let rows = within(
        "list the sequences owned by columns",
        QUERY_DEADLINE,
        client.query(
            "SELECT sn.nspname::text, s.relname::text, tn.nspname::text, t.relname::text,
                    a.attname::text, q.seqincrement
             FROM pg_class s
             JOIN pg_namespace sn ON sn.oid = s.relnamespace
             JOIN pg_sequence q ON q.seqrelid = s.oid
             JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = s.oid
                  AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
             JOIN pg_class t ON t.oid = d.refobjid
             JOIN pg_namespace tn ON tn.oid = t.relnamespace
             JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
             WHERE s.relkind = 'S'
               AND tn.nspname NOT IN ('pg_catalog', 'information_schema')
               AND tn.nspname NOT LIKE 'pg\\_%'
             ORDER BY 1, 2",
            &[],
        ),
    )
    .await?;
    let mut out = Vec::new();
    for r in rows {
        let (seq_schema, seq, schema, table, column): (String, String, String, String, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
        let increment: i64 = r.get(5);
        let seq_sql = format!("{}.{}", ident(&seq_schema), ident(&seq));
        let table_sql = format!("{}.{}", ident(&schema), ident(&table));
        let edge = if increment >= 0 { "max" } else { "min" };
        let col = ident(&column);
        let row = within(
            "read a sequence and its column",
            QUERY_DEADLINE,
            client.query_one(
                &format!(
                    "SELECT CASE WHEN is_called THEN last_value + {increment} ELSE last_value END,
                            (SELECT {edge}({col})::bigint FROM {table_sql})
                     FROM {seq_sql}"
                ),
                &[],
            ),
        )
        .await?;
        out.push(SequenceState {
            sequence: format!("{seq_schema}.{seq}"),
            column: format!("{schema}.{table}.{column}"),
            next_value: row.get(0),
            column_edge: row.get(1),
            increment,
            fix_sql: format!(
                "SELECT setval({}, {edge}({col})) FROM {table_sql}",
                quote_literal(&seq_sql)
            ),
        });
    }
    Ok(out)
}

/// What `restore` found and did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SequenceRepair {
    /// Every sequence checked.
    pub checked: usize,
    /// Those that were behind, as they were before they were moved.
    pub advanced: Vec<SequenceState>,
}

impl SequenceRepair {
    pub fn summary(&self) -> String {
        let moved: Vec<String> = (self.advanced.iter())
            .map(|s| {
                format!(
                    "{} was at {} behind {} {}: moved past it",
                    s.sequence,
                    s.next_value,
                    s.column,
                    s.column_edge.unwrap_or_default()
                )
            })
            .collect();
        match moved.is_empty() {
            true => format!(
                "{} sequence(s), each at or past its column's maximum",
                self.checked
            ),
            false => format!(
                "{} sequence(s), each now at or past its column's maximum ({})",
                self.checked,
                moved.join("; ")
            ),
        }
    }
}

/// Moves every sequence that is behind past its column (`setval` to the
/// column's edge), then reads them all again: an error if one is still behind.
pub async fn advance_behind(client: &Client) -> Result<SequenceRepair, RunbookError> {
    let before = read(client).await?;
    let advanced: Vec<SequenceState> = before.iter().filter(|s| s.behind()).cloned().collect();
    for s in &advanced {
        within(
            "move a sequence past its column",
            QUERY_DEADLINE,
            client.batch_execute(&s.fix_sql),
        )
        .await?;
    }
    let after = read(client).await?;
    if let Some(s) = after.iter().find(|s| s.behind()) {
        return Err(RunbookError::Invalid(format!(
            "still behind after setval: {}",
            s.describe()
        )));
    }
    Ok(SequenceRepair {
        checked: after.len(),
        advanced,
    })
}

/// An SQL identifier, quoted only when it has to be (so the printed fix
/// reads like the runbook's SQL).
fn ident(name: &str) -> String {
    let plain = name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !RESERVED.contains(&name);
    match plain {
        true => name.to_string(),
        false => quote_ident(name),
    }
}

/// `'text'` as an SQL string literal.
fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A word for a POSIX shell: double quotes when nothing in it expands there,
/// else single quotes.
fn shell_quote(s: &str) -> String {
    match s.contains(['"', '$', '`', '\\', '!']) {
        false => format!("\"{s}\""),
        true => format!("'{}'", s.replace('\'', r"'\''")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(next: i64, edge: Option<i64>, increment: i64) -> SequenceState {
        SequenceState {
            sequence: "public.events_id_seq".into(),
            column: "public.events.id".into(),
            next_value: next,
            column_edge: edge,
            increment,
            fix_sql: "SELECT setval('public.events_id_seq', max(id)) FROM public.events".into(),
        }
    }

    #[test]
    fn a_sequence_is_behind_when_its_next_value_is_taken() {
        assert!(seq(5, Some(120), 1).behind());
        assert!(seq(120, Some(120), 1).behind());
        assert!(!seq(121, Some(120), 1).behind());
        assert!(!seq(1, None, 1).behind(), "an empty table");
        assert!(seq(-5, Some(-9), -1).behind(), "descending");
        assert!(!seq(-10, Some(-9), -1).behind());
    }

    #[test]
    fn the_fix_is_one_shell_word_for_dashctl_psql() {
        let cmd = seq(5, Some(120), 1).fix_command();
        assert_eq!(
            cmd,
            r#"dashctl psql -- -c "SELECT setval('public.events_id_seq', max(id)) FROM public.events""#
        );
        assert_eq!(ident("events_id_seq"), "events_id_seq");
        assert_eq!(ident("Events"), r#""Events""#);
        assert_eq!(ident("order"), r#""order""#);
        assert_eq!(
            shell_quote(r#"SELECT max("Id") FROM t"#),
            r#"'SELECT max("Id") FROM t'"#
        );
        assert_eq!(shell_quote("it's \"x\""), r#"'it'\''s "x"'"#);
        assert_eq!(quote_literal("it's"), "'it''s'");
    }
}
