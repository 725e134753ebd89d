//! The fold: an aggregate's state from the *set* of its events, and the view rows it yields.
//!
//! Applying is idempotent by event id and independent of order (DESIGN.md rules 17, 19, 20):
//! fields merge by [`crate::merge::Field`]; creation keeps the least `(stamp, event id)`;
//! an item is deleted while a delete of it is not named by a restore ([`Deletion`]): no
//! ordinary edit undoes a delete. Edits that arrive before the creation are kept and
//! show once it arrives. The same fold serves the command side (`decide`), incremental
//! projection and full rebuilds, so they cannot disagree.

use crate::domain::{DomainEvent, DueDate};
use crate::event::{Event, StoredEvent};
use crate::hlc::Stamp;
use crate::ids::{AggregateId, DeviceId, EventId, WorkspaceId};
use crate::merge::Field;

/// Who made an aggregate, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Creation {
    pub stamp: Stamp,
    pub event_id: EventId,
    pub workspace_id: WorkspaceId,
    pub created_at: i64,
}

impl Creation {
    fn of(event: &Event) -> Self {
        Self {
            stamp: event.hlc,
            event_id: event.event_id,
            workspace_id: event.workspace_id,
            created_at: event.created_at,
        }
    }

    /// Keeps the least creation, so duplicates and orders agree.
    fn merge(slot: &mut Option<Self>, new: Self) {
        if slot.is_none_or(|old| (new.stamp, new.event_id) < (old.stamp, old.event_id)) {
            *slot = Some(new);
        }
    }
}

/// An item's deletes and restores (DESIGN.md rule 19): it is deleted while some delete of it
/// is not named in the `bases` of a restore. Both are grow-only sets of stamps, so the answer
/// is a function of the set of events, whatever their order, duplicates included.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deletion {
    /// Sorted, without duplicates: the stamps of the deletes, with their devices.
    deletes: Vec<(Stamp, DeviceId)>,
    /// Sorted, without duplicates: every stamp some restore named.
    restored: Vec<Stamp>,
}

impl Deletion {
    fn delete(&mut self, stamp: Stamp, device: DeviceId) {
        if let Err(at) = self.deletes.binary_search(&(stamp, device)) {
            self.deletes.insert(at, (stamp, device));
        }
    }

    fn restore(&mut self, bases: &[Stamp]) {
        for base in bases {
            if let Err(at) = self.restored.binary_search(base) {
                self.restored.insert(at, *base);
            }
        }
    }

    /// The deletes no restore named, oldest first.
    pub fn live(&self) -> impl Iterator<Item = (Stamp, DeviceId)> + '_ {
        self.deletes
            .iter()
            .copied()
            .filter(|(stamp, _)| self.restored.binary_search(stamp).is_err())
    }

    pub fn is_deleted(&self) -> bool {
        self.live().next().is_some()
    }

    /// Whether a restore named the delete stamped `stamp`.
    pub fn restored(&self, stamp: &Stamp) -> bool {
        self.restored.binary_search(stamp).is_ok()
    }

    /// The bases of a restore: every delete not yet restored.
    pub fn restore_bases(&self) -> Vec<Stamp> {
        self.live().map(|(stamp, _)| stamp).collect()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListState {
    pub created: Option<Creation>,
    pub name: Field<String>,
    pub deletion: Deletion,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TodoState {
    pub created: Option<Creation>,
    /// The list of the least creation.
    pub list_id: Option<AggregateId>,
    /// The list it is in: set by its creation, changed by moves to another list.
    pub list: Field<AggregateId>,
    pub title: Field<String>,
    pub notes: Field<String>,
    pub due_date: Field<Option<DueDate>>,
    pub completed: Field<bool>,
    pub position: Field<String>,
    pub deletion: Deletion,
}

/// A device's profile in a workspace: its name (one author, the device itself, so conflicts
/// arise only from a device's own concurrent tabs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceState {
    /// The workspace of its least naming event.
    pub workspace: Option<(Stamp, EventId, WorkspaceId)>,
    pub name: Field<String>,
}

/// One aggregate id's state. An id is a list, a todo or a device; should forged events use one
/// id for several, each state is kept, deterministically.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Aggregate {
    pub list: ListState,
    pub todo: TodoState,
    pub device: DeviceState,
}

impl ListState {
    pub fn exists(&self) -> bool {
        self.created.is_some() && !self.deleted()
    }

    pub fn deleted(&self) -> bool {
        self.deletion.is_deleted()
    }
}

impl TodoState {
    pub fn exists(&self) -> bool {
        self.created.is_some() && !self.deleted()
    }

    pub fn deleted(&self) -> bool {
        self.deletion.is_deleted()
    }
}

impl Aggregate {
    /// Folds one event in. Applying an event twice, or in any order, gives the same state.
    pub fn apply(&mut self, event: &Event) {
        let (s, id, dev) = (event.hlc, event.event_id, event.device_id);
        match &event.body {
            DomainEvent::ListCreated(e) => {
                Creation::merge(&mut self.list.created, Creation::of(event));
                self.list.name.add(s, id, dev, e.name.clone(), &[]);
            }
            DomainEvent::ListRenamed(e) => self.list.name.add(s, id, dev, e.name.clone(), &e.bases),
            DomainEvent::ListDeleted(_) => self.list.deletion.delete(s, dev),
            DomainEvent::ListRestored(e) => self.list.deletion.restore(&e.bases),
            DomainEvent::TodoCreated(e) => {
                let creation = Creation::of(event);
                let least = self.todo.created.is_none_or(|old| {
                    (creation.stamp, creation.event_id) < (old.stamp, old.event_id)
                });
                if least {
                    self.todo.list_id = Some(e.list_id);
                }
                Creation::merge(&mut self.todo.created, creation);
                let t = &mut self.todo;
                t.title.add(s, id, dev, e.title.clone(), &[]);
                t.notes.add(s, id, dev, String::new(), &[]);
                t.due_date.add(s, id, dev, e.due_date, &[]);
                t.completed.add(s, id, dev, false, &[]);
                t.position.add(s, id, dev, e.position.clone(), &[]);
                t.list.add(s, id, dev, e.list_id, &[]);
            }
            DomainEvent::TodoTitleEdited(e) => {
                self.todo.title.add(s, id, dev, e.title.clone(), &e.bases)
            }
            DomainEvent::TodoNotesEdited(e) => {
                self.todo.notes.add(s, id, dev, e.notes.clone(), &e.bases)
            }
            DomainEvent::TodoDueDateSet(e) => {
                self.todo
                    .due_date
                    .add(s, id, dev, Some(e.due_date), &e.bases)
            }
            DomainEvent::TodoDueDateCleared(e) => {
                self.todo.due_date.add(s, id, dev, None, &e.bases)
            }
            DomainEvent::TodoCompleted(e) => self.todo.completed.add(s, id, dev, true, &e.bases),
            DomainEvent::TodoReopened(e) => self.todo.completed.add(s, id, dev, false, &e.bases),
            DomainEvent::TodoMoved(e) => {
                self.todo
                    .position
                    .add(s, id, dev, e.position.clone(), &e.bases)
            }
            DomainEvent::TodoListChanged(e) => {
                let t = &mut self.todo;
                t.list.add(s, id, dev, e.list_id, &e.list_bases);
                t.position
                    .add(s, id, dev, e.position.clone(), &e.position_bases);
            }
            DomainEvent::TodoDeleted(_) => self.todo.deletion.delete(s, dev),
            DomainEvent::TodoRestored(e) => self.todo.deletion.restore(&e.bases),
            DomainEvent::DeviceNamed(e) => {
                let d = &mut self.device;
                let key = (s, id, event.workspace_id);
                if d.workspace
                    .is_none_or(|old| (key.0, key.1) < (old.0, old.1))
                {
                    d.workspace = Some(key);
                }
                d.name.add(s, id, dev, e.name.clone(), &e.bases);
            }
        }
    }

    /// The view rows of this aggregate.
    pub fn rows(&self, aggregate_id: AggregateId) -> Rows {
        let mut rows = Rows::default();
        if let (Some((.., workspace_id)), Some(name)) =
            (self.device.workspace, self.device.name.winner())
        {
            rows.device = Some(DeviceRow {
                aggregate_id,
                device_id: name.device_id,
                workspace_id,
                name: name.value.clone(),
                name_hlc: name.stamp,
            });
        }
        if let (Some(created), Some(name)) = (self.list.created, self.list.name.winner()) {
            rows.list = Some(ListRow {
                list_id: aggregate_id,
                workspace_id: created.workspace_id,
                name: name.value.clone(),
                name_hlc: name.stamp,
                created_hlc: created.stamp,
                created_at: created.created_at,
                deleted: self.list.deleted(),
            });
            if !self.list.deleted() {
                conflicts(
                    &mut rows.conflicts,
                    aggregate_id,
                    "name",
                    &self.list.name,
                    |v| json_str(v),
                );
            }
        }
        let t = &self.todo;
        // The list a move chose wins over the creation's (a creation always sets one).
        let list_id = t.list.winner().map(|w| *w.value).or(t.list_id);
        if let (Some(created), Some(list_id)) = (t.created, list_id) {
            // A creation sets every field, so each has a winner once created.
            let (Some(title), Some(notes), Some(due), Some(done), Some(pos), Some(list)) = (
                t.title.winner(),
                t.notes.winner(),
                t.due_date.winner(),
                t.completed.winner(),
                t.position.winner(),
                t.list.winner(),
            ) else {
                return rows;
            };
            rows.todo = Some(TodoRow {
                todo_id: aggregate_id,
                workspace_id: created.workspace_id,
                list_id,
                title: title.value.clone(),
                notes: notes.value.clone(),
                due_date: due.value.map(|d| d.to_string()),
                completed: *done.value,
                position: pos.value.clone(),
                created_hlc: created.stamp,
                created_at: created.created_at,
                title_hlc: title.stamp,
                notes_hlc: notes.stamp,
                due_date_hlc: due.stamp,
                completed_hlc: done.stamp,
                position_hlc: pos.stamp,
                list_hlc: list.stamp,
                deleted: t.deleted(),
            });
            if !t.deleted() {
                let c = &mut rows.conflicts;
                conflicts(c, aggregate_id, "title", &t.title, |v| json_str(v));
                conflicts(c, aggregate_id, "notes", &t.notes, |v| json_str(v));
                conflicts(c, aggregate_id, "due_date", &t.due_date, |v| match v {
                    Some(d) => json_str(&d.to_string()),
                    None => "null".into(),
                });
                conflicts(c, aggregate_id, "completed", &t.completed, |v| {
                    v.to_string()
                });
                conflicts(c, aggregate_id, "position", &t.position, |v| json_str(v));
                conflicts(c, aggregate_id, "list", &t.list, |v| {
                    json_str(&v.to_string())
                });
            }
        }
        rows
    }
}

/// Every field a conflict row may name, in the order [`Aggregate::rows`] lists them (a stored
/// row's field maps back to one of these).
pub const CONFLICT_FIELDS: &[&str] = &[
    "name",
    "title",
    "notes",
    "due_date",
    "completed",
    "position",
    "list",
];

fn json_str(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// The field's conflicts whose values differ from the current one: equal competing values are
/// not conflicts for the user (DESIGN.md rule 19: two people ticking the same box). They stay
/// in the field, so a resolving edit still names them.
fn conflicts<V: PartialEq>(
    out: &mut Vec<ConflictRow>,
    aggregate_id: AggregateId,
    field: &'static str,
    edits: &Field<V>,
    encode: impl Fn(&V) -> String,
) {
    let current = edits.winner().map(|w| w.value);
    let differing = edits
        .conflicts()
        .into_iter()
        .filter(|e| Some(e.value) != current);
    out.extend(differing.map(|e| ConflictRow {
        aggregate_id,
        field,
        hlc: e.stamp,
        event_id: e.event_id,
        device_id: e.device_id,
        value: encode(e.value),
    }));
}

/// The rows one aggregate contributes to the views.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rows {
    pub list: Option<ListRow>,
    pub todo: Option<TodoRow>,
    pub device: Option<DeviceRow>,
    pub conflicts: Vec<ConflictRow>,
}

/// A device's name in a workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRow {
    pub aggregate_id: AggregateId,
    pub device_id: DeviceId,
    pub workspace_id: WorkspaceId,
    pub name: String,
    pub name_hlc: Stamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListRow {
    pub list_id: AggregateId,
    pub workspace_id: WorkspaceId,
    pub name: String,
    pub name_hlc: Stamp,
    pub created_hlc: Stamp,
    pub created_at: i64,
    pub deleted: bool,
}

/// A todo's current state, with the stamp of each field's winning edit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TodoRow {
    pub todo_id: AggregateId,
    pub workspace_id: WorkspaceId,
    pub list_id: AggregateId,
    pub title: String,
    pub notes: String,
    pub due_date: Option<String>,
    pub completed: bool,
    pub position: String,
    pub created_hlc: Stamp,
    pub created_at: i64,
    pub title_hlc: Stamp,
    pub notes_hlc: Stamp,
    pub due_date_hlc: Stamp,
    pub completed_hlc: Stamp,
    pub position_hlc: Stamp,
    pub list_hlc: Stamp,
    pub deleted: bool,
}

/// An edit nobody superseded that lost to a newer one: shown to the user until resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConflictRow {
    pub aggregate_id: AggregateId,
    pub field: &'static str,
    pub hlc: Stamp,
    pub event_id: EventId,
    pub device_id: DeviceId,
    /// The losing value as JSON.
    pub value: String,
}

/// One line of an item's history: every event that touched it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRow {
    pub aggregate_id: AggregateId,
    pub hlc: Stamp,
    pub event_id: EventId,
    pub event_type: &'static str,
    pub device_id: DeviceId,
    pub created_at: i64,
    /// The event's data in the current schema, as JSON.
    pub data: String,
}

impl HistoryRow {
    /// The history line of `event`, decoded from `stored`. The data is the stored JSON when it
    /// is already in the current schema, and the upcast data re-encoded otherwise.
    pub fn of(stored: &StoredEvent, event: &Event) -> Self {
        let data = if stored.schema_version == event.body.schema_version() {
            stored.event_data.clone()
        } else {
            event.body.to_data()
        };
        Self {
            aggregate_id: event.aggregate_id,
            hlc: event.hlc,
            event_id: event.event_id,
            event_type: event.body.event_type(),
            device_id: event.device_id,
            created_at: event.created_at,
            data,
        }
    }
}

/// Every aggregate's state and every history line: the whole views, in memory. Used by full
/// rebuilds and by tests as the reference. Hash map and vector while folding (fast); sorted
/// when turned into rows (deterministic).
#[derive(Debug, Clone, Default)]
pub struct Model {
    pub aggregates: std::collections::HashMap<AggregateId, Aggregate>,
    history: Vec<HistoryRow>,
}

/// The views as sorted rows: the canonical dump of DESIGN.md rule 20.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllRows {
    pub lists: Vec<ListRow>,
    pub todos: Vec<TodoRow>,
    pub devices: Vec<DeviceRow>,
    pub conflicts: Vec<ConflictRow>,
    pub history: Vec<HistoryRow>,
}

impl Model {
    /// Folds in `event`, decoded from `stored`.
    pub fn apply(&mut self, stored: &StoredEvent, event: &Event) {
        self.aggregates
            .entry(event.aggregate_id)
            .or_default()
            .apply(event);
        self.history.push(HistoryRow::of(stored, event));
    }

    /// The rows, sorted by key, each event's history line once.
    pub fn rows(&self) -> AllRows {
        self.clone().into_parts().0
    }

    /// The rows (as [`Self::rows`]) and the aggregates' states, without copying the history.
    pub fn into_parts(self) -> (AllRows, std::collections::HashMap<AggregateId, Aggregate>) {
        let mut all = AllRows::default();
        let mut ids: Vec<&AggregateId> = self.aggregates.keys().collect();
        ids.sort_unstable();
        for id in ids {
            let rows = self.aggregates[id].rows(*id);
            all.lists.extend(rows.list);
            all.todos.extend(rows.todo);
            all.devices.extend(rows.device);
            all.conflicts.extend(rows.conflicts);
        }
        let key = |h: &HistoryRow| (h.aggregate_id, h.hlc, h.event_id);
        all.history = self.history;
        all.history.sort_unstable_by_key(key);
        all.history.dedup_by_key(|h| key(h));
        (all, self.aggregates)
    }
}
