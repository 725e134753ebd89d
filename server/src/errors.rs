//! The contract's error response (CONTRACT.md): a status from the error code, a JSON body
//! `{"code", "message", ...}` with the server's time. A leaf module: the sync layer, the live
//! socket and the routes all answer with it.

use axum::body::Bytes;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tandem_protocol::sync::SyncError;

/// A contract error response, with the server's time when the error does not carry it yet
/// (and `Retry-After` when it says when to retry).
pub fn error(mut e: SyncError) -> Response {
    if e.server_time_ms.is_none() {
        e.server_time_ms = Some(i64::try_from(crate::databases::now_ms()).unwrap_or(i64::MAX));
    }
    let status = StatusCode::from_u16(e.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let retry_after = e
        .retry_after_ms
        .map(|ms| ms.div_ceil(1_000).max(1).to_string());
    let body = Bytes::from(serde_json::to_vec(&e).unwrap_or_default());
    let mut response = (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response();
    if let Some(Ok(value)) = retry_after.map(|s| HeaderValue::from_str(&s)) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// A handler's contract error (`?` on a [`SyncError`]).
#[derive(Debug)]
pub struct ApiError(pub SyncError);

impl From<SyncError> for ApiError {
    fn from(e: SyncError) -> Self {
        Self(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.0.code == tandem_protocol::sync::ErrorCode::Internal {
            tracing::error!(message = %self.0.message, "a request failed inside the server");
        }
        error(self.0)
    }
}

/// A contract error from its code and message.
pub fn api(code: tandem_protocol::sync::ErrorCode, message: impl Into<String>) -> ApiError {
    ApiError(SyncError::new(code, message))
}

/// A failure inside the server (500; logged).
pub fn internal(e: impl std::fmt::Display) -> ApiError {
    api(tandem_protocol::sync::ErrorCode::Internal, e.to_string())
}
