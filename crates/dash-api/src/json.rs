//! JSON answers, written with sonic-rs instead of serde_json: the same
//! `Serialize` impls and byte-for-byte the same text (checked below), but
//! SIMD string escaping. Escaping was a third of `dashctl serve`'s
//! instructions for a 50-agent page (callgrind: serde_json's
//! `format_escaped_str_contents` alone ~166,000 of ~697,000 per request).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// A JSON answer (`Content-Type: application/json`).
pub struct Json<T>(pub T);

/// Room for a typical answer, so the buffer rarely grows (and copies).
const START: usize = 1024;

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        let mut buf = Vec::with_capacity(START);
        match sonic_rs::to_writer(&mut buf, &self.0) {
            Ok(()) => {
                let mut resp = buf.into_response();
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                resp
            }
            Err(e) => {
                let mut resp = crate::error::error_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error",
                );
                resp.extensions_mut()
                    .insert(crate::error::ErrorCause(std::sync::Arc::new(format!(
                        "the answer could not be encoded as JSON: {e}"
                    ))));
                resp
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    fn same(v: &serde_json::Value) {
        assert_eq!(
            sonic_rs::to_string(v).unwrap(),
            serde_json::to_string(v).unwrap()
        );
    }

    #[test]
    fn escapes_numbers_and_nesting_read_as_serde_json_writes_them() {
        same(&json!({
            "s": "q\"\\\n\u{1}\u{7f}é😀</script>",
            "f": [0.0, -0.0, 0.5, 0.1, 1e-7, 1e21, 2.0 / 3.0, 1e16, 123456.789],
            "i": [0, -1, i64::MAX, u64::MAX],
            "n": null, "b": [true, false], "o": {"": {}, "a": []}
        }));
    }

    proptest! {
        #[test]
        fn any_text_and_float_read_as_serde_json_writes_them(s in ".*", f in proptest::num::f64::NORMAL | proptest::num::f64::ZERO | proptest::num::f64::SUBNORMAL) {
            same(&json!({ "s": s, "f": f }));
        }
    }
}
