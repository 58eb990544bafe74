//! The API's one error type and its JSON shape:
//! `{"error":{"code":"...","message":"..."}}`. 5xx bodies say nothing
//! internal; the cause travels in a response extension and is logged once.

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use dash_store::StoreError;
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("{0}")]
    PayloadTooLarge(String),
    /// A body sent with a content type other than JSON.
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    /// Past a rate limit; retry after the duration.
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after: std::time::Duration,
    },
    /// The request ran past `DASH_REQUEST_TIMEOUT` and was abandoned.
    #[error("the request did not finish within {0:?}")]
    Timeout(std::time::Duration),
}

/// The cause of a failed request, for the logging middleware.
#[derive(Clone)]
pub struct ErrorCause(pub Arc<String>);

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code: "invalid_request",
            message: message.into(),
        }
    }

    fn parts(&self) -> (StatusCode, &'static str, String) {
        match self {
            ApiError::Store(e) => match e {
                StoreError::PoolExhausted(_) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "pool_exhausted",
                    "every database connection is busy; retry shortly".into(),
                ),
                e if e.is_unavailable() => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "database_unavailable",
                    "the database is unavailable; retry shortly".into(),
                ),
                StoreError::Maintenance(m) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "maintenance",
                    format!("writes are paused for maintenance: {m}"),
                ),
                StoreError::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found", e.to_string()),
                StoreError::Transition(t) => {
                    (StatusCode::CONFLICT, "invalid_transition", t.to_string())
                }
                StoreError::Conflicting(m) => (StatusCode::CONFLICT, "conflict", m.clone()),
                StoreError::Validation(v) => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "validation_failed",
                    v.to_string(),
                ),
                StoreError::Conflict(_) => (
                    StatusCode::CONFLICT,
                    "transaction_conflict",
                    "the change conflicted with a concurrent one; retry".into(),
                ),
                _ => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error".into(),
                ),
            },
            ApiError::BadRequest { code, message } => {
                (StatusCode::BAD_REQUEST, code, message.clone())
            }
            ApiError::PayloadTooLarge(m) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                m.clone(),
            ),
            ApiError::UnsupportedMediaType(m) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                m.clone(),
            ),
            ApiError::Unauthorized(m) => (StatusCode::UNAUTHORIZED, "unauthorized", m.clone()),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, "route_not_found", m.clone()),
            ApiError::MethodNotAllowed(m) => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                m.clone(),
            ),
            ApiError::RateLimited { message, .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                message.clone(),
            ),
            ApiError::Timeout(limit) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                format!("the request did not finish within {limit:?}; retry shortly"),
            ),
        }
    }
}

/// Renders the uniform error body.
pub fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({ "error": { "code": code, "message": message } })),
    )
        .into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = self.parts();
        let mut resp = error_response(status, code, &message);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let ApiError::RateLimited { retry_after, .. } = &self {
            let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if status.is_server_error() {
            resp.extensions_mut()
                .insert(ErrorCause(Arc::new(dash_core::error_chain(&self))));
        }
        resp
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::PayloadTooLarge("the request body is larger than 1 MiB".into());
        }
        let code = match r {
            JsonRejection::MissingJsonContentType(_) => {
                return ApiError::UnsupportedMediaType(r.body_text())
            }
            JsonRejection::JsonSyntaxError(_) => "malformed_json",
            _ => "invalid_body",
        };
        ApiError::BadRequest {
            code,
            message: r.body_text(),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::BadRequest {
            code: "invalid_path",
            message: r.body_text(),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::BadRequest {
            code: "invalid_query",
            message: r.body_text(),
        }
    }
}

impl From<dash_core::ValidationError> for ApiError {
    fn from(e: dash_core::ValidationError) -> Self {
        ApiError::Store(StoreError::Validation(e))
    }
}

/// Extractors whose rejections use the API's error shape.
pub mod extract {
    use axum::extract::FromRequest;
    use axum::extract::FromRequestParts;

    use super::ApiError;

    #[derive(FromRequest)]
    #[from_request(via(axum::Json), rejection(ApiError))]
    pub struct Json<T>(pub T);

    #[derive(FromRequestParts)]
    #[from_request(via(axum::extract::Path), rejection(ApiError))]
    pub struct Path<T>(pub T);

    #[derive(FromRequestParts)]
    #[from_request(via(axum::extract::Query), rejection(ApiError))]
    pub struct Query<T>(pub T);
}

/// A JSON body and its raw bytes (hashed for `Idempotency-Key`). Every
/// failure — too large, not JSON, wrong shape — answers in the API's shape.
pub struct JsonBody<T> {
    pub value: T,
    pub raw: axum::body::Bytes,
}

impl<S, T> axum::extract::FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        check_json_content_type(req.headers())?;
        let RawBody(raw) = RawBody::from_request(req, state).await?;
        let value = parse_json(&raw)?;
        Ok(JsonBody { value, raw })
    }
}

/// Refuses a body whose `Content-Type` is not JSON (`application/json` or
/// any `+json` type, compared case-insensitively, parameters ignored) with
/// 415. A body without a `Content-Type` is read as JSON.
pub fn check_json_content_type(headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let essence = value
        .to_str()
        .ok()
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    let json = essence.as_deref().is_some_and(|e| {
        e == "application/json"
            || e.split_once('/')
                .is_some_and(|(t, sub)| !t.is_empty() && sub.len() > 5 && sub.ends_with("+json"))
    });
    if json {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(
            "send the body as Content-Type: application/json".into(),
        ))
    }
}

/// The body as bytes, with the 1 MiB limit answered in the API's shape.
pub struct RawBody(pub axum::body::Bytes);

impl<S: Send + Sync> axum::extract::FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        axum::body::Bytes::from_request(req, state)
            .await
            .map(RawBody)
            .map_err(|r| {
                if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge("the request body is larger than 1 MiB".into())
                } else {
                    ApiError::bad_request(r.body_text())
                }
            })
    }
}

/// Parses JSON with errors that say where and what is wrong, naming the
/// field (`budget.allocated: invalid type: ...`) when the shape is wrong.
pub fn parse_json<T: serde::de::DeserializeOwned>(raw: &[u8]) -> Result<T, ApiError> {
    use serde_json::error::Category;
    let fail = |e: serde_json::Error, path: Option<String>| {
        let code = match e.classify() {
            Category::Syntax | Category::Eof | Category::Io => "malformed_json",
            Category::Data => "invalid_body",
        };
        let message = match path.filter(|p| p != "." && code == "invalid_body") {
            Some(p) => format!("{p}: {e}"),
            None => e.to_string(),
        };
        ApiError::BadRequest { code, message }
    };
    let mut de = serde_json::Deserializer::from_slice(raw);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        fail(e.into_inner(), Some(path))
    })?;
    de.end().map_err(|e| fail(e, None))?;
    Ok(value)
}
