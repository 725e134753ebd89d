//! Messages between the page and the Dedicated Worker that owns the browser's OPFS databases.
//!
//! Both directions travel as JSON strings through `postMessage`, tagged by `type`, so the page
//! and the worker (two separate wasm modules) agree on one documented shape.

use serde::{Deserialize, Serialize};

/// A request from the page to the worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WorkerRequest {
    /// Add a to-do to the device's first list (made on demand), then answer with a summary.
    AddTodo { title: String },
    /// Answer with a summary.
    Summary,
}

/// What the local store holds, for the status bar.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreSummary {
    pub lists: u64,
    pub todos: u64,
    /// Events accepted by the server (in the device's log).
    pub accepted: u64,
    /// Events waiting in the outbox.
    pub pending: u64,
}

/// A message from the worker to the page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WorkerReply {
    /// The store is open. `clock` is a fresh stamp from the device clock, read through the
    /// `hlc_now()` SQL function (proof that the clock lives in the database).
    Ready {
        summary: StoreSummary,
        clock: String,
    },
    /// The store after a request.
    Summary { summary: StoreSummary },
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
        let req = WorkerRequest::AddTodo {
            title: "milk".into(),
        };
        assert_eq!(req.to_json(), r#"{"type":"add_todo","title":"milk"}"#);
        assert_eq!(WorkerRequest::from_json(&req.to_json()).unwrap(), req);
        let reply = WorkerReply::Summary {
            summary: StoreSummary {
                lists: 1,
                todos: 2,
                accepted: 0,
                pending: 3,
            },
        };
        assert_eq!(
            reply.to_json(),
            r#"{"type":"summary","summary":{"lists":1,"todos":2,"accepted":0,"pending":3}}"#
        );
        assert_eq!(WorkerReply::from_json(&reply.to_json()).unwrap(), reply);
    }

    #[test]
    fn unknown_messages_are_a_typed_error() {
        let err = WorkerRequest::from_json(r#"{"type":"drop_tables"}"#).unwrap_err();
        assert!(err.to_string().contains("drop_tables"), "{err}");
    }
}
