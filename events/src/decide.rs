//! The command side: `decide(state, command) -> events`. Pure: ids, stamps and time are added
//! around the result by the caller (the envelope), never made here.

use crate::domain::{
    Bases, Deleted, DeviceNamed, DomainEvent, DueDate, ListCreated, ListRenamed, TodoCreated,
    TodoDueDateSet, TodoListChanged, TodoMoved, TodoNotesEdited, TodoTitleEdited,
};
use crate::event::MAX_EVENT_DATA_BYTES;
use crate::ids::AggregateId;
use crate::merge::Field;
use crate::position;
use crate::state::{Deletion, DeviceState, ListState, TodoState};

pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_TITLE_CHARS: usize = 1_000;
pub const MAX_NOTES_CHARS: usize = 20_000;
pub const MAX_DEVICE_NAME_CHARS: usize = 60;

/// What a device does to its own name in a workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceCommand {
    /// Names the device. `if_unnamed`: only when it has no name yet (the name a page makes
    /// up from the browser and OS on first open never replaces one the user chose).
    Name { name: String, if_unnamed: bool },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListCommand {
    Create {
        name: String,
    },
    /// `resolving`: the user chose this value over the shown conflicts (they end). `shown`:
    /// the stamp of the name the author saw (`None`: the current one).
    Rename {
        name: String,
        resolving: bool,
        shown: Option<Stamp>,
    },
    Delete,
    /// Undoes every delete of the list this device has seen.
    Restore,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TodoCommand {
    Create {
        list_id: AggregateId,
        title: String,
        position: String,
        due_date: Option<DueDate>,
    },
    /// `shown`: the stamp of the value the author saw and replaces (`None`: the current one).
    Edit {
        edit: TodoEdit,
        resolving: bool,
        shown: Option<Stamp>,
    },
    /// To another list (which must exist), at `position` there. `shown_list` and
    /// `shown_position`: the stamps of the list and position the author saw. `resolving`: the
    /// user chose this list over the competing ones (also when it is the current one).
    MoveToList {
        list_id: AggregateId,
        position: String,
        shown_list: Option<Stamp>,
        shown_position: Option<Stamp>,
        resolving: bool,
    },
    Delete,
    /// Undoes every delete of the todo this device has seen.
    Restore,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TodoEdit {
    Title(String),
    Notes(String),
    DueDate(Option<DueDate>),
    Completed(bool),
    Position(String),
}

/// Why a command was refused; nothing happened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("{kind} {id} does not exist")]
    NotFound { kind: &'static str, id: AggregateId },
    #[error("{kind} {id} already exists")]
    AlreadyExists { kind: &'static str, id: AggregateId },
    #[error("{kind} {id} was deleted")]
    Deleted { kind: &'static str, id: AggregateId },
    #[error("{kind} {id} is not deleted")]
    NotDeleted { kind: &'static str, id: AggregateId },
    #[error("the {field} cannot be empty")]
    Empty { field: &'static str },
    #[error("the {field} has {chars} characters; at most {max} are allowed")]
    TooLong {
        field: &'static str,
        chars: usize,
        max: usize,
    },
    #[error("the change is {bytes} bytes of data; at most {max} are accepted (shorten the text)")]
    DataTooLarge { bytes: usize, max: usize },
    #[error(transparent)]
    Position(#[from] position::PositionError),
    #[error(transparent)]
    DueDate(#[from] crate::domain::DueDateError),
}

/// Refuses events whose data is over the server's limit ([`MAX_EVENT_DATA_BYTES`], measured on
/// the canonical JSON that is stored and sent): a command the server would refuse is refused
/// here, before anything is recorded. 20,000 characters of emoji are 80,000 bytes.
fn fits(events: Vec<DomainEvent>) -> Result<Vec<DomainEvent>, DomainError> {
    for e in &events {
        let bytes = e.to_data().len();
        if bytes > MAX_EVENT_DATA_BYTES {
            return Err(DomainError::DataTooLarge {
                bytes,
                max: MAX_EVENT_DATA_BYTES,
            });
        }
    }
    Ok(events)
}

fn text(
    field: &'static str,
    value: &str,
    max: usize,
    allow_empty: bool,
) -> Result<String, DomainError> {
    let trimmed = value.trim();
    if trimmed.is_empty() && !allow_empty {
        return Err(DomainError::Empty { field });
    }
    let chars = trimmed.chars().count();
    if chars > max {
        return Err(DomainError::TooLong { field, chars, max });
    }
    Ok(trimmed.to_string())
}

/// Decides a list command against the list's current state.
pub fn decide_list(
    id: AggregateId,
    list: &ListState,
    command: ListCommand,
) -> Result<Vec<DomainEvent>, DomainError> {
    fits(list_events(id, list, command)?)
}

fn list_events(
    id: AggregateId,
    list: &ListState,
    command: ListCommand,
) -> Result<Vec<DomainEvent>, DomainError> {
    let kind = "list";
    match command {
        ListCommand::Create { name } => {
            if list.created.is_some() {
                return Err(DomainError::AlreadyExists { kind, id });
            }
            let name = text("list name", &name, MAX_NAME_CHARS, false)?;
            Ok(vec![DomainEvent::ListCreated(ListCreated { name })])
        }
        ListCommand::Rename {
            name,
            resolving,
            shown,
        } => {
            live(list.created.is_some(), list.deleted(), kind, id)?;
            let name = text("list name", &name, MAX_NAME_CHARS, false)?;
            Ok(edit(&list.name, &name, resolving, shown)
                .map(|bases| DomainEvent::ListRenamed(ListRenamed { name, bases }))
                .into_iter()
                .collect())
        }
        ListCommand::Delete => {
            live(list.created.is_some(), list.deleted(), kind, id)?;
            Ok(vec![DomainEvent::ListDeleted(Deleted {})])
        }
        ListCommand::Restore => Ok(vec![DomainEvent::ListRestored(restore(
            list.created.is_some(),
            &list.deletion,
            kind,
            id,
        )?)]),
    }
}

/// Decides a device command against the device's state in the workspace.
pub fn decide_device(
    device: &DeviceState,
    command: DeviceCommand,
) -> Result<Vec<DomainEvent>, DomainError> {
    let DeviceCommand::Name { name, if_unnamed } = command;
    if if_unnamed && !device.name.is_empty() {
        return Ok(vec![]);
    }
    let name = text("device name", &name, MAX_DEVICE_NAME_CHARS, false)?;
    fits(
        edit(&device.name, &name, true, None)
            .map(|bases| DomainEvent::DeviceNamed(DeviceNamed { name, bases }))
            .into_iter()
            .collect(),
    )
}

/// Decides a todo command against the todo's state and (for creation) its list's.
pub fn decide_todo(
    id: AggregateId,
    todo: &TodoState,
    list: Option<&ListState>,
    command: TodoCommand,
) -> Result<Vec<DomainEvent>, DomainError> {
    fits(todo_events(id, todo, list, command)?)
}

fn todo_events(
    id: AggregateId,
    todo: &TodoState,
    list: Option<&ListState>,
    command: TodoCommand,
) -> Result<Vec<DomainEvent>, DomainError> {
    let kind = "todo";
    match command {
        TodoCommand::Create {
            list_id,
            title,
            position,
            due_date,
        } => {
            if todo.created.is_some() {
                return Err(DomainError::AlreadyExists { kind, id });
            }
            let list = list.ok_or(DomainError::NotFound {
                kind: "list",
                id: list_id,
            })?;
            live(list.created.is_some(), list.deleted(), "list", list_id)?;
            let title = text("title", &title, MAX_TITLE_CHARS, false)?;
            position::validate(&position)?;
            Ok(vec![DomainEvent::TodoCreated(TodoCreated {
                list_id,
                title,
                position,
                due_date,
            })])
        }
        TodoCommand::Edit {
            edit: change,
            resolving,
            shown,
        } => {
            live(todo.created.is_some(), todo.deleted(), kind, id)?;
            let event = match change {
                TodoEdit::Title(title) => {
                    let title = text("title", &title, MAX_TITLE_CHARS, false)?;
                    edit(&todo.title, &title, resolving, shown)
                        .map(|bases| DomainEvent::TodoTitleEdited(TodoTitleEdited { title, bases }))
                }
                TodoEdit::Notes(notes) => {
                    let notes = text("notes", &notes, MAX_NOTES_CHARS, true)?;
                    edit(&todo.notes, &notes, resolving, shown)
                        .map(|bases| DomainEvent::TodoNotesEdited(TodoNotesEdited { notes, bases }))
                }
                TodoEdit::DueDate(due) => {
                    edit(&todo.due_date, &due, resolving, shown).map(|bases| match due {
                        Some(due_date) => {
                            DomainEvent::TodoDueDateSet(TodoDueDateSet { due_date, bases })
                        }
                        None => DomainEvent::TodoDueDateCleared(Bases { bases }),
                    })
                }
                TodoEdit::Completed(done) => {
                    edit(&todo.completed, &done, resolving, shown).map(|bases| {
                        if done {
                            DomainEvent::TodoCompleted(Bases { bases })
                        } else {
                            DomainEvent::TodoReopened(Bases { bases })
                        }
                    })
                }
                TodoEdit::Position(position) => {
                    position::validate(&position)?;
                    edit(&todo.position, &position, resolving, shown)
                        .map(|bases| DomainEvent::TodoMoved(TodoMoved { position, bases }))
                }
            };
            Ok(event.into_iter().collect())
        }
        TodoCommand::MoveToList {
            list_id,
            position,
            shown_list,
            shown_position,
            resolving,
        } => {
            live(todo.created.is_some(), todo.deleted(), kind, id)?;
            let list = list.ok_or(DomainError::NotFound {
                kind: "list",
                id: list_id,
            })?;
            live(list.created.is_some(), list.deleted(), "list", list_id)?;
            position::validate(&position)?;
            let Some(list_bases) = edit(&todo.list, &list_id, resolving, shown_list) else {
                // Already in that list: a move within it.
                return Ok(edit(&todo.position, &position, false, shown_position)
                    .map(|bases| DomainEvent::TodoMoved(TodoMoved { position, bases }))
                    .into_iter()
                    .collect());
            };
            Ok(vec![DomainEvent::TodoListChanged(TodoListChanged {
                list_id,
                list_bases,
                position_bases: todo.position.bases_shown(shown_position, resolving),
                position,
            })])
        }
        TodoCommand::Delete => {
            live(todo.created.is_some(), todo.deleted(), kind, id)?;
            Ok(vec![DomainEvent::TodoDeleted(Deleted {})])
        }
        TodoCommand::Restore => Ok(vec![DomainEvent::TodoRestored(restore(
            todo.created.is_some(),
            &todo.deletion,
            kind,
            id,
        )?)]),
    }
}

/// The bases of a restore: every delete not yet restored (DESIGN.md rule 19). A restore needs
/// something deleted to undo.
fn restore(
    created: bool,
    deletion: &Deletion,
    kind: &'static str,
    id: AggregateId,
) -> Result<Bases, DomainError> {
    if !created {
        Err(DomainError::NotFound { kind, id })
    } else if !deletion.is_deleted() {
        Err(DomainError::NotDeleted { kind, id })
    } else {
        Ok(Bases {
            bases: deletion.restore_bases(),
        })
    }
}

fn live(
    created: bool,
    deleted: bool,
    kind: &'static str,
    id: AggregateId,
) -> Result<(), DomainError> {
    if !created {
        Err(DomainError::NotFound { kind, id })
    } else if deleted {
        Err(DomainError::Deleted { kind, id })
    } else {
        Ok(())
    }
}

/// The bases of an edit setting `field` to `value` over the value stamped `shown`, or `None`
/// when it would change nothing (same value, and no conflicts to resolve).
fn edit<V: PartialEq>(
    field: &Field<V>,
    value: &V,
    resolving: bool,
    shown: Option<Stamp>,
) -> Option<Vec<Stamp>> {
    let unchanged = field.winner().is_some_and(|w| w.value == value);
    if unchanged && (!resolving || field.conflicts().is_empty()) {
        return None;
    }
    Some(field.bases_shown(shown, resolving))
}

use crate::hlc::Stamp;
