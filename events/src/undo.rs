//! Undo and redo (DESIGN.md rule 19): the events that take back one of this device's own
//! events, recorded like any edit. Their bases name only the undone event's stamp, so they
//! never supersede anyone else's change: a field someone has changed since (an edit that named
//! the undone one) cannot be undone, and the refusal says who; an edit made concurrently with
//! the undo stays a conflict. A redo is the undo of an undo. Pure: a function of the item's
//! events.

use crate::domain::{
    Bases, Deleted, DomainEvent, ListRenamed, TodoDueDateSet, TodoListChanged, TodoMoved,
    TodoNotesEdited, TodoTitleEdited,
};
use crate::event::Event;
use crate::hlc::Stamp;
use crate::ids::DeviceId;
use crate::merge::Field;
use crate::state::{Aggregate, Deletion};

/// Why an event cannot be undone; nothing is recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UndoError {
    /// Someone (maybe this device, from another action) changed it since.
    #[error("the {what} was changed since by device {device}")]
    ChangedSince {
        what: &'static str,
        device: DeviceId,
    },
    /// The item was deleted since (by `device`).
    #[error("it was deleted since by device {device}")]
    Deleted { device: DeviceId },
    /// What the undo would do is already so (a delete already restored, say).
    #[error("there is nothing left to undo: {0}")]
    AlreadyUndone(&'static str),
    /// The value before the change is not among this device's events.
    #[error("the value before this change is not known here")]
    Unknown,
    /// A kind of change that is not undone (a device's name).
    #[error("this change cannot be undone")]
    NotUndoable,
}

/// The events that undo `undone` (an event of this aggregate, in `history` too), decided on
/// the aggregate's state folded from `history` (its events, in any order).
pub fn compensate(history: &[Event], undone: &Event) -> Result<Vec<DomainEvent>, UndoError> {
    let mut state = Aggregate::default();
    for e in history {
        state.apply(e);
    }
    let s = undone.hlc;
    let bases = vec![s];
    let (list, todo) = (&state.list, &state.todo);
    match &undone.body {
        DomainEvent::TodoCreated(_) | DomainEvent::ListCreated(_) => {
            let deletion = if matches!(undone.body, DomainEvent::TodoCreated(_)) {
                &todo.deletion
            } else {
                &list.deletion
            };
            if deletion.is_deleted() {
                return Err(AlreadyUndone("it is deleted already"));
            }
            // An add someone has changed since is theirs too: not taken back.
            if let Some(other) = history
                .iter()
                .filter(|e| e.device_id != undone.device_id)
                .max_by_key(|e| e.hlc)
            {
                return Err(UndoError::ChangedSince {
                    what: "item",
                    device: other.device_id,
                });
            }
            Ok(vec![
                if matches!(undone.body, DomainEvent::TodoCreated(_)) {
                    DomainEvent::TodoDeleted(Deleted {})
                } else {
                    DomainEvent::ListDeleted(Deleted {})
                },
            ])
        }
        DomainEvent::TodoDeleted(_) => {
            if todo.deletion.restored(&s) {
                return Err(AlreadyUndone("it was restored already"));
            }
            Ok(vec![DomainEvent::TodoRestored(Bases { bases })])
        }
        DomainEvent::ListDeleted(_) => {
            if list.deletion.restored(&s) {
                return Err(AlreadyUndone("it was restored already"));
            }
            Ok(vec![DomainEvent::ListRestored(Bases { bases })])
        }
        DomainEvent::TodoRestored(_) => {
            live(&todo.deletion)?;
            Ok(vec![DomainEvent::TodoDeleted(Deleted {})])
        }
        DomainEvent::ListRestored(_) => {
            live(&list.deletion)?;
            Ok(vec![DomainEvent::ListDeleted(Deleted {})])
        }
        DomainEvent::DeviceNamed(_) => Err(UndoError::NotUndoable),
        DomainEvent::ListRenamed(e) => {
            live(&list.deletion)?;
            let (name, bases) = previous(history, &list.name, undone, "name", &e.bases)?;
            Ok(vec![DomainEvent::ListRenamed(ListRenamed { name, bases })])
        }
        body => {
            live(&todo.deletion)?;
            let event = match body {
                DomainEvent::TodoTitleEdited(e) => {
                    let (title, bases) = previous(history, &todo.title, undone, "title", &e.bases)?;
                    DomainEvent::TodoTitleEdited(TodoTitleEdited { title, bases })
                }
                DomainEvent::TodoNotesEdited(e) => {
                    let (notes, bases) = previous(history, &todo.notes, undone, "notes", &e.bases)?;
                    DomainEvent::TodoNotesEdited(TodoNotesEdited { notes, bases })
                }
                DomainEvent::TodoDueDateSet(TodoDueDateSet { bases: b, .. })
                | DomainEvent::TodoDueDateCleared(Bases { bases: b }) => {
                    let (due, bases) = previous(history, &todo.due_date, undone, "due_date", b)?;
                    match due {
                        Some(due_date) => {
                            DomainEvent::TodoDueDateSet(TodoDueDateSet { due_date, bases })
                        }
                        None => DomainEvent::TodoDueDateCleared(Bases { bases }),
                    }
                }
                DomainEvent::TodoCompleted(Bases { bases: b })
                | DomainEvent::TodoReopened(Bases { bases: b }) => {
                    let (done, bases) = previous(history, &todo.completed, undone, "completed", b)?;
                    if done {
                        DomainEvent::TodoCompleted(Bases { bases })
                    } else {
                        DomainEvent::TodoReopened(Bases { bases })
                    }
                }
                DomainEvent::TodoMoved(e) => {
                    let (position, bases) =
                        previous(history, &todo.position, undone, "position", &e.bases)?;
                    DomainEvent::TodoMoved(TodoMoved { position, bases })
                }
                DomainEvent::TodoListChanged(e) => {
                    let (list_id, list_bases) =
                        previous(history, &todo.list, undone, "list", &e.list_bases)?;
                    let (position, position_bases) = previous(
                        history,
                        &todo.position,
                        undone,
                        "position",
                        &e.position_bases,
                    )?;
                    DomainEvent::TodoListChanged(TodoListChanged {
                        list_id,
                        list_bases,
                        position,
                        position_bases,
                    })
                }
                _ => return Err(UndoError::NotUndoable),
            };
            Ok(vec![event])
        }
    }
}

use UndoError::AlreadyUndone;

/// Refuses when the item is deleted now, naming the device of its newest live delete.
fn live(deletion: &Deletion) -> Result<(), UndoError> {
    match deletion.live().last() {
        Some((_, device)) => Err(UndoError::Deleted { device }),
        None => Ok(()),
    }
}

/// The value `field` had before the edit stamped `s` (the value its author replaced: the
/// first of its bases this device knows, the one shown), and the bases of the undo: `s`, plus —
/// when `s` was replaced since only by this device's own edits that hold `s`'s value again (an
/// undo of a later change: undoing twice in a row) — those edits too. Anyone else's standing
/// edit refuses it, naming them.
fn previous<V: Clone + PartialEq>(
    history: &[Event],
    field: &Field<V>,
    undone: &Event,
    name: &'static str,
    undone_bases: &[Stamp],
) -> Result<(V, Vec<Stamp>), UndoError> {
    let (s, me) = (undone.hlc, undone.device_id);
    let mut bases = vec![s];
    if field.superseded(&s) {
        let standing: Vec<_> = field
            .winner()
            .into_iter()
            .chain(field.conflicts())
            .collect();
        let value = field.value_at(&s);
        let own_again = !standing.is_empty()
            && standing
                .iter()
                .all(|e| e.device_id == me && Some(e.value) == value);
        if !own_again {
            let superseders = history.iter().filter(|e| {
                crate::history::sets(&e.body)
                    .iter()
                    .any(|(f, _, b)| *f == name && b.contains(&s))
            });
            let others = superseders
                .clone()
                .filter(|e| e.device_id != me)
                .max_by_key(|e| e.hlc);
            let device = others
                .map(|e| e.device_id)
                .or_else(|| {
                    standing
                        .iter()
                        .find(|e| e.device_id != me)
                        .map(|e| e.device_id)
                })
                .unwrap_or(me);
            return Err(UndoError::ChangedSince {
                what: field_name(name),
                device,
            });
        }
        bases.extend(standing.iter().map(|e| e.stamp));
    }
    let old = undone_bases
        .iter()
        .find_map(|b| field.value_at(b))
        .cloned()
        .ok_or(UndoError::Unknown)?;
    Ok((old, bases))
}

fn field_name(field: &'static str) -> &'static str {
    match field {
        "due_date" => "due date",
        "completed" => "done mark",
        "position" => "order",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::TodoCreated;
    use crate::ids::{AggregateId, EventId, WorkspaceId};

    fn dev(d: u8) -> DeviceId {
        DeviceId::from_uuid(uuid::Uuid::from_bytes([d; 16]))
    }

    fn stamp(ms: u64, d: u8) -> Stamp {
        Stamp {
            ms,
            counter: 0,
            node: dev(d),
        }
    }

    fn event(ms: u64, d: u8, body: DomainEvent) -> Event {
        Event {
            event_id: EventId::from_uuid(uuid::Uuid::from_u128(
                u128::from(ms) << 8 | u128::from(d),
            )),
            workspace_id: WorkspaceId::DEFAULT,
            aggregate_id: AggregateId::from_uuid(uuid::Uuid::from_bytes([9; 16])),
            hlc: stamp(ms, d),
            device_id: dev(d),
            version: 1,
            created_at: ms as i64,
            body,
        }
    }

    fn created(d: u8) -> Event {
        event(
            1,
            d,
            DomainEvent::TodoCreated(TodoCreated {
                list_id: AggregateId::from_uuid(uuid::Uuid::from_bytes([7; 16])),
                title: "milk".into(),
                position: "V".into(),
                due_date: None,
            }),
        )
    }

    fn title(ms: u64, d: u8, t: &str, bases: Vec<Stamp>) -> Event {
        event(
            ms,
            d,
            DomainEvent::TodoTitleEdited(TodoTitleEdited {
                title: t.into(),
                bases,
            }),
        )
    }

    #[test]
    fn an_edit_is_undone_to_the_value_it_replaced_naming_only_itself() {
        let c = created(1);
        let edit = title(2, 1, "oat milk", vec![stamp(1, 1)]);
        let history = vec![c, edit.clone()];
        assert_eq!(
            compensate(&history, &edit),
            Ok(vec![DomainEvent::TodoTitleEdited(TodoTitleEdited {
                title: "milk".into(),
                bases: vec![stamp(2, 1)],
            })])
        );
    }

    #[test]
    fn an_edit_someone_changed_since_is_not_undone_and_says_who() {
        let c = created(1);
        let mine = title(2, 1, "oat milk", vec![stamp(1, 1)]);
        let theirs = title(3, 2, "almond milk", vec![stamp(2, 1)]);
        let history = vec![c.clone(), mine.clone(), theirs];
        assert_eq!(
            compensate(&history, &mine),
            Err(UndoError::ChangedSince {
                what: "title",
                device: dev(2)
            })
        );
        // A concurrent edit (that did not see mine) does not block it: the undo and theirs
        // then stand as a conflict.
        let concurrent = title(3, 2, "almond milk", vec![stamp(1, 1)]);
        let history = vec![c, mine.clone(), concurrent];
        assert!(compensate(&history, &mine).is_ok());
    }

    #[test]
    fn two_undos_in_a_row_on_one_field_go_back_twice() {
        let c = created(1);
        let tick = event(
            2,
            1,
            DomainEvent::TodoCompleted(Bases {
                bases: vec![stamp(1, 1)],
            }),
        );
        let untick = event(
            3,
            1,
            DomainEvent::TodoReopened(Bases {
                bases: vec![stamp(2, 1)],
            }),
        );
        let mut history = vec![c, tick.clone(), untick.clone()];
        let first = compensate(&history, &untick).unwrap();
        assert_eq!(
            first,
            vec![DomainEvent::TodoCompleted(Bases {
                bases: vec![stamp(3, 1)]
            })]
        );
        history.push(event(4, 1, first[0].clone()));
        // The tick was replaced only by this device's untick and its undo (which ticks again).
        assert_eq!(
            compensate(&history, &tick),
            Ok(vec![DomainEvent::TodoReopened(Bases {
                bases: vec![stamp(2, 1), stamp(4, 1)]
            })])
        );
        // Not when another device's edit stands.
        history.push(event(
            5,
            2,
            DomainEvent::TodoReopened(Bases {
                bases: vec![stamp(4, 1)],
            }),
        ));
        assert_eq!(
            compensate(&history, &tick),
            Err(UndoError::ChangedSince {
                what: "done mark",
                device: dev(2)
            })
        );
    }

    #[test]
    fn an_add_is_undone_by_a_delete_unless_someone_else_touched_the_item() {
        let c = created(1);
        assert_eq!(
            compensate(std::slice::from_ref(&c), &c),
            Ok(vec![DomainEvent::TodoDeleted(Deleted {})])
        );
        let theirs = event(
            5,
            2,
            DomainEvent::TodoCompleted(Bases {
                bases: vec![stamp(1, 1)],
            }),
        );
        assert_eq!(
            compensate(&[c.clone(), theirs], &c),
            Err(UndoError::ChangedSince {
                what: "item",
                device: dev(2)
            })
        );
    }

    #[test]
    fn a_delete_is_undone_by_a_restore_of_that_delete_only() {
        let c = created(1);
        let mine = event(2, 1, DomainEvent::TodoDeleted(Deleted {}));
        let theirs = event(3, 2, DomainEvent::TodoDeleted(Deleted {}));
        let history = vec![c, mine.clone(), theirs.clone()];
        let undo = compensate(&history, &mine).unwrap();
        assert_eq!(
            undo,
            vec![DomainEvent::TodoRestored(Bases {
                bases: vec![stamp(2, 1)]
            })]
        );
        // Their delete still wins: the item stays deleted.
        let mut state = Aggregate::default();
        for e in history.iter().chain([&event(4, 1, undo[0].clone())]) {
            state.apply(e);
        }
        assert!(state.todo.deleted());
        // An edit of an item deleted since is refused, naming the deleter.
        let edit = title(2, 1, "x", vec![stamp(1, 1)]);
        let history = vec![created(1), edit.clone(), theirs];
        assert_eq!(
            compensate(&history, &edit),
            Err(UndoError::Deleted { device: dev(2) })
        );
    }
}
