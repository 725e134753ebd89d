//! Conversions between stored events and their wire form (tandem_protocol::sync), with the
//! checks that make a wire event storable: ids, stamp, type, schema version, data.

use tandem_events::event::{canonical_json, StoredEvent};
use tandem_events::ids::IdError;
use tandem_protocol::sync::{LoggedEvent, WireEvent};

/// Why a wire event cannot be stored (the server answers INVALID_EVENT).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error(transparent)]
    Id(#[from] IdError),
    #[error(transparent)]
    Stamp(#[from] tandem_events::hlc::ClockError),
    #[error("event_data must be a JSON object")]
    DataNotObject,
    #[error("version must be 1 or more")]
    ZeroVersion,
}

/// The stored form of a wire event (ids and stamp parsed, data canonical). Does not decode
/// the data against its schema; [`StoredEvent::decode`] does.
pub fn from_wire(e: &WireEvent) -> Result<StoredEvent, WireError> {
    if !e.event_data.is_object() {
        return Err(WireError::DataNotObject);
    }
    if e.version == 0 {
        return Err(WireError::ZeroVersion);
    }
    Ok(StoredEvent {
        event_id: e.event_id.parse()?,
        workspace_id: e.workspace_id.parse()?,
        aggregate_id: e.aggregate_id.parse()?,
        event_type: e.event_type.clone(),
        schema_version: e.schema_version,
        event_data: canonical_json(&e.event_data),
        hlc_timestamp: e.hlc_timestamp.parse()?,
        device_id: e.device_id.parse()?,
        version: e.version,
        created_at: e.created_at,
    })
}

/// The wire form of a stored event. Stored data is always valid JSON (it was checked when
/// stored); should it not be, it travels as a JSON string rather than failing the whole pull.
pub fn to_wire(e: &StoredEvent) -> WireEvent {
    WireEvent {
        event_id: e.event_id.to_string(),
        workspace_id: e.workspace_id.to_string(),
        aggregate_id: e.aggregate_id.to_string(),
        event_type: e.event_type.clone(),
        schema_version: e.schema_version,
        event_data: serde_json::from_str(&e.event_data)
            .unwrap_or_else(|_| serde_json::Value::String(e.event_data.clone())),
        hlc_timestamp: e.hlc_timestamp.encode(),
        device_id: e.device_id.to_string(),
        version: e.version,
        created_at: e.created_at,
    }
}

pub fn logged(seq: u64, e: &StoredEvent) -> LoggedEvent {
    logged_by(seq, e, None)
}

/// The logged wire form naming the account that pushed it.
pub fn logged_by(seq: u64, e: &StoredEvent, user_id: Option<String>) -> LoggedEvent {
    LoggedEvent {
        seq,
        user_id,
        event: to_wire(e),
    }
}
