//! Events as stored and sent (DESIGN.md rule 3): an envelope of ids, stamps and versions around
//! versioned JSON data. Decoding goes through the upcasters, so every schema version ever
//! written stays readable (rule 7); stored events are never rewritten.

use serde::{Deserialize, Serialize};

pub use crate::domain::DecodeError;
use crate::domain::DomainEvent;
use crate::hlc::Stamp;
use crate::ids::{AggregateId, DeviceId, EventId, WorkspaceId};
pub use crate::json::canonical_json;

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
    /// Device profiles live on name-based ids ([`AggregateId::device`]): a `DeviceNamed` must
    /// be on its own author's, and no other event may use a name-based (v5) id, so nobody can
    /// take a device's aggregate first (rule 21 would then give it to the wrong workspace).
    pub fn check_aggregate_kind(&self) -> Result<(), String> {
        let named = self.event_type == "DeviceNamed";
        let own = AggregateId::device(self.workspace_id, self.device_id);
        if named && self.aggregate_id != own {
            return Err(format!(
                "DeviceNamed of device {} must be on aggregate {own}, not {}",
                self.device_id, self.aggregate_id
            ));
        }
        if !named && self.aggregate_id.as_uuid().get_version_num() == 5 {
            return Err(format!(
                "{} on aggregate {}: name-based (v5) ids are reserved for device profiles",
                self.event_type, self.aggregate_id
            ));
        }
        Ok(())
    }

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
