//! A JSON body extractor that answers the contract's errors (axum's own answers 400/415/422 in
//! plain text): MALFORMED 400 for anything that is not the expected JSON, TOO_LARGE 413 over
//! the bound. Serde's messages can quote the offending value (a password); only messages that
//! name a field, not a value, are passed on.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;
use tandem_protocol::sync::ErrorCode;

use crate::errors::{api, ApiError};

/// Bodies of the accounts endpoints are small.
pub const BODY_LIMIT: usize = 64 * 1024;

pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::to_bytes(req.into_body(), BODY_LIMIT)
            .await
            .map_err(|_| {
                api(
                    ErrorCode::TooLarge,
                    format!("the body is over the limit of {BODY_LIMIT} bytes"),
                )
            })?;
        parse(&bytes).map(JsonBody)
    }
}

/// Parses a body (empty counts as `{}`).
pub fn parse<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, ApiError> {
    let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    serde_json::from_slice(text).map_err(|e| {
        let shown = e.to_string();
        let message = if shown.starts_with("missing field") || shown.starts_with("unknown field") {
            format!("the body is not the expected JSON: {shown}")
        } else {
            format!(
                "the body is not the expected JSON ({:?} error at line {} column {})",
                e.classify(),
                e.line(),
                e.column()
            )
        };
        api(ErrorCode::Malformed, message)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct SignIn {
        username: String,
        password: String,
    }

    #[test]
    fn errors_name_fields_never_values() {
        let err = parse::<SignIn>(&Bytes::from_static(br#"{"username":"a"}"#)).unwrap_err();
        assert!(
            err.0.message.contains("missing field `password`"),
            "{}",
            err.0.message
        );
        let err = parse::<SignIn>(&Bytes::from_static(
            br#"{"username":"a","password":12345678901}"#,
        ))
        .unwrap_err();
        assert!(!err.0.message.contains("12345678901"), "{}", err.0.message);
        assert_eq!(err.0.code, ErrorCode::Malformed);
        assert!(parse::<SignIn>(&Bytes::from_static(b"not json")).is_err());
    }
}
