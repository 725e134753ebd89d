//! The to-do domain's events: workspaces hold lists, lists hold todos. Each event has a type
//! name, a current schema version and a JSON shape; older shapes are upcast when read.
//!
//! Field edits carry `bases` (DESIGN.md rule 19): the stamps of the values their author
//! replaced. Creation events set every field at once, with no bases.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::hlc::Stamp;
use crate::ids::AggregateId;

/// A calendar date `YYYY-MM-DD` (no time zone: a due *day*).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DueDate {
    year: u16,
    month: u8,
    day: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid due date {text:?}: expected an existing day as YYYY-MM-DD")]
pub struct DueDateError {
    pub text: String,
}

impl FromStr for DueDate {
    type Err = DueDateError;

    fn from_str(text: &str) -> Result<Self, DueDateError> {
        let err = || DueDateError {
            text: text.chars().take(40).collect(),
        };
        let b = text.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return Err(err());
        }
        let num = |r: std::ops::Range<usize>| -> Result<u16, DueDateError> {
            let part = text.get(r).ok_or_else(err)?;
            if !part.bytes().all(|c| c.is_ascii_digit()) {
                return Err(err());
            }
            part.parse().map_err(|_| err())
        };
        let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        let days = match month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => return Err(err()),
        };
        if year == 0 || day == 0 || day > days {
            return Err(err());
        }
        Ok(Self {
            year,
            month: month as u8,
            day: day as u8,
        })
    }
}

impl fmt::Display for DueDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl Serialize for DueDate {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DueDate {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
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

/// Everything that can happen in the to-do domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum DomainEvent {
    ListCreated(ListCreated),
    ListRenamed(ListRenamed),
    ListDeleted(Deleted),
    /// Undoes deletes of the list: `bases` names the stamps of every delete its author saw
    /// (DESIGN.md rule 19; a delete it did not see still wins).
    ListRestored(Bases),
    TodoCreated(TodoCreated),
    TodoTitleEdited(TodoTitleEdited),
    TodoNotesEdited(TodoNotesEdited),
    TodoDueDateSet(TodoDueDateSet),
    TodoDueDateCleared(Bases),
    TodoCompleted(Bases),
    TodoReopened(Bases),
    TodoMoved(TodoMoved),
    TodoListChanged(TodoListChanged),
    TodoDeleted(Deleted),
    /// Undoes deletes of the todo, as [`DomainEvent::ListRestored`] does for a list.
    TodoRestored(Bases),
    /// A device's readable name in the workspace (shown in conflicts, history and the Trash
    /// instead of its id). Its aggregate is [`AggregateId::device`] of the event's workspace
    /// and device: a device names only itself.
    DeviceNamed(DeviceNamed),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceNamed {
    pub name: String,
    pub bases: Vec<Stamp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListCreated {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListRenamed {
    pub name: String,
    pub bases: Vec<Stamp>,
}

/// The data of a deletion: nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deleted {}

/// The data of an edit whose value is the event type itself (complete, reopen, clear).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bases {
    pub bases: Vec<Stamp>,
}

/// `TodoCreated` v2 (current): v1 had no `due_date`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TodoCreated {
    pub list_id: AggregateId,
    pub title: String,
    pub position: String,
    pub due_date: Option<DueDate>,
}

/// `TodoCreated` v1, read from old logs only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TodoCreatedV1 {
    pub list_id: AggregateId,
    pub title: String,
    pub position: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TodoTitleEdited {
    pub title: String,
    pub bases: Vec<Stamp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TodoNotesEdited {
    pub notes: String,
    pub bases: Vec<Stamp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TodoDueDateSet {
    pub due_date: DueDate,
    pub bases: Vec<Stamp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TodoMoved {
    pub position: String,
    pub bases: Vec<Stamp>,
}

/// A todo moved to another list, at `position` there. Two fields, each with its own bases
/// (one shared `bases` would let the creation's stamp, common to every field, supersede a
/// field the author did not replace).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TodoListChanged {
    pub list_id: AggregateId,
    pub list_bases: Vec<Stamp>,
    pub position: String,
    pub position_bases: Vec<Stamp>,
}

/// Upcasters: old shapes to current ones, at read time (DESIGN.md rule 7).
pub mod upcast {
    use super::{TodoCreated, TodoCreatedV1};

    /// `TodoCreated` v1 → v2: no due date.
    pub fn todo_created_v1(old: TodoCreatedV1) -> TodoCreated {
        TodoCreated {
            list_id: old.list_id,
            title: old.title,
            position: old.position,
            due_date: None,
        }
    }
}

/// `(type name, current schema version)` of every event type, for validation and docs.
pub const EVENT_TYPES: &[(&str, u32)] = &[
    ("ListCreated", 1),
    ("ListRenamed", 1),
    ("ListDeleted", 1),
    ("ListRestored", 1),
    ("TodoCreated", 2),
    ("TodoTitleEdited", 1),
    ("TodoNotesEdited", 1),
    ("TodoDueDateSet", 1),
    ("TodoDueDateCleared", 1),
    ("TodoCompleted", 1),
    ("TodoReopened", 1),
    ("TodoMoved", 1),
    ("TodoListChanged", 1),
    ("TodoDeleted", 1),
    ("TodoRestored", 1),
    ("DeviceNamed", 1),
];

impl DomainEvent {
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::ListCreated(_) => "ListCreated",
            Self::ListRenamed(_) => "ListRenamed",
            Self::ListDeleted(_) => "ListDeleted",
            Self::ListRestored(_) => "ListRestored",
            Self::TodoCreated(_) => "TodoCreated",
            Self::TodoTitleEdited(_) => "TodoTitleEdited",
            Self::TodoNotesEdited(_) => "TodoNotesEdited",
            Self::TodoDueDateSet(_) => "TodoDueDateSet",
            Self::TodoDueDateCleared(_) => "TodoDueDateCleared",
            Self::TodoCompleted(_) => "TodoCompleted",
            Self::TodoReopened(_) => "TodoReopened",
            Self::TodoMoved(_) => "TodoMoved",
            Self::TodoListChanged(_) => "TodoListChanged",
            Self::TodoDeleted(_) => "TodoDeleted",
            Self::TodoRestored(_) => "TodoRestored",
            Self::DeviceNamed(_) => "DeviceNamed",
        }
    }

    /// The schema version this code writes.
    pub fn schema_version(&self) -> u32 {
        current_version(self.event_type()).unwrap_or(1)
    }

    /// The JSON text of the data, in the current schema, canonical (see
    /// [`crate::json::canonical_json`]).
    pub fn to_data(&self) -> String {
        // Serializing these plain structs cannot fail.
        serde_json::to_value(self)
            .map(|v| crate::json::canonical_json(&v))
            .unwrap_or_default()
    }

    /// Reads data of any known `(type, version)`, upcasting old versions.
    pub fn decode(event_type: &str, schema_version: u32, data: &str) -> Result<Self, DecodeError> {
        let current = current_version(event_type).ok_or_else(|| DecodeError::UnknownType {
            event_type: event_type.chars().take(64).collect(),
        })?;
        let bad = |e: serde_json::Error| DecodeError::BadData {
            event_type: event_type.to_string(),
            schema_version,
            message: e.to_string(),
        };
        let parse = |data: &str| -> Result<Self, DecodeError> { parse_current(event_type, data) };
        match (event_type, schema_version) {
            (_, v) if v == current => parse(data),
            ("TodoCreated", 1) => Ok(Self::TodoCreated(upcast::todo_created_v1(
                serde_json::from_str(data).map_err(bad)?,
            ))),
            _ => Err(DecodeError::UnknownVersion {
                event_type: event_type.to_string(),
                schema_version,
                current,
            }),
        }
    }
}

/// Data in the current schema of `event_type`. Every type has its own arm: a type without one
/// is an error, never silently read as another type.
fn parse_current(event_type: &str, data: &str) -> Result<DomainEvent, DecodeError> {
    use serde::de::DeserializeOwned;
    fn read<T: DeserializeOwned>(event_type: &str, data: &str) -> Result<T, DecodeError> {
        serde_json::from_str(data).map_err(|e| DecodeError::BadData {
            event_type: event_type.to_string(),
            schema_version: current_version(event_type).unwrap_or(0),
            message: e.to_string(),
        })
    }
    let t = event_type;
    Ok(match t {
        "ListCreated" => DomainEvent::ListCreated(read(t, data)?),
        "ListRenamed" => DomainEvent::ListRenamed(read(t, data)?),
        "ListDeleted" => DomainEvent::ListDeleted(read(t, data)?),
        "ListRestored" => DomainEvent::ListRestored(read(t, data)?),
        "TodoCreated" => DomainEvent::TodoCreated(read(t, data)?),
        "TodoTitleEdited" => DomainEvent::TodoTitleEdited(read(t, data)?),
        "TodoNotesEdited" => DomainEvent::TodoNotesEdited(read(t, data)?),
        "TodoDueDateSet" => DomainEvent::TodoDueDateSet(read(t, data)?),
        "TodoDueDateCleared" => DomainEvent::TodoDueDateCleared(read(t, data)?),
        "TodoCompleted" => DomainEvent::TodoCompleted(read(t, data)?),
        "TodoReopened" => DomainEvent::TodoReopened(read(t, data)?),
        "TodoMoved" => DomainEvent::TodoMoved(read(t, data)?),
        "TodoListChanged" => DomainEvent::TodoListChanged(read(t, data)?),
        "TodoDeleted" => DomainEvent::TodoDeleted(read(t, data)?),
        "TodoRestored" => DomainEvent::TodoRestored(read(t, data)?),
        "DeviceNamed" => DomainEvent::DeviceNamed(read(t, data)?),
        _ => {
            return Err(DecodeError::UnknownType {
                event_type: event_type.chars().take(64).collect(),
            })
        }
    })
}

fn current_version(event_type: &str) -> Option<u32> {
    EVENT_TYPES
        .iter()
        .find(|(name, _)| *name == event_type)
        .map(|(_, v)| *v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_dates_are_real_days() {
        for good in ["2026-11-24", "2024-02-29", "2000-02-29", "0001-01-01"] {
            assert_eq!(good.parse::<DueDate>().unwrap().to_string(), good);
        }
        for bad in [
            "2026-02-29",
            "1900-02-29",
            "2026-13-01",
            "2026-04-31",
            "26-11-24",
            "2026-1-024",
            "0000-01-01",
            "２026-11-24",
            "2026-11-2x",
        ] {
            assert!(bad.parse::<DueDate>().is_err(), "{bad}");
        }
    }

    #[test]
    fn unknown_types_and_versions_are_typed_errors() {
        assert!(matches!(
            DomainEvent::decode("TodoExploded", 1, "{}"),
            Err(DecodeError::UnknownType { .. })
        ));
        assert!(matches!(
            DomainEvent::decode("TodoCreated", 3, "{}"),
            Err(DecodeError::UnknownVersion { current: 2, .. })
        ));
        assert!(matches!(
            DomainEvent::decode("TodoTitleEdited", 1, r#"{"title": 5, "bases": []}"#),
            Err(DecodeError::BadData { .. })
        ));
        assert!(matches!(
            DomainEvent::decode("TodoDeleted", 1, r#"{"extra": 1}"#),
            Err(DecodeError::BadData { .. })
        ));
    }

    #[test]
    fn a_type_without_its_own_decoder_is_an_error_not_another_type() {
        // Data every deletion-shaped type would accept: before each type had its own arm, an
        // unlisted name fell through to TodoDeleted.
        for name in ["TodoArchived", "ListArchived", "", "todoDeleted"] {
            assert!(
                matches!(
                    parse_current(name, "{}"),
                    Err(DecodeError::UnknownType { .. })
                ),
                "{name:?}"
            );
        }
        // And every listed type decodes as itself.
        for (name, _) in EVENT_TYPES {
            if let Ok(event) = parse_current(name, "{}") {
                assert_eq!(event.event_type(), *name);
            }
        }
    }

    #[test]
    fn every_event_round_trips_through_its_stored_form() {
        let list = AggregateId::from_uuid(uuid::Uuid::from_bytes([1; 16]));
        let stamp: Stamp = "000000000000001-0000000000-02020202-0202-0202-0202-020202020202"
            .parse()
            .unwrap();
        let all = [
            DomainEvent::ListCreated(ListCreated {
                name: "Home".into(),
            }),
            DomainEvent::ListRenamed(ListRenamed {
                name: "House".into(),
                bases: vec![stamp],
            }),
            DomainEvent::ListDeleted(Deleted {}),
            DomainEvent::TodoCreated(TodoCreated {
                list_id: list,
                title: "milk".into(),
                position: "V".into(),
                due_date: Some("2026-12-01".parse().unwrap()),
            }),
            DomainEvent::TodoTitleEdited(TodoTitleEdited {
                title: "oat milk".into(),
                bases: vec![stamp],
            }),
            DomainEvent::TodoNotesEdited(TodoNotesEdited {
                notes: "2 l".into(),
                bases: vec![],
            }),
            DomainEvent::TodoDueDateSet(TodoDueDateSet {
                due_date: "2026-12-02".parse().unwrap(),
                bases: vec![],
            }),
            DomainEvent::TodoDueDateCleared(Bases { bases: vec![stamp] }),
            DomainEvent::TodoCompleted(Bases::default()),
            DomainEvent::TodoReopened(Bases::default()),
            DomainEvent::TodoMoved(TodoMoved {
                position: "k".into(),
                bases: vec![],
            }),
            DomainEvent::TodoListChanged(TodoListChanged {
                list_id: list,
                list_bases: vec![stamp],
                position: "m".into(),
                position_bases: vec![],
            }),
            DomainEvent::TodoDeleted(Deleted {}),
            DomainEvent::TodoRestored(Bases { bases: vec![stamp] }),
            DomainEvent::ListRestored(Bases { bases: vec![stamp] }),
            DomainEvent::DeviceNamed(DeviceNamed {
                name: "Chrome on Linux".into(),
                bases: vec![stamp],
            }),
        ];
        assert_eq!(all.len(), EVENT_TYPES.len());
        for event in all {
            let back =
                DomainEvent::decode(event.event_type(), event.schema_version(), &event.to_data())
                    .unwrap();
            assert_eq!(back, event);
        }
    }
}
