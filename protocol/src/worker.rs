//! Messages between the page and the Dedicated Worker that owns the browser's OPFS databases.
//!
//! Both directions travel as JSON strings through `postMessage`, tagged by `type`, so the page
//! and the worker (two separate wasm modules) agree on one documented shape.

use serde::{Deserialize, Serialize};

/// A request from the page to the worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WorkerRequest {
    /// Append one row to the probe table and answer with the new count.
    AppendProbeRow,
    /// Answer with the current count.
    CountProbeRows,
}

/// A message from the worker to the page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WorkerReply {
    /// The store is open; `rows` is the probe table's row count.
    Ready { rows: u64 },
    /// The probe table's row count after a request.
    Rows { rows: u64 },
    /// Something failed; nothing was written.
    Failed { message: String },
}

/// Why a message could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("undecodable worker message {text:?}: {source}")]
pub struct DecodeError {
    text: String,
    #[source]
    source: serde_json::Error,
}

macro_rules! json_codec {
    ($ty:ty) => {
        impl $ty {
            /// Encodes this message as its JSON text.
            pub fn to_json(&self) -> String {
                // Serializing these plain enums cannot fail (no maps with non-string keys).
                serde_json::to_string(self).unwrap_or_default()
            }

            /// Decodes a message from its JSON text.
            pub fn from_json(text: &str) -> Result<Self, DecodeError> {
                serde_json::from_str(text).map_err(|source| DecodeError {
                    text: text.chars().take(200).collect(),
                    source,
                })
            }
        }
    };
}

json_codec!(WorkerRequest);
json_codec!(WorkerReply);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_replies_round_trip_as_tagged_json() {
        let req = WorkerRequest::AppendProbeRow;
        assert_eq!(req.to_json(), r#"{"type":"append_probe_row"}"#);
        assert_eq!(WorkerRequest::from_json(&req.to_json()).unwrap(), req);
        let reply = WorkerReply::Ready { rows: 3 };
        assert_eq!(reply.to_json(), r#"{"type":"ready","rows":3}"#);
        assert_eq!(WorkerReply::from_json(&reply.to_json()).unwrap(), reply);
    }

    #[test]
    fn unknown_messages_are_a_typed_error() {
        let err = WorkerRequest::from_json(r#"{"type":"drop_tables"}"#).unwrap_err();
        assert!(err.to_string().contains("drop_tables"), "{err}");
    }
}
