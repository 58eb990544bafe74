//! Input validation shared by the API and the store. Each check returns a
//! [`ValidationError`] whose message tells a user what is wrong and what
//! would be accepted.

/// Longest name accepted by [`validate_name`], in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Largest amount of money accepted by [`validate_money`].
pub const MAX_MONEY: f64 = 1e12;
/// Accepted range for a swarm's `max_agents`.
pub const MAX_AGENTS_RANGE: std::ops::RangeInclusive<i64> = 1..=10_000;
/// Accepted range for `max_retries`.
pub const MAX_RETRIES_RANGE: std::ops::RangeInclusive<i64> = 0..=100;

/// A rejected input: which field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    /// The offending field as the user named it, e.g. `"name"`.
    pub field: String,
    /// What is wrong, in plain words, e.g. `"must not be empty"`.
    pub message: String,
}

impl ValidationError {
    /// Builds an error for `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A name: 1 to 200 characters once surrounding whitespace is trimmed, and
/// no control characters (newlines, tabs, NUL, ...) anywhere.
pub fn validate_name(field: &str, s: &str) -> Result<(), ValidationError> {
    let len = s.trim().chars().count();
    if len == 0 {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if len > MAX_NAME_CHARS {
        return Err(ValidationError::new(
            field,
            format!("must be at most {MAX_NAME_CHARS} characters long (got {len})"),
        ));
    }
    if let Some((pos, c)) = s.chars().enumerate().find(|(_, c)| c.is_control()) {
        return Err(ValidationError::new(
            field,
            format!(
                "must not contain control characters such as newlines or tabs \
                 (found U+{:04X} at character {})",
                u32::from(c),
                pos + 1
            ),
        ));
    }
    Ok(())
}

/// Free text: at most `max` characters and no NUL character, which
/// PostgreSQL refuses to store in text columns.
pub fn validate_text(field: &str, s: &str, max: usize) -> Result<(), ValidationError> {
    let len = s.chars().count();
    if len > max {
        return Err(ValidationError::new(
            field,
            format!("must be at most {max} characters long (got {len})"),
        ));
    }
    if s.contains('\0') {
        return Err(ValidationError::new(
            field,
            "must not contain the NUL character (\\u0000)",
        ));
    }
    Ok(())
}

/// An amount of money: a finite number from 0 to 1e12.
pub fn validate_money(field: &str, v: f64) -> Result<(), ValidationError> {
    if !v.is_finite() {
        return Err(ValidationError::new(field, "must be a finite number"));
    }
    if v < 0.0 {
        return Err(ValidationError::new(
            field,
            format!("must not be negative (got {v})"),
        ));
    }
    if v > MAX_MONEY {
        return Err(ValidationError::new(
            field,
            format!("must be at most 1000000000000 (got {v})"),
        ));
    }
    Ok(())
}

/// A budget threshold: a fraction of the allocation, above 0 and at most 1.
pub fn validate_threshold(field: &str, v: f64) -> Result<(), ValidationError> {
    if !v.is_finite() {
        return Err(ValidationError::new(field, "must be a finite number"));
    }
    if v <= 0.0 || v > 1.0 {
        return Err(ValidationError::new(
            field,
            format!("must be a fraction greater than 0 and at most 1, e.g. 0.75 for 75% (got {v})"),
        ));
    }
    Ok(())
}

/// Both budget thresholds: each valid on its own, and the warning no higher
/// than the critical one. Errors name `warning_threshold` or
/// `critical_threshold`.
pub fn validate_thresholds(warning: f64, critical: f64) -> Result<(), ValidationError> {
    validate_threshold("warning_threshold", warning)?;
    validate_threshold("critical_threshold", critical)?;
    if warning > critical {
        return Err(ValidationError::new(
            "warning_threshold",
            format!("must not be greater than critical_threshold ({warning} > {critical})"),
        ));
    }
    Ok(())
}

/// A currency code shaped like ISO 4217: three uppercase ASCII letters.
/// Errors name the field `currency`.
pub fn validate_currency(s: &str) -> Result<(), ValidationError> {
    if s.len() == 3 && s.bytes().all(|b| b.is_ascii_uppercase()) {
        return Ok(());
    }
    let shown: String = s.chars().take(16).collect();
    Err(ValidationError::new(
        "currency",
        format!(
            "must be a three-letter uppercase ISO 4217 code such as USD or EUR (got {shown:?})"
        ),
    ))
}

/// A swarm's agent limit: 1 to 10000. Errors name the field `max_agents`.
pub fn validate_max_agents(v: i64) -> Result<(), ValidationError> {
    validate_range("max_agents", v, MAX_AGENTS_RANGE)
}

/// How often a failed agent is retried: 0 to 100. Errors name the field
/// `max_retries`.
pub fn validate_max_retries(v: i64) -> Result<(), ValidationError> {
    validate_range("max_retries", v, MAX_RETRIES_RANGE)
}

/// An integer within `range`, with an error that states the range.
pub fn validate_range(
    field: &str,
    v: i64,
    range: std::ops::RangeInclusive<i64>,
) -> Result<(), ValidationError> {
    if range.contains(&v) {
        return Ok(());
    }
    Err(ValidationError::new(
        field,
        format!(
            "must be between {} and {} (got {v})",
            range.start(),
            range.end()
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(r: Result<(), ValidationError>) -> String {
        r.expect_err("expected a validation error").to_string()
    }

    #[test]
    fn names() {
        assert!(validate_name("name", "research swarm").is_ok());
        assert!(validate_name("name", &"é".repeat(200)).is_ok());
        assert!(validate_name("name", &format!("  {}  ", "a".repeat(200))).is_ok());
        assert_eq!(
            message(validate_name("name", "   ")),
            "name: must not be empty"
        );
        assert_eq!(
            message(validate_name("name", &"a".repeat(201))),
            "name: must be at most 200 characters long (got 201)"
        );
        assert!(message(validate_name("name", "a\nb")).contains("U+000A at character 2"));
        assert!(validate_name("name", "tab\there").is_err());
    }

    #[test]
    fn text() {
        assert!(validate_text("description", "", 10).is_ok());
        assert!(validate_text("description", "multi\nline\ttext", 100).is_ok());
        assert!(validate_text("description", "abc", 2).is_err());
        assert_eq!(
            message(validate_text("description", "a\0b", 10)),
            "description: must not contain the NUL character (\\u0000)"
        );
    }

    #[test]
    fn money() {
        for ok in [0.0, 0.01, 1e12] {
            assert!(validate_money("allocated", ok).is_ok(), "{ok}");
        }
        for bad in [f64::NAN, f64::INFINITY, -0.01, 1e12 + 1e3] {
            assert!(validate_money("allocated", bad).is_err(), "{bad}");
        }
        assert_eq!(
            message(validate_money("allocated", -5.0)),
            "allocated: must not be negative (got -5)"
        );
    }

    #[test]
    fn thresholds() {
        assert!(validate_threshold("t", 1.0).is_ok());
        for bad in [0.0, -0.1, 1.01, f64::NAN] {
            assert!(validate_threshold("t", bad).is_err(), "{bad}");
        }
        assert!(validate_thresholds(0.75, 0.9).is_ok());
        assert!(validate_thresholds(0.9, 0.9).is_ok());
        let err = validate_thresholds(0.95, 0.9).unwrap_err();
        assert_eq!(err.field, "warning_threshold");
        assert_eq!(
            validate_thresholds(0.5, 2.0).unwrap_err().field,
            "critical_threshold"
        );
    }

    #[test]
    fn currency() {
        assert!(validate_currency("USD").is_ok());
        for bad in ["usd", "US", "USDT", "", "ÜSD", "U1D"] {
            assert_eq!(
                validate_currency(bad).unwrap_err().field,
                "currency",
                "{bad}"
            );
        }
    }

    #[test]
    fn integer_limits() {
        assert!(validate_max_agents(1).is_ok());
        assert!(validate_max_agents(10_000).is_ok());
        assert_eq!(
            message(validate_max_agents(0)),
            "max_agents: must be between 1 and 10000 (got 0)"
        );
        assert!(validate_max_agents(10_001).is_err());
        assert!(validate_max_retries(0).is_ok());
        assert!(validate_max_retries(100).is_ok());
        assert!(validate_max_retries(-1).is_err());
        assert!(validate_max_retries(101).is_err());
    }
}
