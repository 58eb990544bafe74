//! Pagination without I/O: page-size limits and opaque keyset cursors.
//!
//! A [`Cursor`] names the last row of a page by its sort value and id; the
//! store resumes after it with `WHERE (key, id) > ($1, $2)`. Clients see only
//! an opaque URL-safe token and must pass it back unchanged.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::validate::ValidationError;

/// Page size when the client gives none.
pub const DEFAULT_LIMIT: i64 = 50;
/// Largest page size a client may ask for.
pub const MAX_LIMIT: i64 = 500;
/// Longest cursor token [`Cursor::decode`] will look at, in bytes.
pub const MAX_CURSOR_LEN: usize = 4096;

/// The page size to use: `DEFAULT_LIMIT` when absent, else 1 to `MAX_LIMIT`.
pub fn validate_limit(limit: Option<i64>) -> Result<i64, ValidationError> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(n) => Err(ValidationError::new(
            "limit",
            format!("must be between 1 and {MAX_LIMIT} (got {n})"),
        )),
    }
}

/// Where the next page starts: just after the row with this sort value and id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cursor {
    /// The sort column's value for the last row, as text (e.g. an RFC 3339
    /// timestamp).
    pub key: String,
    /// The last row's id, which breaks ties between equal keys.
    pub id: Uuid,
}

/// The JSON inside a token; short field names keep tokens short.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire<'a> {
    k: std::borrow::Cow<'a, str>,
    i: Uuid,
}

impl Cursor {
    /// A cursor after the row (`key`, `id`).
    pub fn new(key: impl Into<String>, id: Uuid) -> Self {
        Self {
            key: key.into(),
            id,
        }
    }

    /// The opaque token: unpadded URL-safe base64 of a small JSON object.
    pub fn encode(&self) -> String {
        let wire = Wire {
            k: self.key.as_str().into(),
            i: self.id,
        };
        // Serializing a string and a UUID to JSON cannot fail.
        let json = serde_json::to_vec(&wire).unwrap_or_default();
        base64url_encode(&json)
    }

    /// Reads a token made by [`Cursor::encode`]. Anything else is rejected
    /// with an error on the field `cursor`.
    pub fn decode(s: &str) -> Result<Cursor, ValidationError> {
        let invalid = || {
            ValidationError::new(
                "cursor",
                "is not a valid page cursor; pass the next_cursor from the previous page unchanged",
            )
        };
        if s.is_empty() || s.len() > MAX_CURSOR_LEN {
            return Err(invalid());
        }
        let bytes = base64url_decode(s).ok_or_else(invalid)?;
        let wire: Wire<'_> = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
        Ok(Cursor {
            key: wire.k.into_owned(),
            id: wire.i,
        })
    }
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// RFC 4648 §5 base64 (URL-safe alphabet), without padding.
fn base64url_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        // A chunk of k bytes carries 8k bits, i.e. k + 1 base64 digits.
        for i in 0..=chunk.len() {
            let digit = (n >> (18 - 6 * i)) & 0x3f;
            out.push(char::from(ALPHABET[digit as usize]));
        }
    }
    out
}

/// Inverse of [`base64url_encode`]. Rejects foreign characters, impossible
/// lengths and non-zero padding bits, so every token has one spelling.
fn base64url_decode(s: &str) -> Option<Vec<u8>> {
    let digit = |c: u8| ALPHABET.iter().position(|&a| a == c).map(|p| p as u32);
    let mut out = Vec::with_capacity(s.len() / 4 * 3 + 2);
    for chunk in s.as_bytes().chunks(4) {
        if chunk.len() == 1 {
            return None;
        }
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= digit(c)? << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        let keep = chunk.len() - 1;
        // Bits below the last kept byte must be zero.
        if bytes[1 + keep..].iter().any(|&b| b != 0) {
            return None;
        }
        out.extend_from_slice(&bytes[1..=keep]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        assert_eq!(validate_limit(None), Ok(DEFAULT_LIMIT));
        assert_eq!(validate_limit(Some(1)), Ok(1));
        assert_eq!(validate_limit(Some(MAX_LIMIT)), Ok(MAX_LIMIT));
        for bad in [0, -1, MAX_LIMIT + 1, i64::MIN] {
            assert_eq!(
                validate_limit(Some(bad)).unwrap_err().field,
                "limit",
                "{bad}"
            );
        }
        assert_eq!(
            validate_limit(Some(0)).unwrap_err().to_string(),
            "limit: must be between 1 and 500 (got 0)"
        );
    }

    #[test]
    fn base64url_matches_rfc4648_vectors() {
        let vectors = [
            ("", ""),
            ("f", "Zg"),
            ("fo", "Zm8"),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg"),
            ("fooba", "Zm9vYmE"),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(base64url_encode(plain.as_bytes()), encoded);
            assert_eq!(base64url_decode(encoded).unwrap(), plain.as_bytes());
        }
        assert_eq!(base64url_encode(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn base64url_rejects_malformed_input() {
        for bad in ["Z", "Zm9vY", "Zh", "Zm9=", "Zm+v", "Zm/v", "é"] {
            assert_eq!(base64url_decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn cursor_roundtrip_and_shape() {
        let c = Cursor::new("2024-05-01T12:00:00Z", Uuid::from_u128(7));
        let token = c.encode();
        assert!(token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(Cursor::decode(&token), Ok(c));
    }

    #[test]
    fn cursor_rejects_garbage() {
        let other_json = base64url_encode(br#"{"k":"a"}"#);
        let extra =
            base64url_encode(br#"{"k":"a","i":"00000000-0000-0000-0000-000000000000","x":1}"#);
        for bad in [
            "",
            "not a cursor",
            "abc",
            &other_json,
            &extra,
            &"A".repeat(5000),
        ] {
            let err = Cursor::decode(bad).unwrap_err();
            assert_eq!(err.field, "cursor");
            assert!(err.message.contains("not a valid page cursor"));
        }
    }
}
