//! Errors shared by the state machines and enum parsers. Input validation
//! errors live in [`crate::validate`].

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
}
