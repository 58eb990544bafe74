//! Errors shared by the state machines and enum parsers, and
//! [`error_chain`], the one way every crate prints an error with its causes.
//! Input validation errors live in [`crate::validate`].

/// A lifecycle action that the entity's current status does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot {action} {} {entity} that is {current}", article(entity))]
pub struct TransitionError {
    /// `"swarm"` or `"agent"`.
    pub entity: &'static str,
    /// The rejected action, e.g. `"resume"`.
    pub action: &'static str,
    /// The status the entity was in, e.g. `"active"`.
    pub current: &'static str,
}

/// "an" before a vowel, "a" otherwise: "a swarm", "an agent".
fn article(noun: &str) -> &'static str {
    match noun.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => "an",
        _ => "a",
    }
}

/// How much of a rejected input a [`ParseEnumError`] keeps, in characters.
const MAX_ECHOED_CHARS: usize = 64;

/// A string that is not one of an enum's canonical spellings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}; expected one of: {}", .expected.join(", "))]
pub struct ParseEnumError {
    /// What was being parsed, e.g. `"swarm status"`.
    pub what: &'static str,
    /// The rejected input, cut to its first 64 characters.
    pub value: String,
    /// Every accepted spelling.
    pub expected: &'static [&'static str],
}

impl ParseEnumError {
    /// Builds the error, keeping at most the first 64 characters of `value`
    /// so hostile input cannot bloat logs and responses.
    pub fn new(what: &'static str, value: &str, expected: &'static [&'static str]) -> Self {
        Self {
            what,
            value: value.chars().take(MAX_ECHOED_CHARS).collect(),
            expected,
        }
    }
}

/// An error and each of its causes (`source()`), outermost first, as text.
/// A cause whose message an earlier one already contains is left out: many
/// errors print their source inside their own message, and repeating it
/// says nothing new.
pub fn error_causes(e: &dyn std::error::Error) -> Vec<String> {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let t = s.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        source = s.source();
    }
    parts
}

/// An error and its causes on one line, joined with `": "`: for logs and
/// reports.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    error_causes(e).join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_error_reads_as_english() {
        let err = |entity| TransitionError {
            entity,
            action: "resume",
            current: "active",
        };
        assert_eq!(
            err("swarm").to_string(),
            "cannot resume a swarm that is active"
        );
        assert_eq!(
            err("agent").to_string(),
            "cannot resume an agent that is active"
        );
    }

    #[test]
    fn parse_error_names_the_accepted_values() {
        let err = ParseEnumError::new("strategy", "fan-out", &["parallel", "tree"]);
        assert_eq!(
            err.to_string(),
            r#"unknown strategy "fan-out"; expected one of: parallel, tree"#
        );
    }

    #[test]
    fn parse_error_truncates_long_input() {
        let long = "x".repeat(1000);
        let err = ParseEnumError::new("strategy", &long, &["tree"]);
        assert_eq!(err.value.chars().count(), MAX_ECHOED_CHARS);
    }

    #[derive(Debug, thiserror::Error)]
    #[error("{msg}")]
    struct Layer {
        msg: &'static str,
        #[source]
        source: Option<Box<Layer>>,
    }

    fn layer(msg: &'static str, source: Option<Layer>) -> Layer {
        Layer {
            msg,
            source: source.map(Box::new),
        }
    }

    #[test]
    fn error_chain_joins_causes_outermost_first() {
        let e = layer("connect to db1", Some(layer("timed out", None)));
        assert_eq!(error_chain(&e), "connect to db1: timed out");
        assert_eq!(error_causes(&e), ["connect to db1", "timed out"]);
        assert_eq!(error_chain(&layer("alone", None)), "alone");
    }

    #[test]
    fn error_chain_skips_a_cause_already_in_the_message() {
        let e = layer(
            "db error: FATAL: too many clients",
            Some(layer("FATAL: too many clients", None)),
        );
        assert_eq!(error_chain(&e), "db error: FATAL: too many clients");
    }
}
