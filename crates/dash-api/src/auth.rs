//! Bearer-token auth: mutating `/api` calls (and, when configured, reads)
//! need `Authorization: Bearer <token>` matching one of `DASH_API_TOKENS`.

use axum::extract::{Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::state::AppState;

/// The token the request presented, when it is valid.
#[derive(Clone)]
pub struct Caller {
    /// A short fingerprint of the token (never the token): scopes idempotency keys.
    pub fingerprint: String,
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // Compare digests so neither length nor content leaks through timing.
    let (da, db) = (Sha256::digest(a), Sha256::digest(b));
    da.iter()
        .zip(db.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

pub async fn require_token(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let mutating = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .map(str::to_string);
    let needed = mutating || state.settings.auth_reads;
    match presented {
        Some(t)
            if state
                .settings
                .tokens
                .iter()
                .any(|k| constant_time_eq(k.expose().as_bytes(), t.as_bytes())) =>
        {
            let fingerprint = hex::encode(&Sha256::digest(t.as_bytes())[..8]);
            req.extensions_mut().insert(Caller { fingerprint });
            next.run(req).await
        }
        _ if needed && state.settings.tokens.is_empty() => ApiError::Unauthorized(
            "this server has no API tokens configured (DASH_API_TOKENS), so it accepts no changes"
                .into(),
        )
        .into_response(),
        Some(_) if needed => {
            ApiError::Unauthorized("the bearer token is not valid".into()).into_response()
        }
        None if needed => {
            ApiError::Unauthorized("this call needs an Authorization: Bearer <token> header".into())
                .into_response()
        }
        _ => next.run(req).await,
    }
}
