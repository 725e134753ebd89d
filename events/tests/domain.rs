//! Given/when/then tests of the to-do domain: given these events, when this command, then these
//! events (or this error) — and what the fold makes of concurrent histories.

use tandem_events::decide::{
    decide_list, decide_todo, DomainError, ListCommand, TodoCommand, TodoEdit,
};
use tandem_events::domain::{
    Bases, Deleted, DomainEvent, ListCreated, TodoCreated, TodoListChanged, TodoMoved,
    TodoTitleEdited,
};
use tandem_events::event::Event;
use tandem_events::hlc::Stamp;
use tandem_events::ids::{AggregateId, DeviceId, EventId, WorkspaceId};
use tandem_events::position::PositionError;
use tandem_events::state::{Aggregate, Model};

const LIST: u8 = 1;
const TODO: u8 = 2;

fn agg(n: u8) -> AggregateId {
    AggregateId::from_uuid(uuid::Uuid::from_bytes([n; 16]))
}
fn dev(n: u8) -> DeviceId {
    DeviceId::from_uuid(uuid::Uuid::from_bytes([0x40 + n; 16]))
}
fn stamp(ms: u64, device: u8) -> Stamp {
    Stamp {
        ms,
        counter: 0,
        node: dev(device),
    }
}

/// A history being built: events with distinct ids, stamped as told.
#[derive(Default)]
struct Given {
    events: Vec<Event>,
}

impl Given {
    fn event(mut self, aggregate: u8, ms: u64, device: u8, body: DomainEvent) -> Self {
        let n = self.events.len() as u128 + 1;
        self.events.push(Event {
            event_id: EventId::from_uuid(uuid::Uuid::from_u128(n)),
            workspace_id: WorkspaceId::from_uuid(uuid::Uuid::from_u128(7)),
            aggregate_id: agg(aggregate),
            hlc: stamp(ms, device),
            device_id: dev(device),
            version: n as u64,
            created_at: ms as i64,
            body,
        });
        self
    }
    fn list(self) -> Self {
        self.event(
            LIST,
            1,
            1,
            DomainEvent::ListCreated(ListCreated {
                name: "Home".into(),
            }),
        )
    }
    fn todo(self) -> Self {
        self.list().event(
            TODO,
            2,
            1,
            DomainEvent::TodoCreated(TodoCreated {
                list_id: agg(LIST),
                title: "milk".into(),
                position: "V".into(),
                due_date: None,
            }),
        )
    }
    fn state(&self, aggregate: u8) -> Aggregate {
        let mut a = Aggregate::default();
        for e in self
            .events
            .iter()
            .filter(|e| e.aggregate_id == agg(aggregate))
        {
            a.apply(e);
        }
        a
    }
    fn when_todo(&self, command: TodoCommand) -> Result<Vec<DomainEvent>, DomainError> {
        let list = self.state(LIST).list;
        decide_todo(agg(TODO), &self.state(TODO).todo, Some(&list), command)
    }
    fn when_list(&self, command: ListCommand) -> Result<Vec<DomainEvent>, DomainError> {
        decide_list(agg(LIST), &self.state(LIST).list, command)
    }
    fn edit(&self, edit: TodoEdit, resolving: bool) -> Result<Vec<DomainEvent>, DomainError> {
        self.when_todo(TodoCommand::Edit {
            edit,
            resolving,
            shown: None,
        })
    }
    fn model(&self) -> Model {
        let mut m = Model::default();
        for e in &self.events {
            m.apply(&e.to_stored(), e);
        }
        m
    }
}

fn create(title: &str, position: &str) -> TodoCommand {
    TodoCommand::Create {
        list_id: agg(LIST),
        title: title.into(),
        position: position.into(),
        due_date: None,
    }
}

#[test]
fn adding_a_todo_trims_its_title() {
    let then = Given::default()
        .list()
        .when_todo(create("  buy milk \n", "V"));
    assert_eq!(
        then,
        Ok(vec![DomainEvent::TodoCreated(TodoCreated {
            list_id: agg(LIST),
            title: "buy milk".into(),
            position: "V".into(),
            due_date: None
        })])
    );
}

#[test]
fn bad_input_is_refused_with_what_was_wrong() {
    let g = Given::default().list();
    assert_eq!(
        g.when_todo(create("   ", "V")),
        Err(DomainError::Empty { field: "title" })
    );
    let long = "x".repeat(1_001);
    assert_eq!(
        g.when_todo(create(&long, "V")),
        Err(DomainError::TooLong {
            field: "title",
            chars: 1_001,
            max: 1_000
        })
    );
    assert!(matches!(
        g.when_todo(create("a", "V0")),
        Err(DomainError::Position(PositionError::Invalid { .. }))
    ));
    assert_eq!(
        g.when_list(ListCommand::Create {
            name: "again".into()
        }),
        Err(DomainError::AlreadyExists {
            kind: "list",
            id: agg(LIST)
        })
    );
    let none = Given::default();
    assert_eq!(
        none.when_todo(create("a", "V")),
        Err(DomainError::NotFound {
            kind: "list",
            id: agg(LIST)
        })
    );
    assert_eq!(
        none.edit(TodoEdit::Completed(true), false),
        Err(DomainError::NotFound {
            kind: "todo",
            id: agg(TODO)
        })
    );
}

#[test]
fn a_change_the_server_would_refuse_for_its_bytes_is_refused_here() {
    let g = Given::default().list().todo();
    // 20,000 characters are allowed, but 20,000 emoji are 80,000 bytes: over the 64 KiB the
    // server accepts for an event's data.
    let emoji = "\u{1F600}".repeat(20_000);
    assert_eq!(emoji.chars().count(), 20_000);
    match g.edit(TodoEdit::Notes(emoji), false) {
        Err(DomainError::DataTooLarge { bytes, max }) => {
            assert_eq!(max, tandem_events::event::MAX_EVENT_DATA_BYTES);
            assert!(bytes > 80_000, "{bytes}");
        }
        other => panic!("expected DataTooLarge, got {other:?}"),
    }
    // 20,000 plain characters fit.
    assert!(g.edit(TodoEdit::Notes("n".repeat(20_000)), false).is_ok());
}

#[test]
fn nothing_is_added_to_a_deleted_list_or_done_to_a_deleted_todo() {
    let g = Given::default()
        .list()
        .event(LIST, 3, 1, DomainEvent::ListDeleted(Deleted {}));
    assert_eq!(
        g.when_todo(create("a", "V")),
        Err(DomainError::Deleted {
            kind: "list",
            id: agg(LIST)
        })
    );
    assert_eq!(
        g.when_list(ListCommand::Delete),
        Err(DomainError::Deleted {
            kind: "list",
            id: agg(LIST)
        })
    );
    let g = Given::default()
        .todo()
        .event(TODO, 3, 1, DomainEvent::TodoDeleted(Deleted {}));
    assert_eq!(
        g.edit(TodoEdit::Title("x".into()), false),
        Err(DomainError::Deleted {
            kind: "todo",
            id: agg(TODO)
        })
    );
    assert_eq!(
        g.when_todo(TodoCommand::Delete),
        Err(DomainError::Deleted {
            kind: "todo",
            id: agg(TODO)
        })
    );
}

#[test]
fn an_edit_names_the_value_it_replaces() {
    let g = Given::default().todo();
    assert_eq!(
        g.edit(TodoEdit::Title("oat milk".into()), false),
        Ok(vec![DomainEvent::TodoTitleEdited(TodoTitleEdited {
            title: "oat milk".into(),
            bases: vec![stamp(2, 1)]
        })])
    );
    assert_eq!(
        g.edit(TodoEdit::Completed(true), false),
        Ok(vec![DomainEvent::TodoCompleted(Bases {
            bases: vec![stamp(2, 1)]
        })])
    );
    assert_eq!(
        g.edit(TodoEdit::Position("k".into()), false),
        Ok(vec![DomainEvent::TodoMoved(TodoMoved {
            position: "k".into(),
            bases: vec![stamp(2, 1)]
        })])
    );
}

#[test]
fn an_edit_that_changes_nothing_makes_no_event() {
    let g = Given::default().todo();
    assert_eq!(g.edit(TodoEdit::Title(" milk ".into()), false), Ok(vec![]));
    assert_eq!(g.edit(TodoEdit::Completed(false), false), Ok(vec![]));
    assert_eq!(g.edit(TodoEdit::DueDate(None), false), Ok(vec![]));
}

/// Two devices retitle the same todo without seeing each other's edit.
fn concurrent_titles() -> Given {
    Given::default()
        .todo()
        .event(
            TODO,
            10,
            2,
            DomainEvent::TodoTitleEdited(TodoTitleEdited {
                title: "from phone".into(),
                bases: vec![stamp(2, 1)],
            }),
        )
        .event(
            TODO,
            11,
            3,
            DomainEvent::TodoTitleEdited(TodoTitleEdited {
                title: "from laptop".into(),
                bases: vec![stamp(2, 1)],
            }),
        )
}

#[test]
fn concurrent_edits_show_the_newest_and_keep_the_other_as_a_conflict() {
    let rows = concurrent_titles().model().rows();
    assert_eq!(rows.todos[0].title, "from laptop");
    assert_eq!(rows.conflicts.len(), 1);
    let c = &rows.conflicts[0];
    assert_eq!(
        (c.field, c.value.as_str(), c.device_id, c.hlc),
        ("title", "\"from phone\"", dev(2), stamp(10, 2))
    );
}

#[test]
fn a_resolving_edit_ends_the_conflict_a_plain_one_does_not() {
    let g = concurrent_titles();
    let plain = g.edit(TodoEdit::Title("milk again".into()), false).unwrap();
    assert_eq!(
        plain,
        vec![DomainEvent::TodoTitleEdited(TodoTitleEdited {
            title: "milk again".into(),
            bases: vec![stamp(11, 3)]
        })]
    );
    let resolving = g.edit(TodoEdit::Title("from laptop".into()), true).unwrap();
    assert_eq!(
        resolving,
        vec![DomainEvent::TodoTitleEdited(TodoTitleEdited {
            title: "from laptop".into(),
            bases: vec![stamp(11, 3), stamp(10, 2)]
        })]
    );
    let g = g.event(TODO, 12, 1, resolving[0].clone());
    let rows = g.model().rows();
    assert_eq!(rows.todos[0].title, "from laptop");
    assert!(rows.conflicts.is_empty());
}

#[test]
fn edits_of_different_fields_both_survive() {
    let g = Given::default()
        .todo()
        .event(
            TODO,
            10,
            2,
            DomainEvent::TodoTitleEdited(TodoTitleEdited {
                title: "oat milk".into(),
                bases: vec![stamp(2, 1)],
            }),
        )
        .event(
            TODO,
            11,
            3,
            DomainEvent::TodoCompleted(Bases {
                bases: vec![stamp(2, 1)],
            }),
        );
    let rows = g.model().rows();
    assert_eq!(
        (rows.todos[0].title.as_str(), rows.todos[0].completed),
        ("oat milk", true)
    );
    assert!(rows.conflicts.is_empty());
}

#[test]
fn a_restore_undoes_the_deletes_it_saw_and_edits_made_meanwhile_show() {
    let g = Given::default()
        .todo()
        .event(TODO, 10, 2, DomainEvent::TodoDeleted(Deleted {}))
        .event(
            TODO,
            20,
            3,
            DomainEvent::TodoTitleEdited(TodoTitleEdited {
                title: "edited while deleted".into(),
                bases: vec![stamp(2, 1)],
            }),
        );
    // Restoring a live todo is refused; restoring names every delete seen.
    assert_eq!(
        Given::default().todo().when_todo(TodoCommand::Restore),
        Err(DomainError::NotDeleted {
            kind: "todo",
            id: agg(TODO)
        })
    );
    let restore = g.when_todo(TodoCommand::Restore).unwrap();
    assert_eq!(
        restore,
        vec![DomainEvent::TodoRestored(Bases {
            bases: vec![stamp(10, 2)]
        })]
    );
    let g = g.event(TODO, 30, 1, restore[0].clone());
    let rows = g.model().rows();
    assert!(!rows.todos[0].deleted);
    assert_eq!(rows.todos[0].title, "edited while deleted");
    // An ordinary edit never resurrects: only a restore does (deleting again is allowed).
    assert!(g.when_todo(TodoCommand::Delete).is_ok());
}

#[test]
fn a_delete_the_restore_did_not_see_still_wins() {
    let g = Given::default()
        .todo()
        .event(TODO, 10, 2, DomainEvent::TodoDeleted(Deleted {}))
        // Device 1 restores what it saw (the delete at 10) while device 3, not having seen
        // the restore, deletes too.
        .event(
            TODO,
            30,
            1,
            DomainEvent::TodoRestored(Bases {
                bases: vec![stamp(10, 2)],
            }),
        )
        .event(TODO, 25, 3, DomainEvent::TodoDeleted(Deleted {}));
    let rows = g.model().rows();
    assert!(rows.todos[0].deleted, "the unseen delete wins");
    // A restore made now names the remaining delete and brings it back for good.
    let restore = g.when_todo(TodoCommand::Restore).unwrap();
    assert_eq!(
        restore,
        vec![DomainEvent::TodoRestored(Bases {
            bases: vec![stamp(25, 3)]
        })]
    );
    assert!(
        !g.event(TODO, 40, 1, restore[0].clone())
            .model()
            .rows()
            .todos[0]
            .deleted
    );
    // Lists follow the same rule.
    let l = Given::default()
        .list()
        .event(LIST, 5, 2, DomainEvent::ListDeleted(Deleted {}));
    let back = l.when_list(ListCommand::Restore).unwrap();
    assert!(!l.event(LIST, 6, 1, back[0].clone()).model().rows().lists[0].deleted);
}

#[test]
fn delete_wins_and_later_edits_stay_in_history() {
    let g = Given::default()
        .todo()
        .event(TODO, 10, 2, DomainEvent::TodoDeleted(Deleted {}))
        // A device that had not seen the deletion edits the todo afterwards.
        .event(
            TODO,
            20,
            3,
            DomainEvent::TodoTitleEdited(TodoTitleEdited {
                title: "still here?".into(),
                bases: vec![stamp(2, 1)],
            }),
        );
    let rows = g.model().rows();
    assert!(rows.todos[0].deleted);
    assert!(rows.conflicts.is_empty(), "no conflicts on a deleted item");
    let history: Vec<&str> = rows
        .history
        .iter()
        .filter(|h| h.aggregate_id == agg(TODO))
        .map(|h| h.event_type)
        .collect();
    assert_eq!(history, ["TodoCreated", "TodoDeleted", "TodoTitleEdited"]);
    assert!(rows.history.iter().any(|h| h.data.contains("still here?")));
}

#[test]
fn edits_arriving_before_their_todo_show_once_it_does() {
    let created = Given::default().todo();
    let edit = DomainEvent::TodoTitleEdited(TodoTitleEdited {
        title: "early".into(),
        bases: vec![stamp(2, 1)],
    });
    let mut early = Given::default().list().event(TODO, 10, 2, edit.clone());
    assert!(early.model().rows().todos.is_empty());
    early = early.event(
        TODO,
        2,
        1,
        DomainEvent::TodoCreated(TodoCreated {
            list_id: agg(LIST),
            title: "milk".into(),
            position: "V".into(),
            due_date: None,
        }),
    );
    let late = created.event(TODO, 10, 2, edit);
    assert_eq!(early.model().rows().todos[0].title, "early");
    assert_eq!(early.model().rows().todos, late.model().rows().todos);
}

#[test]
fn an_edit_replaces_the_value_its_author_saw_and_a_newer_one_stays_a_conflict() {
    // The page showed "milk" (the creation's stamp, ms 2); meanwhile "oat milk" arrived (ms 3).
    let g = Given::default().todo().event(
        TODO,
        3,
        2,
        DomainEvent::TodoTitleEdited(TodoTitleEdited {
            title: "oat milk".into(),
            bases: vec![stamp(2, 1)],
        }),
    );
    let over_shown = g.when_todo(TodoCommand::Edit {
        edit: TodoEdit::Title("whole milk".into()),
        resolving: false,
        shown: Some(stamp(2, 1)),
    });
    assert_eq!(
        over_shown,
        Ok(vec![DomainEvent::TodoTitleEdited(TodoTitleEdited {
            title: "whole milk".into(),
            bases: vec![stamp(2, 1)],
        })])
    );
    // Without `shown`, the edit replaces what the replica holds now.
    let over_current = g.edit(TodoEdit::Title("whole milk".into()), false);
    assert_eq!(
        over_current,
        Ok(vec![DomainEvent::TodoTitleEdited(TodoTitleEdited {
            title: "whole milk".into(),
            bases: vec![stamp(3, 2)],
        })])
    );
    // A stamp the field never had (re-stamped meanwhile) falls back to the current value.
    let unknown = g.when_todo(TodoCommand::Edit {
        edit: TodoEdit::Title("whole milk".into()),
        resolving: false,
        shown: Some(stamp(99, 9)),
    });
    assert_eq!(unknown, over_current);
    // Folded, the edit over the shown value leaves "oat milk" as a live conflict.
    let folded = g.event(
        TODO,
        4,
        1,
        DomainEvent::TodoTitleEdited(TodoTitleEdited {
            title: "whole milk".into(),
            bases: vec![stamp(2, 1)],
        }),
    );
    let todo = folded.state(TODO).todo;
    assert_eq!(
        todo.title.winner().map(|w| w.value.clone()),
        Some("whole milk".to_string())
    );
    let conflicts: Vec<String> = todo
        .title
        .conflicts()
        .iter()
        .map(|c| c.value.clone())
        .collect();
    assert_eq!(conflicts, vec!["oat milk".to_string()]);
}

#[test]
fn a_todo_moves_to_another_list_and_concurrent_moves_are_a_conflict_not_a_loss() {
    const OTHER: u8 = 3;
    const THIRD: u8 = 4;
    let lists = Given::default()
        .todo()
        .event(
            OTHER,
            1,
            1,
            DomainEvent::ListCreated(ListCreated {
                name: "Work".into(),
            }),
        )
        .event(
            THIRD,
            1,
            1,
            DomainEvent::ListCreated(ListCreated {
                name: "Home".into(),
            }),
        );
    let other = lists.state(OTHER).list;
    let moved = decide_todo(
        agg(TODO),
        &lists.state(TODO).todo,
        Some(&other),
        TodoCommand::MoveToList {
            list_id: agg(OTHER),
            position: "V".into(),
            shown_list: None,
            shown_position: None,
            resolving: false,
        },
    );
    // The list and the position each replace what was there, with their own bases.
    assert_eq!(
        moved,
        Ok(vec![DomainEvent::TodoListChanged(TodoListChanged {
            list_id: agg(OTHER),
            list_bases: vec![stamp(2, 1)],
            position: "V".into(),
            position_bases: vec![stamp(2, 1)],
        })])
    );
    // A move into a deleted list is refused.
    let gone = Given {
        events: lists.events.clone(),
    }
    .event(OTHER, 5, 1, DomainEvent::ListDeleted(Deleted {}));
    assert_eq!(
        decide_todo(
            agg(TODO),
            &gone.state(TODO).todo,
            Some(&gone.state(OTHER).list),
            TodoCommand::MoveToList {
                list_id: agg(OTHER),
                position: "V".into(),
                shown_list: None,
                shown_position: None,
                resolving: false,
            },
        ),
        Err(DomainError::Deleted {
            kind: "list",
            id: agg(OTHER)
        })
    );
    // Two devices move it at once, to two lists: the newer wins, the other is a conflict, and
    // a title edited meanwhile is untouched by either move.
    let both = lists
        .event(
            TODO,
            6,
            1,
            DomainEvent::TodoListChanged(TodoListChanged {
                list_id: agg(OTHER),
                list_bases: vec![stamp(2, 1)],
                position: "V".into(),
                position_bases: vec![stamp(2, 1)],
            }),
        )
        .event(
            TODO,
            7,
            2,
            DomainEvent::TodoListChanged(TodoListChanged {
                list_id: agg(THIRD),
                list_bases: vec![stamp(2, 1)],
                position: "k".into(),
                position_bases: vec![stamp(2, 1)],
            }),
        )
        .event(
            TODO,
            8,
            3,
            DomainEvent::TodoTitleEdited(TodoTitleEdited {
                title: "oat milk".into(),
                bases: vec![stamp(2, 1)],
            }),
        );
    let rows = both.model().rows();
    let todo = rows.todos.iter().find(|t| t.todo_id == agg(TODO)).unwrap();
    assert_eq!(todo.list_id, agg(THIRD));
    assert_eq!(todo.position, "k");
    assert_eq!(todo.title, "oat milk");
    let fields: Vec<&str> = rows
        .conflicts
        .iter()
        .filter(|c| c.aggregate_id == agg(TODO))
        .map(|c| c.field)
        .collect();
    assert_eq!(fields, ["position", "list"]);
}
