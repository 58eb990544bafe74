//! Bearer-token auth: mutating `/api` calls (and, when configured, reads)
//! need `Authorization: Bearer <token>` (scheme in any case) matching one of
//! `DASH_API_TOKENS`.

use axum::extract::Request;
use axum::http::{header, HeaderMap, Method};
use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::settings::ApiSettings;

/// The token the request presented, when it is valid.
#[derive(Clone)]
pub struct Caller {
    /// Who the caller is for idempotency keys: a keyed hash of the token
    /// (HMAC-SHA256, see [`scope_of`]), never the token or a plain hash of it.
    pub scope: String,
    /// The fingerprint Dash stored before keyed hashes (the first 8 bytes of
    /// the token's SHA-256), looked up only so that keys stored before the
    /// upgrade still replay until they expire (24 h).
    pub legacy_scope: String,
}

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The idempotency scope of `token`: HMAC-SHA256 keyed with
/// `DASH_IDEMPOTENCY_SECRET` over the token, or, without that secret, keyed
/// with the token itself over a fixed label. Either way the stored value
/// cannot be tested against guessed tokens without a secret the database
/// never sees, and it stays the same while tokens are added or removed.
pub fn scope_of(settings: &ApiSettings, token: &str) -> String {
    let label = b"dash idempotency scope v1";
    let mac = match &settings.idempotency_secret {
        Some(secret) => {
            let mut m = HmacSha256::new_from_slice(secret.expose().as_bytes())
                .expect("HMAC accepts keys of any length");
            m.update(label);
            m.update(b"\0");
            m.update(token.as_bytes());
            m
        }
        None => {
            let mut m = HmacSha256::new_from_slice(token.as_bytes())
                .expect("HMAC accepts keys of any length");
            m.update(label);
            m
        }
    };
    hex::encode(mac.finalize().into_bytes())
}

/// The credentials of an `Authorization: Bearer <token>` header; the scheme
/// is case-insensitive (RFC 9110 §11.1).
pub fn presented_token(headers: &HeaderMap) -> Option<&str> {
    dash_core::bearer::presented(headers.get(header::AUTHORIZATION)?.to_str().ok()?)
}

/// The caller, when the request carries one of the configured tokens.
pub fn authenticate(settings: &ApiSettings, headers: &HeaderMap) -> Option<Caller> {
    let t = presented_token(headers)?;
    settings
        .tokens
        .iter()
        .any(|k| dash_core::bearer::same(k.expose().as_bytes(), t.as_bytes()))
        .then(|| Caller {
            scope: scope_of(settings, t),
            legacy_scope: hex::encode(&Sha256::digest(t.as_bytes())[..8]),
        })
}

/// Lets `req` through (with its [`Caller`] attached when it presented a
/// valid token) or answers 401: mutations always need a token, reads only
/// with `DASH_AUTH_READS`. `observe` runs it for every `/api` route.
pub fn authorize(settings: &ApiSettings, req: &mut Request) -> Result<(), ApiError> {
    let mutating = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let needed = mutating || settings.auth_reads;
    if let Some(caller) = authenticate(settings, req.headers()) {
        req.extensions_mut().insert(caller);
        return Ok(());
    }
    let presented = req.headers().contains_key(header::AUTHORIZATION);
    let why = match () {
        _ if !needed => return Ok(()),
        _ if settings.tokens.is_empty() => {
            "this server has no API tokens configured (DASH_API_TOKENS), so it accepts no changes"
        }
        _ if presented => "the bearer token is not valid",
        _ => "this call needs an Authorization: Bearer <token> header",
    };
    Err(ApiError::Unauthorized(why.into()))
}
