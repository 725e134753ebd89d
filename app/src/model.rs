//! The page's store: what the list pane and the sidebar show, keyed by id, as signals. Filled
//! from the server's rendering first, then from the local store (the worker), and kept current
//! by the worker's change sets — row by row: a toggle touches one row's signal, never the list.

use std::collections::HashMap;

use leptos::prelude::*;
use tandem_protocol::data::{
    Changes, Counts, ListRow, ListSnapshot, SyncStatus, TodoRow, UndoLabels,
};

/// Where the page's data comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The server's views, embedded in the page.
    Server,
    /// The local store is open but has not reached what the server rendered yet.
    Opening,
    /// The local store (`behind`: it could not catch up yet: offline, another server log).
    Local { behind: bool },
    /// The local store cannot be used: the banner says why.
    Unavailable(String),
    /// A database file of this device is damaged: the banner says so and offers a fresh start
    /// (this device's copy deleted; the server's copy downloaded again).
    Damaged(String),
    /// Another build of Tandem was met (docs/protocol.md, "Builds"): a `newer` one is served
    /// (this page reloaded once already; the banner offers it again), or another tab runs an
    /// older one (this tab waits for it to reload or close).
    OtherBuild { newer: bool },
}

/// The page's store, provided as context. Copyable: every field is a signal handle.
#[derive(Clone, Copy)]
pub struct Model {
    pub lists: RwSignal<Vec<ListRow>>,
    /// The list the pane shows, and whether the store knows it (a list made offline elsewhere
    /// may not have arrived yet).
    pub list_id: RwSignal<Option<String>>,
    pub known: RwSignal<bool>,
    /// That list's live todos in display order (ids), and each row's own signal.
    pub order: RwSignal<Vec<String>>,
    rows: StoredValue<HashMap<String, RwSignal<TodoRow>>>,
    /// Signals of rows that left the model, disposed once the views that showed them are gone
    /// ([`Model::sweep`]): not at once, since an item being removed may still be handling an
    /// event (the blur of a box as it goes).
    graveyard: StoredValue<Vec<RwSignal<TodoRow>>>,
    /// The owner of the row signals: the model's, not that of whichever view loaded them (a
    /// view re-rendered would dispose them).
    owner: StoredValue<Owner>,
    /// Counts of every list the page has been told about.
    pub counts: RwSignal<HashMap<String, Counts>>,
    pub sync: RwSignal<SyncStatus>,
    pub source: RwSignal<Source>,
    /// A first download's progress (stored, head), while it runs.
    pub progress: RwSignal<Option<(u64, u64)>>,
    /// Bumped by every change set (views that are not rows of the model, like the Trash,
    /// read again).
    pub revision: RwSignal<u64>,
    /// "View as of": the moment (ms, the stamps' physical time) the pane shows the current
    /// list as it was, read-only; `None`: now.
    pub as_of: RwSignal<Option<u64>>,
    /// A rebuild of the views in progress (events replayed, of how many).
    pub rebuilding: RwSignal<Option<(u64, u64)>>,
    /// What "Undo" and "Redo" would take back (read once, then carried by change sets).
    pub undo: RwSignal<UndoLabels>,
    /// Lists just deleted here (id, name, the offer's number), offered back for a few seconds: kept by the model,
    /// not the pane, so the offer survives the move to another route.
    pub deleted_lists: RwSignal<Vec<(String, String, u64)>>,
}

impl Model {
    pub fn new(snapshot: &ListSnapshot) -> Self {
        let model = Self {
            lists: RwSignal::new(vec![]),
            list_id: RwSignal::new(None),
            known: RwSignal::new(false),
            order: RwSignal::new(vec![]),
            rows: StoredValue::new(HashMap::new()),
            graveyard: StoredValue::new(vec![]),
            owner: StoredValue::new(Owner::current().unwrap_or_default()),
            counts: RwSignal::new(HashMap::new()),
            sync: RwSignal::new(SyncStatus::default()),
            source: RwSignal::new(Source::Server),
            progress: RwSignal::new(None),
            revision: RwSignal::new(0),
            as_of: RwSignal::new(None),
            rebuilding: RwSignal::new(None),
            undo: RwSignal::new(UndoLabels::default()),
            deleted_lists: RwSignal::new(vec![]),
        };
        model.load(snapshot);
        model
    }

    /// Replaces what the page shows with `snapshot`, keeping the signals of rows that stay (so
    /// rows on screen update in place instead of being rebuilt).
    pub fn load(&self, snapshot: &ListSnapshot) {
        if self.lists.get_untracked() != snapshot.lists {
            self.lists.set(snapshot.lists.clone());
        }
        if self.list_id.get_untracked() != snapshot.list_id {
            self.list_id.set(snapshot.list_id.clone());
            // Another list opened: the pane shows it as it is now.
            self.as_of.set(None);
        }
        if self.known.get_untracked() != snapshot.list_known {
            self.known.set(snapshot.list_known);
        }
        let mut rows = self.rows.get_value();
        let keep: std::collections::HashSet<&str> =
            snapshot.todos.iter().map(|t| t.id.as_str()).collect();
        let mut gone = Vec::new();
        rows.retain(|id, signal| {
            let stays = keep.contains(id.as_str());
            if !stays {
                gone.push(*signal);
            }
            stays
        });
        self.bury(gone);
        for todo in &snapshot.todos {
            self.upsert_row(&mut rows, todo);
        }
        self.rows.set_value(rows);
        let order: Vec<String> = snapshot.todos.iter().map(|t| t.id.clone()).collect();
        if self.order.get_untracked() != order {
            self.order.set(order);
        }
        self.counts.update(|c| {
            for lc in &snapshot.list_counts {
                c.insert(lc.list_id.clone(), lc.counts);
            }
        });
    }

    fn upsert_row(&self, rows: &mut HashMap<String, RwSignal<TodoRow>>, todo: &TodoRow) {
        match rows.get(&todo.id) {
            Some(signal) => {
                if signal.with_untracked(|r| r != todo) {
                    signal.set(todo.clone());
                }
            }
            None => {
                let signal = self
                    .owner
                    .with_value(|o| o.with(|| RwSignal::new(todo.clone())));
                rows.insert(todo.id.clone(), signal);
            }
        }
    }

    /// Disposes `signals` (rows that left the model) after the current task, once the views
    /// showing them are gone.
    fn bury(&self, signals: Vec<RwSignal<TodoRow>>) {
        if signals.is_empty() {
            return;
        }
        let first = self.graveyard.with_value(Vec::is_empty);
        self.graveyard.update_value(|g| g.extend(signals));
        #[cfg(feature = "hydrate")]
        if first {
            let model = *self;
            // A task after this one: the views' effects (microtasks) have run by then.
            set_timeout(move || model.sweep(), std::time::Duration::ZERO);
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = first;
    }

    /// Disposes the signals of rows that left the model (see [`Model::bury`]).
    pub fn sweep(&self) {
        let Some(signals) = self.graveyard.try_update_value(std::mem::take) else {
            return;
        };
        for signal in signals {
            // Back in the model meanwhile (the same signal): kept.
            let back = self
                .rows
                .with_value(|rows| rows.values().any(|r| *r == signal));
            if !back {
                signal.dispose();
            }
        }
    }

    /// A row's signal.
    pub fn row(&self, id: &str) -> Option<RwSignal<TodoRow>> {
        self.rows.with_value(|rows| rows.get(id).copied())
    }

    /// The counts of the list on screen.
    pub fn current_counts(&self) -> Counts {
        let list = self.list_id.get();
        self.counts
            .with(|c| list.and_then(|l| c.get(&l).copied()))
            .unwrap_or_default()
    }

    /// Applies a change set from the worker. Returns whether it asked for a reset (the caller
    /// reads the list again).
    pub fn apply(&self, mut changes: Changes) -> bool {
        if let Some(labels) = changes.undo.take() {
            if self.undo.with_untracked(|u| *u != labels) {
                self.undo.set(labels);
            }
        }
        // Nothing re-renders for a change set that changes no row.
        if !changes.rows_changed() {
            return false;
        }
        self.revision.update(|r| *r += 1);
        if changes.reset {
            return true;
        }
        if !changes.lists.is_empty() || !changes.removed_lists.is_empty() {
            self.lists.update(|lists| {
                lists.retain(|l| !changes.removed_lists.contains(&l.id));
                for row in &changes.lists {
                    match lists.iter_mut().find(|l| l.id == row.id) {
                        Some(l) => *l = row.clone(),
                        None => lists.push(row.clone()),
                    }
                }
                // As the views order them: oldest first (a list pulled now may be older than
                // one made here).
                lists.sort_by(|a, b| (&a.created_hlc, &a.id).cmp(&(&b.created_hlc, &b.id)));
            });
        }
        let current = self.list_id.get_untracked();
        // Row signals are updated in place; the order (ids) changes only when rows come, go or
        // move, and then by binary insertion, not a sort: a toggle in a list of 10,000 touches
        // one row's signal and nothing else.
        let mut removed: Vec<&str> = Vec::new();
        let mut placed: Vec<(String, String)> = Vec::new();
        let mut cleared = false;
        let mut gone = Vec::new();
        self.rows.update_value(|rows| {
            // The list on screen was deleted: its to-dos go with it.
            if current
                .as_ref()
                .is_some_and(|c| changes.removed_lists.contains(c))
            {
                gone.extend(rows.drain().map(|(_, signal)| signal));
                cleared = true;
            }
            for id in &changes.removed_todos {
                if let Some(signal) = rows.remove(id) {
                    gone.push(signal);
                    removed.push(id);
                }
            }
            for todo in &changes.todos {
                let here = current.as_deref() == Some(todo.list_id.as_str());
                match (here, rows.get(&todo.id).copied()) {
                    (true, Some(signal)) => {
                        let moved = signal.with_untracked(|r| r.position != todo.position);
                        if signal.with_untracked(|r| r != todo) {
                            signal.set(todo.clone());
                        }
                        if moved {
                            removed.push(&todo.id);
                            placed.push((todo.position.clone(), todo.id.clone()));
                        }
                    }
                    (true, None) => {
                        self.upsert_row(rows, todo);
                        placed.push((todo.position.clone(), todo.id.clone()));
                    }
                    (false, Some(signal)) => {
                        rows.remove(&todo.id);
                        gone.push(signal);
                        removed.push(&todo.id);
                    }
                    (false, None) => {}
                }
            }
        });
        self.bury(gone);
        if cleared || !removed.is_empty() || !placed.is_empty() {
            self.order.update(|order| {
                if cleared {
                    order.clear();
                }
                if !removed.is_empty() {
                    let gone: std::collections::HashSet<&str> = removed.into_iter().collect();
                    order.retain(|id| !gone.contains(id.as_str()));
                }
                for (position, id) in placed {
                    let at = order.partition_point(|other| {
                        let before = self.rows.with_value(|rows| {
                            rows.get(other).map(|r| {
                                r.with_untracked(|r| {
                                    (r.position.as_str(), other.as_str())
                                        < (position.as_str(), id.as_str())
                                })
                            })
                        });
                        before.unwrap_or(true)
                    });
                    order.insert(at, id);
                }
            });
        }
        if !changes.counts.is_empty() {
            self.counts.update(|c| {
                for lc in changes.counts {
                    c.insert(lc.list_id, lc.counts);
                }
            });
        }
        false
    }
}

/// The model provided by an ancestor.
pub fn use_model() -> Model {
    expect_context::<Model>()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn todo(id: &str, list: &str, position: &str) -> TodoRow {
        TodoRow {
            id: id.into(),
            list_id: list.into(),
            title: id.into(),
            position: position.into(),
            ..TodoRow::default()
        }
    }

    #[test]
    fn signals_of_rows_that_leave_the_model_are_disposed_once_swept() {
        let owner = Owner::new();
        owner.with(|| {
            let model = Model::new(&ListSnapshot {
                lists: vec![],
                list_counts: vec![],
                list_id: Some("l1".into()),
                list_known: true,
                todos: (0..5)
                    .map(|i| todo(&format!("t{i}"), "l1", &format!("{i}")))
                    .collect(),
            });
            let signals: Vec<_> = (0..5)
                .map(|i| model.row(&format!("t{i}")).unwrap())
                .collect();
            // Deleted, moved to another list, and the rest when another list is opened.
            model.apply(Changes {
                removed_todos: vec!["t0".into()],
                todos: vec![todo("t1", "l2", "1")],
                ..Changes::default()
            });
            assert_eq!(model.order.get_untracked(), ["t2", "t3", "t4"]);
            model.sweep();
            assert!(signals[0].is_disposed() && signals[1].is_disposed());
            assert!(!signals[2].is_disposed());
            model.load(&ListSnapshot {
                lists: vec![],
                list_counts: vec![],
                list_id: Some("l2".into()),
                list_known: true,
                todos: vec![todo("t1", "l2", "1"), todo("t4", "l2", "4")],
            });
            // t4 stays (its signal kept, in place); t2 and t3 go once swept.
            assert!(!signals[2].is_disposed());
            model.sweep();
            assert!(signals[2].is_disposed() && signals[3].is_disposed());
            assert!(!signals[4].is_disposed());
            assert_eq!(model.row("t4"), Some(signals[4]));
            assert_eq!(model.row("t1").unwrap().get_untracked().list_id, "l2");
        });
    }
}
