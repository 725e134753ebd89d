//! An item's history as a person reads it: every event of the item with what it changed, the
//! old value (what the edit's author replaced: the values its `bases` name) and the new one.
//! Pure: a function of the item's events, whatever order they arrived in.

use std::collections::HashMap;

use crate::domain::DomainEvent;
use crate::event::Event;
use crate::hlc::Stamp;
use crate::ids::{DeviceId, EventId};

/// One field an event changed. Values are JSON (`"text"`, `true`, `null`, a list id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// `name`, `title`, `notes`, `due_date`, `completed`, `position`, `list` or `deleted`.
    pub field: &'static str,
    /// The values replaced: one for a plain edit, several when it resolved a conflict, none
    /// for a creation (or when the replaced edit is not known here).
    pub old: Vec<String>,
    pub new: String,
}

/// One event of the item, described.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub event_id: EventId,
    pub hlc: Stamp,
    pub device_id: DeviceId,
    pub created_at: i64,
    pub event_type: &'static str,
    pub changes: Vec<Change>,
}

fn json_text(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// What `event` sets, field by field, as JSON, with the bases of each.
pub(crate) fn sets(body: &DomainEvent) -> Vec<(&'static str, String, &[Stamp])> {
    const NONE: &[Stamp] = &[];
    match body {
        DomainEvent::ListCreated(e) => vec![("name", json_text(&e.name), NONE)],
        DomainEvent::ListRenamed(e) => vec![("name", json_text(&e.name), &e.bases)],
        DomainEvent::DeviceNamed(e) => vec![("name", json_text(&e.name), &e.bases)],
        DomainEvent::ListDeleted(_) | DomainEvent::TodoDeleted(_) => {
            vec![("deleted", "true".into(), NONE)]
        }
        DomainEvent::ListRestored(e) | DomainEvent::TodoRestored(e) => {
            vec![("deleted", "false".into(), &e.bases)]
        }
        DomainEvent::TodoCreated(e) => {
            let due = e
                .due_date
                .map_or_else(|| "null".into(), |d| json_text(&d.to_string()));
            vec![
                ("title", json_text(&e.title), NONE),
                ("notes", json_text(""), NONE),
                ("due_date", due, NONE),
                ("completed", "false".into(), NONE),
                ("position", json_text(&e.position), NONE),
                ("list", json_text(&e.list_id.to_string()), NONE),
            ]
        }
        DomainEvent::TodoTitleEdited(e) => vec![("title", json_text(&e.title), &e.bases)],
        DomainEvent::TodoNotesEdited(e) => vec![("notes", json_text(&e.notes), &e.bases)],
        DomainEvent::TodoDueDateSet(e) => {
            vec![("due_date", json_text(&e.due_date.to_string()), &e.bases)]
        }
        DomainEvent::TodoDueDateCleared(e) => vec![("due_date", "null".into(), &e.bases)],
        DomainEvent::TodoCompleted(e) => vec![("completed", "true".into(), &e.bases)],
        DomainEvent::TodoReopened(e) => vec![("completed", "false".into(), &e.bases)],
        DomainEvent::TodoMoved(e) => vec![("position", json_text(&e.position), &e.bases)],
        DomainEvent::TodoListChanged(e) => vec![
            ("list", json_text(&e.list_id.to_string()), &e.list_bases),
            ("position", json_text(&e.position), &e.position_bases),
        ],
    }
}

/// The item's events described, oldest first (by stamp, then id), each event once. A
/// creation lists only the fields it set to something (its title, a due date, its list).
pub fn describe(events: &[Event]) -> Vec<Entry> {
    let mut events: Vec<&Event> = events.iter().collect();
    events.sort_by_key(|e| (e.hlc, e.event_id));
    events.dedup_by_key(|e| e.event_id);
    // Every value by (field, stamp), so an edit's bases read back as the values they were.
    let mut values: HashMap<(&'static str, Stamp), String> = HashMap::new();
    for e in &events {
        for (field, value, _) in sets(&e.body) {
            values.insert((field, e.hlc), value);
        }
    }
    events
        .iter()
        .map(|e| {
            let creation = matches!(e.body, DomainEvent::TodoCreated(_));
            let changes = sets(&e.body)
                .into_iter()
                .filter(|(field, value, _)| {
                    !creation
                        || matches!(*field, "title" | "list")
                        || (*field == "due_date" && value != "null")
                })
                .map(|(field, new, bases)| Change {
                    field,
                    old: bases
                        .iter()
                        .filter_map(|b| values.get(&(field, *b)).cloned())
                        .collect(),
                    new,
                })
                .collect();
            Entry {
                event_id: e.event_id,
                hlc: e.hlc,
                device_id: e.device_id,
                created_at: e.created_at,
                event_type: e.body.event_type(),
                changes,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Bases, Deleted, TodoCreated, TodoTitleEdited};
    use crate::ids::{AggregateId, WorkspaceId};

    fn stamp(ms: u64, d: u8) -> Stamp {
        Stamp {
            ms,
            counter: 0,
            node: DeviceId::from_uuid(uuid::Uuid::from_bytes([d; 16])),
        }
    }

    fn event(n: u8, ms: u64, d: u8, body: DomainEvent) -> Event {
        Event {
            event_id: EventId::from_uuid(uuid::Uuid::from_bytes([n; 16])),
            workspace_id: WorkspaceId::DEFAULT,
            aggregate_id: AggregateId::from_uuid(uuid::Uuid::from_bytes([9; 16])),
            hlc: stamp(ms, d),
            device_id: DeviceId::from_uuid(uuid::Uuid::from_bytes([d; 16])),
            version: u64::from(n),
            created_at: ms as i64,
            body,
        }
    }

    #[test]
    fn edits_read_as_old_to_new_in_any_order() {
        let list = AggregateId::from_uuid(uuid::Uuid::from_bytes([7; 16]));
        let created = event(
            1,
            10,
            1,
            DomainEvent::TodoCreated(TodoCreated {
                list_id: list,
                title: "milk".into(),
                position: "V".into(),
                due_date: None,
            }),
        );
        let a = event(
            2,
            20,
            1,
            DomainEvent::TodoTitleEdited(TodoTitleEdited {
                title: "oat milk".into(),
                bases: vec![stamp(10, 1)],
            }),
        );
        let b = event(
            3,
            21,
            2,
            DomainEvent::TodoTitleEdited(TodoTitleEdited {
                title: "almond milk".into(),
                bases: vec![stamp(10, 1)],
            }),
        );
        let merged = event(
            4,
            30,
            2,
            DomainEvent::TodoTitleEdited(TodoTitleEdited {
                title: "both".into(),
                bases: vec![stamp(21, 2), stamp(20, 1)],
            }),
        );
        let done = event(
            5,
            40,
            1,
            DomainEvent::TodoCompleted(Bases {
                bases: vec![stamp(10, 1)],
            }),
        );
        let gone = event(6, 50, 2, DomainEvent::TodoDeleted(Deleted {}));
        let all = [created, a, b, merged, done, gone];
        let mut shuffled: Vec<Event> = all.iter().rev().cloned().collect();
        shuffled.push(all[1].clone());
        let described = describe(&shuffled);
        assert_eq!(described, describe(&all));
        type Line<'a> = (&'a str, Vec<String>, String);
        let text: Vec<(&str, Vec<Line>)> = described
            .iter()
            .map(|e| {
                (
                    e.event_type,
                    e.changes
                        .iter()
                        .map(|c| (c.field, c.old.clone(), c.new.clone()))
                        .collect(),
                )
            })
            .collect();
        let q = |s: &str| format!("\"{s}\"");
        assert_eq!(
            text,
            vec![
                (
                    "TodoCreated",
                    vec![
                        ("title", vec![], q("milk")),
                        ("list", vec![], q(&list.to_string()))
                    ]
                ),
                (
                    "TodoTitleEdited",
                    vec![("title", vec![q("milk")], q("oat milk"))]
                ),
                (
                    "TodoTitleEdited",
                    vec![("title", vec![q("milk")], q("almond milk"))]
                ),
                (
                    "TodoTitleEdited",
                    vec![("title", vec![q("almond milk"), q("oat milk")], q("both"))]
                ),
                (
                    "TodoCompleted",
                    vec![("completed", vec!["false".into()], "true".into())]
                ),
                ("TodoDeleted", vec![("deleted", vec![], "true".into())]),
            ]
        );
    }
}
