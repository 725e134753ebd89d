//! Events as stored and sent (DESIGN.md rule 3): an envelope of ids, stamps and versions around
//! versioned JSON data. Decoding goes through the upcasters, so every schema version ever
//! written stays readable (rule 7); stored events are never rewritten.

use serde::{Deserialize, Serialize};

use crate::domain::DomainEvent;
use crate::hlc::Stamp;
use crate::ids::{AggregateId, DeviceId, EventId, WorkspaceId};

/// The most bytes of `event_data` an event may carry: its canonical JSON text
/// ([`canonical_json`]), UTF-8, as stored and sent. The server's default limit; `decide`
/// refuses commands above it so that a device never records what the server would refuse.
pub const MAX_EVENT_DATA_BYTES: usize = 64 * 1024;

/// An event in a log or outbox, exactly as stored. `event_data` is the JSON text of the data
/// in the shape of `(event_type, schema_version)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEvent {
    pub event_id: EventId,
    pub workspace_id: WorkspaceId,
    pub aggregate_id: AggregateId,
    pub event_type: String,
    pub schema_version: u32,
    pub event_data: String,
    pub hlc_timestamp: Stamp,
    pub device_id: DeviceId,
    /// The aggregate version this event proposes (dense from 1 per aggregate).
    pub version: u64,
    /// The authoring device's wall clock (ms since the epoch) when the command ran.
    pub created_at: i64,
}

/// Why a stored event cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown event type {event_type:?}")]
    UnknownType { event_type: String },
    #[error("event type {event_type} has no schema version {schema_version} (current: {current})")]
    UnknownVersion {
        event_type: String,
        schema_version: u32,
        current: u32,
    },
    #[error("event data of {event_type} v{schema_version} does not match its schema: {message}")]
    BadData {
        event_type: String,
        schema_version: u32,
        message: String,
    },
}

/// An event read back: its envelope and its typed, upcast domain content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub event_id: EventId,
    pub workspace_id: WorkspaceId,
    pub aggregate_id: AggregateId,
    pub hlc: Stamp,
    pub device_id: DeviceId,
    pub version: u64,
    pub created_at: i64,
    pub body: DomainEvent,
}

impl StoredEvent {
    /// Decodes (and upcasts) the data.
    pub fn decode(&self) -> Result<Event, DecodeError> {
        Ok(Event {
            event_id: self.event_id,
            workspace_id: self.workspace_id,
            aggregate_id: self.aggregate_id,
            hlc: self.hlc_timestamp,
            device_id: self.device_id,
            version: self.version,
            created_at: self.created_at,
            body: DomainEvent::decode(&self.event_type, self.schema_version, &self.event_data)?,
        })
    }

    /// Equal content in the sense of DESIGN.md rule 12: every field but `version` equal, the
    /// data compared as parsed JSON.
    pub fn same_content(&self, other: &Self) -> bool {
        let data = |s: &str| serde_json::from_str::<serde_json::Value>(s).ok();
        self.event_id == other.event_id
            && self.workspace_id == other.workspace_id
            && self.aggregate_id == other.aggregate_id
            && self.event_type == other.event_type
            && self.schema_version == other.schema_version
            && self.hlc_timestamp == other.hlc_timestamp
            && self.device_id == other.device_id
            && self.created_at == other.created_at
            && data(&self.event_data).is_some()
            && data(&self.event_data) == data(&other.event_data)
    }
}

impl Event {
    /// The stored form (current schema version) of this event.
    pub fn to_stored(&self) -> StoredEvent {
        StoredEvent {
            event_id: self.event_id,
            workspace_id: self.workspace_id,
            aggregate_id: self.aggregate_id,
            event_type: self.body.event_type().to_string(),
            schema_version: self.body.schema_version(),
            event_data: self.body.to_data(),
            hlc_timestamp: self.hlc,
            device_id: self.device_id,
            version: self.version,
            created_at: self.created_at,
        }
    }
}

/// The canonical text of a JSON value: compact, object keys sorted (recursively), so every
/// replica stores byte-identical `event_data` for the same content, whatever key order or
/// whitespace the author used (views hash equal, DESIGN.md rule 20).
pub fn canonical_json(value: &serde_json::Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_and_drops_whitespace() {
        let a: serde_json::Value =
            serde_json::from_str(r#"{ "title": "x", "bases": [ {"z":1,"a":2} ] }"#).unwrap();
        assert_eq!(
            canonical_json(&a),
            r#"{"bases":[{"a":2,"z":1}],"title":"x"}"#
        );
        let b: serde_json::Value =
            serde_json::from_str(r#"{"bases":[{"a":2,"z":1}],"title":"x"}"#).unwrap();
        assert_eq!(canonical_json(&a), canonical_json(&b));
        assert_eq!(
            canonical_json(&serde_json::json!("é\n\"")),
            serde_json::json!("é\n\"").to_string()
        );
    }
}
