//! What a runtime says on stdout. A line that is a JSON object with a
//! `"dash"` key is a report; every other line is output, streamed back as
//! the agent's log.
//!
//! ```text
//! {"dash":"usage","message_id":"msg_01","tokens":1200,"cost":0.018,"progress":0.4}
//! {"dash":"progress","progress":0.5,"message":"tests pass"}
//! {"dash":"result","result":{"pr":"https://..."}}
//! ```
//!
//! `cost` is a delta: what this message cost. `message_id` makes a report
//! idempotent: the worker may send it again (across a database failover),
//! and it is charged once.

use serde::Deserialize;
use serde_json::Value;

/// The longest line kept (longer ones are cut, marked with `…`).
pub const MAX_LINE: usize = 8 * 1024;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "dash", rename_all = "snake_case", deny_unknown_fields)]
pub enum Report {
    Usage {
        message_id: String,
        #[serde(default)]
        tokens: i64,
        #[serde(default)]
        cost: f64,
        progress: Option<f64>,
    },
    Progress {
        progress: Option<f64>,
        message: Option<String>,
    },
    Result {
        result: Value,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    Report(Report),
    /// A report that does not parse: logged, with why.
    BadReport(String, String),
    Output(String),
}

/// `line` cut to [`MAX_LINE`] bytes on a character boundary, without NULs
/// (which PostgreSQL's `jsonb` refuses).
pub fn clean(line: &str) -> String {
    let mut s: String = line.chars().filter(|c| *c != '\0').collect();
    if s.len() > MAX_LINE {
        let mut cut = MAX_LINE;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

/// Classifies one stdout line.
pub fn parse(line: &str) -> Line {
    let trimmed = line.trim();
    let is_report = trimmed.starts_with('{')
        && serde_json::from_str::<Value>(trimmed).is_ok_and(|v| v.get("dash").is_some());
    if !is_report {
        return Line::Output(clean(line));
    }
    match serde_json::from_str::<Report>(trimmed) {
        Ok(r) => Line::Report(r),
        Err(e) => Line::BadReport(clean(line), e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_output_and_bad_reports_are_told_apart() {
        assert_eq!(
            parse(r#"{"dash":"usage","message_id":"m1","tokens":5,"cost":0.25}"#),
            Line::Report(Report::Usage {
                message_id: "m1".into(),
                tokens: 5,
                cost: 0.25,
                progress: None
            })
        );
        assert!(matches!(
            parse(r#"{"dash":"result","result":{"ok":true}}"#),
            Line::Report(Report::Result { .. })
        ));
        assert_eq!(parse("plain text"), Line::Output("plain text".into()));
        assert_eq!(
            parse(r#"{"other":1}"#),
            Line::Output(r#"{"other":1}"#.into())
        );
        assert!(matches!(parse(r#"{"dash":"usage"}"#), Line::BadReport(..)));
        assert!(matches!(
            parse(r#"{"dash":"nuke","x":1}"#),
            Line::BadReport(..)
        ));
    }

    #[test]
    fn lines_are_bounded_and_lose_their_nuls() {
        assert_eq!(clean("a\0b"), "ab");
        let long = "é".repeat(MAX_LINE);
        let c = clean(&long);
        assert!(c.len() <= MAX_LINE + '…'.len_utf8());
        assert!(c.ends_with('…'));
    }
}
