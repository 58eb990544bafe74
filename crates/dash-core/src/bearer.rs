//! Bearer tokens (`Authorization: Bearer <token>`), shared by the API and
//! the node API: reading one from a header's value, and comparing it with a
//! configured secret without leaking either through timing.

use sha2::{Digest, Sha256};

/// The credentials of an `Authorization` header's `value` when it is
/// `Bearer <token>`; the scheme is case-insensitive (RFC 9110 §11.1).
pub fn presented(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(char::is_whitespace)?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// `a == b`, compared as SHA-256 digests so that neither the length nor the
/// position of the first difference shows in the time it takes.
pub fn same(a: &[u8], b: &[u8]) -> bool {
    let (da, db) = (Sha256::digest(a), Sha256::digest(b));
    da.iter()
        .zip(db.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_token_of_a_bearer_header_only() {
        assert_eq!(presented("Bearer abc"), Some("abc"));
        assert_eq!(presented("  bEARER   abc  "), Some("abc"));
        assert_eq!(presented("Basic abc"), None);
        assert_eq!(presented("Bearer"), None);
        assert_eq!(presented("Bearer    "), None);
        assert_eq!(presented(""), None);
    }

    #[test]
    fn same_is_equality() {
        assert!(same(b"s3cret", b"s3cret"));
        assert!(!same(b"s3cret", b"s3cre"));
        assert!(!same(b"s3cret", b"S3cret"));
        assert!(!same(b"", b"x"));
        assert!(same(b"", b""));
    }
}
