//! The layer in front of the sync server functions (`/api/sync/*`). Leptos 0.8 server
//! functions decode their input before the function body runs and answer any decode failure
//! (malformed JSON, wrong types, a body over the extractor's limit) with 500. The contract wants
//! 400 MALFORMED and 413 TOO_LARGE with the JSON error shape, so this layer
//! - reads the body itself, up to the configured push body limit: over it, 413 TOO_LARGE;
//! - maps a 500 whose body is the server function's own MALFORMED error to 400.
//!
//! The function then decodes the same bytes (why not plain axum handlers: docs/protocol.md).

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use std::sync::Arc;

use tandem_protocol::sync::{ErrorCode, SyncError};

use crate::errors::error;
use crate::metrics::Metrics;

/// Paths the layer guards.
pub const SYNC_PREFIX: &str = "/api/sync/";

/// Error bodies are small; a 500 body bigger than this is not ours and is passed on as is.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// The layer's settings.
#[derive(Clone)]
pub struct Guard {
    pub body_limit: usize,
    pub metrics: Arc<Metrics>,
}

/// The endpoints that take a POSTed JSON body.
const POST_ENDPOINTS: [&str; 2] = ["/api/sync/push", "/api/sync/pull"];

pub async fn guard(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if POST_ENDPOINTS.contains(&path) && request.method() != axum::http::Method::POST {
        let mut response = error(SyncError::new(
            ErrorCode::Malformed,
            format!("{path} takes a JSON body by POST, not {}", request.method()),
        ));
        *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    if request.method() != axum::http::Method::POST || !path.starts_with(SYNC_PREFIX) {
        return next.run(request).await;
    }
    let path = request.uri().path().to_string();
    let response = checked(guard.body_limit, request, next).await;
    // Count by result; error bodies are small and read anyway.
    if response.status().is_success() {
        let result = if path.ends_with("/push") {
            "accepted"
        } else {
            "ok"
        };
        guard.metrics.count_sync(&path, result);
        return response;
    }
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, ERROR_BODY_LIMIT)
        .await
        .unwrap_or_default();
    let code = serde_json::from_slice::<SyncError>(&bytes)
        .map(|e| e.code.as_str())
        .unwrap_or("UNKNOWN");
    guard.metrics.count_sync(&path, code);
    Response::from_parts(parts, Body::from(bytes))
}

async fn checked(body_limit: usize, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > body_limit) {
        return too_large(body_limit);
    }
    let bytes = match axum::body::to_bytes(body, body_limit).await {
        Ok(bytes) => bytes,
        Err(_) => return too_large(body_limit),
    };
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    if response.status() != StatusCode::INTERNAL_SERVER_ERROR {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, ERROR_BODY_LIMIT).await else {
        return error(SyncError::new(
            ErrorCode::Internal,
            "the server failed while answering",
        ));
    };
    match serde_json::from_slice::<SyncError>(&bytes) {
        Ok(e) if e.code == ErrorCode::Malformed => {
            // Leptos words its decode failures as if the *results* failed to decode.
            let detail = e
                .message
                .rsplit_once(": ")
                .map_or(e.message.as_str(), |(_, detail)| detail);
            error(SyncError::new(
                ErrorCode::Malformed,
                format!("the request body is not a valid sync request: {detail}"),
            ))
        }
        _ => {
            parts.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(parts, Body::from(bytes))
        }
    }
}

fn too_large(limit: usize) -> Response {
    error(SyncError::new(
        ErrorCode::TooLarge,
        format!("the request body is over the limit of {limit} bytes"),
    ))
}
