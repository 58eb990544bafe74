//! JSON integers as JSON Schema means them: any number without a fraction,
//! so `5`, `5.0` and `5e0` are all the integer 5 (the OpenAPI document's
//! `"type": "integer"` accepts each of them), while `5.5` is refused.

use serde::de::{Deserializer, Error, Unexpected};
use serde::Deserialize;

/// An integral JSON number as an `i64`.
pub fn from_number(n: &serde_json::Number) -> Option<i64> {
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    let f = n.as_f64()?;
    // 2^63 is exactly representable; every f64 below it with no fraction fits.
    const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;
    (f.fract() == 0.0 && (-TWO_POW_63..TWO_POW_63).contains(&f)).then_some(f as i64)
}

/// `#[serde(default, deserialize_with = "dash_core::integral::option")]`:
/// an optional integer field that also accepts integral numbers like `5.0`.
/// A missing field is `None`; `null` is `None` too, as for any optional field.
pub fn option<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    match Option::<serde_json::Number>::deserialize(d)? {
        None => Ok(None),
        Some(n) => from_number(&n).map(Some).ok_or_else(|| {
            let shown = n.as_f64().unwrap_or(f64::NAN);
            D::Error::invalid_value(Unexpected::Float(shown), &"an integer")
        }),
    }
}

/// A required integer field that also accepts integral numbers like `5.0`.
pub fn required<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let n = serde_json::Number::deserialize(d)?;
    from_number(&n).ok_or_else(|| {
        D::Error::invalid_value(
            Unexpected::Float(n.as_f64().unwrap_or(f64::NAN)),
            &"an integer",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Debug)]
    struct T {
        #[serde(default, deserialize_with = "option")]
        n: Option<i64>,
    }

    fn parse(json: &str) -> Result<Option<i64>, String> {
        serde_json::from_str::<T>(json)
            .map(|t| t.n)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn integral_numbers_are_integers() {
        assert_eq!(parse(r#"{"n": 5}"#), Ok(Some(5)));
        assert_eq!(parse(r#"{"n": 5.0}"#), Ok(Some(5)));
        assert_eq!(parse(r#"{"n": 5e0}"#), Ok(Some(5)));
        assert_eq!(parse(r#"{"n": -3.0}"#), Ok(Some(-3)));
        assert_eq!(parse(r#"{}"#), Ok(None));
        assert_eq!(parse(r#"{"n": null}"#), Ok(None));
    }

    #[test]
    fn fractions_strings_and_huge_numbers_are_refused() {
        for bad in [
            r#"{"n": 5.5}"#,
            r#"{"n": "5"}"#,
            r#"{"n": 1e19}"#,
            r#"{"n": true}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(parse(r#"{"n": 5.5}"#).unwrap_err().contains("an integer"));
    }
}
