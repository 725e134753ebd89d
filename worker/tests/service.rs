//! The worker's data service on real SQLite files: queries, commands with page-minted ids
//! (rule 18), many-item commands in one transaction, refusals that record nothing, and the
//! row-level change sets the page applies.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use tandem_events::ids::{DeviceId, WorkspaceId};
use tandem_protocol::data::{Changes, Command, Counts, Filter, Reply, Request, TodoRow};
use tandem_store::Replica;
use worker::service::Service;

struct Device {
    service: Service,
    replica: Rc<RefCell<Replica>>,
    next_command: u128,
    _dir: tempfile::TempDir,
}

const LIST: &str = "00000000-0000-7000-8000-0000000000a1";

fn id(n: u128) -> String {
    uuid::Uuid::from_u128(0x0000_0000_0000_7000_8000_0000_0000_0000 | n).to_string()
}

/// The device's wall clock (ms), settable by a test.
static NOW: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1_750_000_000_000);

impl Device {
    fn new() -> Self {
        Self::with_clock(Arc::new(|| 1_750_000_000_000))
    }

    fn with_clock(clock: tandem_store::log::PhysicalClock) -> Self {
        Self::with_clock_and_commands(clock, 0x5000)
    }

    /// A device whose command ids count from `first_command` (another page's).
    fn with_clock_and_commands(
        clock: tandem_store::log::PhysicalClock,
        first_command: u128,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut next = 1_000u128;
        let replica = Replica::open(
            dir.path().join("events.db"),
            dir.path().join("views.db"),
            DeviceId::from_uuid(uuid::Uuid::from_u128(0xd1)),
            clock,
            Box::new(move || {
                next += 1;
                uuid::Uuid::from_u128(next)
            }),
            |_| {},
        )
        .unwrap();
        let replica = Rc::new(RefCell::new(replica));
        let service = Service::new(Rc::clone(&replica), WorkspaceId::DEFAULT).unwrap();
        let mut device = Self {
            service,
            replica,
            next_command: first_command,
            _dir: dir,
        };
        device.run(Command::CreateList {
            list_id: LIST.into(),
            name: "Inbox".into(),
        });
        device.changes();
        device
    }

    fn send(&mut self, command: Command) -> Reply {
        self.next_command += 1;
        let command_id = id(self.next_command);
        self.service.request(Request::Command {
            command_id,
            command,
        })
    }

    fn run(&mut self, command: Command) -> u64 {
        match self.send(command.clone()) {
            Reply::Done { events } => events,
            other => panic!("{command:?} was not done: {other:?}"),
        }
    }

    fn add(&mut self, n: u128, title: &str) {
        self.run(Command::AddTodo {
            todo_id: id(n),
            list_id: LIST.into(),
            title: title.into(),
            due_date: None,
            after: None,
        });
    }

    fn todos(&self, filter: Filter) -> (Vec<TodoRow>, Counts) {
        match self.service.request(Request::Todos {
            list_id: LIST.into(),
            filter,
        }) {
            Reply::Todos { todos, counts } => (todos, counts),
            other => panic!("not todos: {other:?}"),
        }
    }

    fn titles(&self, filter: Filter) -> Vec<String> {
        self.todos(filter).0.into_iter().map(|t| t.title).collect()
    }

    fn changes(&self) -> Changes {
        self.service.changes().unwrap()
    }

    /// The server accepts everything this device made (seqs 1, 2, …): returns those events
    /// and their acknowledgements.
    fn accept_all(
        &self,
    ) -> (
        Vec<tandem_events::event::StoredEvent>,
        Vec<(tandem_events::ids::EventId, u64)>,
    ) {
        let mine = self.replica.borrow().pending(100).unwrap();
        let own: Vec<_> = mine
            .iter()
            .enumerate()
            .map(|(i, e)| (e.event_id, i as u64 + 1))
            .collect();
        self.replica.borrow_mut().accept(&[], &own).unwrap();
        (mine, own)
    }

    fn pending(&self) -> usize {
        self.replica.borrow().pending_len().unwrap()
    }
}

#[test]
fn todos_are_added_in_order_edited_and_filtered() {
    let mut d = Device::new();
    d.add(1, "milk");
    d.add(2, "bread");
    d.run(Command::AddTodo {
        todo_id: id(3),
        list_id: LIST.into(),
        title: "  eggs ".into(),
        due_date: Some("2026-12-01".into()),
        after: Some(id(1)),
    });
    assert_eq!(d.titles(Filter::All), ["milk", "eggs", "bread"]);
    d.run(Command::SetCompleted {
        todo_id: id(2),
        completed: true,
        shown: None,
    });
    assert_eq!(d.titles(Filter::Active), ["milk", "eggs"]);
    assert_eq!(d.titles(Filter::Completed), ["bread"]);
    let (rows, counts) = d.todos(Filter::All);
    assert_eq!(
        counts,
        Counts {
            active: 2,
            completed: 1
        }
    );
    assert_eq!(rows[1].due_date.as_deref(), Some("2026-12-01"));
    d.run(Command::MoveTodo {
        todo_id: id(2),
        before: Some(id(1)),
    });
    assert_eq!(d.titles(Filter::All), ["bread", "milk", "eggs"]);
    d.run(Command::MoveTodo {
        todo_id: id(2),
        before: None,
    });
    assert_eq!(d.titles(Filter::All), ["milk", "eggs", "bread"]);
    d.run(Command::EditTitle {
        todo_id: id(1),
        title: "oat milk".into(),
        shown: Some(rows[0].title_hlc.clone()),
    });
    match d.service.request(Request::Todo { id: id(1) }) {
        Reply::Todo { todo: Some(t) } => assert_eq!(t.title, "oat milk"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_command_sent_again_is_answered_from_the_record_and_never_runs_twice() {
    let d = Device::new();
    let add = Request::Command {
        command_id: id(0x77),
        command: Command::AddTodo {
            todo_id: id(1),
            list_id: LIST.into(),
            title: "milk".into(),
            due_date: None,
            after: None,
        },
    };
    assert_eq!(d.service.request(add.clone()), Reply::Done { events: 1 });
    let pending = d.pending();
    // The reply was lost; the page sends the same command again.
    assert_eq!(d.service.request(add), Reply::Done { events: 1 });
    assert_eq!(d.pending(), pending);
    assert_eq!(d.titles(Filter::All), ["milk"]);
    // A refused command is recorded with its refusal too (and nothing else).
    let refused = Request::Command {
        command_id: id(0x78),
        command: Command::EditTitle {
            todo_id: id(1),
            title: "x".repeat(1_001),
            shown: None,
        },
    };
    let first = d.service.request(refused.clone());
    assert!(
        matches!(&first, Reply::Refused { reason } if reason.contains("1001 characters")),
        "{first:?}"
    );
    assert_eq!(d.service.request(refused), first);
    assert_eq!(d.pending(), pending);
}

#[test]
fn a_command_sent_again_to_a_store_that_replaced_its_first_runs_once() {
    // A tab's store in memory recorded the command and synced it, then went (its tab closed);
    // the page sends the command again to the store that replaced it, which pulled its events.
    let mut first = Device::new();
    first.add(1, "milk");
    let ticks = Request::Command {
        command_id: id(0x77),
        command: Command::ToggleAll {
            list_id: LIST.into(),
            completed: true,
        },
    };
    first.add(2, "bread");
    assert_eq!(
        first.service.request(ticks.clone()),
        Reply::Done { events: 2 }
    );
    let (events, _) = first.accept_all();
    let mut second = Device::with_clock_and_commands(Arc::new(|| 1_750_000_000_000), 0x9000);
    let pulled: Vec<_> = events
        .into_iter()
        .enumerate()
        .map(|(i, e)| (i as u64 + 1, e))
        .collect();
    second
        .replica
        .borrow_mut()
        .store_pulled(&pulled, true)
        .unwrap();
    let pending = second.pending();
    assert_eq!(second.service.request(ticks), Reply::Done { events: 2 });
    assert_eq!(second.pending(), pending, "the command ran again");
    assert!(second.titles(Filter::Active).is_empty());
    assert_eq!(second.titles(Filter::Completed).len(), 2);
    // A command it never saw runs as usual.
    second.add(3, "eggs");
    assert_eq!(second.pending(), pending + 1);
}

#[test]
fn bad_input_is_refused_and_records_nothing() {
    let mut d = Device::new();
    d.add(1, "milk");
    d.changes();
    let pending = d.pending();
    for command in [
        Command::AddTodo {
            todo_id: id(2),
            list_id: LIST.into(),
            title: "   ".into(),
            due_date: None,
            after: None,
        },
        Command::AddTodo {
            todo_id: id(2),
            list_id: LIST.into(),
            title: "x".into(),
            due_date: Some("2026-02-30".into()),
            after: None,
        },
        Command::CreateList {
            list_id: id(9),
            name: "n".repeat(201),
        },
        Command::DeleteTodo { todo_id: id(42) },
    ] {
        let reply = d.send(command.clone());
        assert!(
            matches!(reply, Reply::Refused { .. }),
            "{command:?}: {reply:?}"
        );
    }
    let malformed = d.send(Command::DeleteTodo {
        todo_id: "not-an-id".into(),
    });
    assert!(
        matches!(&malformed, Reply::Failed { reason } if reason.contains("not-an-id")),
        "{malformed:?}"
    );
    let bad_command_id = d.service.request(Request::Command {
        command_id: "1".into(),
        command: Command::DeleteTodo { todo_id: id(1) },
    });
    assert!(matches!(bad_command_id, Reply::Failed { .. }));
    assert_eq!(d.pending(), pending);
    assert!(d.changes().is_empty());
    assert_eq!(d.titles(Filter::All), ["milk"]);
}

#[test]
fn toggle_all_and_clear_completed_are_one_transaction_each() {
    let mut d = Device::new();
    for n in 1..=5 {
        d.add(n, &format!("t{n}"));
    }
    d.run(Command::SetCompleted {
        todo_id: id(2),
        completed: true,
        shown: None,
    });
    // Four todos are still active: four events, one reply.
    assert_eq!(
        d.run(Command::ToggleAll {
            list_id: LIST.into(),
            completed: true
        }),
        4
    );
    assert_eq!(
        d.todos(Filter::All).1,
        Counts {
            active: 0,
            completed: 5
        }
    );
    assert_eq!(
        d.run(Command::ToggleAll {
            list_id: LIST.into(),
            completed: false
        }),
        5
    );
    d.run(Command::SetCompleted {
        todo_id: id(4),
        completed: true,
        shown: None,
    });
    d.run(Command::SetCompleted {
        todo_id: id(5),
        completed: true,
        shown: None,
    });
    assert_eq!(
        d.run(Command::ClearCompleted {
            list_id: LIST.into()
        }),
        2
    );
    assert_eq!(d.titles(Filter::All), ["t1", "t2", "t3"]);
    // Nothing left to clear: done, with no event.
    assert_eq!(
        d.run(Command::ClearCompleted {
            list_id: LIST.into()
        }),
        0
    );
}

#[test]
fn change_sets_name_the_rows_that_changed_as_they_are_now() {
    let mut d = Device::new();
    for n in 1..=3 {
        d.add(n, &format!("t{n}"));
    }
    let added = d.changes();
    assert_eq!(added.todos.len(), 3);
    assert_eq!(added.counts.len(), 1);
    assert_eq!(
        added.counts[0].counts,
        Counts {
            active: 3,
            completed: 0
        }
    );
    // Nothing happened since: an empty change set.
    assert!(d.changes().is_empty());
    d.run(Command::SetCompleted {
        todo_id: id(2),
        completed: true,
        shown: None,
    });
    let toggled = d.changes();
    assert_eq!(toggled.todos.len(), 1, "{toggled:?}");
    assert!(toggled.todos[0].completed);
    assert_eq!(
        toggled.counts[0].counts,
        Counts {
            active: 2,
            completed: 1
        }
    );
    d.run(Command::DeleteTodo { todo_id: id(3) });
    let deleted = d.changes();
    assert_eq!(deleted.removed_todos, [id(3)]);
    assert!(deleted.todos.is_empty());
    d.run(Command::RenameList {
        list_id: LIST.into(),
        name: "Home".into(),
        shown: None,
    });
    let renamed = d.changes();
    assert_eq!(renamed.lists.len(), 1);
    assert_eq!(renamed.lists[0].name, "Home");
    d.run(Command::DeleteList {
        list_id: LIST.into(),
    });
    let gone = d.changes();
    assert_eq!(gone.removed_lists, [LIST.to_string()]);
}

#[test]
fn a_large_change_says_reset_instead_of_listing_every_row() {
    let mut d = Device::new();
    let max = tandem_store::changes::MAX_LISTED_TODOS as u128;
    for n in 1..=max + 1 {
        d.add(n, "x");
    }
    let changes = d.changes();
    assert!(changes.reset);
    assert!(changes.todos.is_empty());
    assert!(d.changes().is_empty());
}

#[test]
fn a_todo_moves_to_another_list_and_both_lists_counts_change() {
    let mut d = Device::new();
    d.add(1, "milk");
    d.add(2, "report");
    let work = id(0xb2);
    d.run(Command::CreateList {
        list_id: work.clone(),
        name: "Work".into(),
    });
    d.changes();
    d.run(Command::MoveToList {
        todo_id: id(2),
        list_id: work.clone(),
    });
    assert_eq!(d.titles(Filter::All), ["milk"]);
    let moved = d.changes();
    assert_eq!(moved.todos.len(), 1);
    assert_eq!(moved.todos[0].list_id, work);
    let mut counts: Vec<(String, Counts)> = moved
        .counts
        .iter()
        .map(|c| (c.list_id.clone(), c.counts))
        .collect();
    counts.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        counts,
        [
            (
                LIST.to_string(),
                Counts {
                    active: 1,
                    completed: 0
                }
            ),
            (
                work.clone(),
                Counts {
                    active: 1,
                    completed: 0
                }
            )
        ]
    );
    // Into a list that does not exist: refused, nothing recorded.
    let pending = d.pending();
    let reply = d.send(Command::MoveToList {
        todo_id: id(1),
        list_id: id(0xdead),
    });
    assert!(matches!(reply, Reply::Refused { .. }), "{reply:?}");
    assert_eq!(d.pending(), pending);
}

#[test]
fn the_trash_lists_deleted_items_and_hidden_todos_and_restores_them() {
    let mut d = Device::new();
    d.add(1, "milk");
    d.add(2, "bread");
    let work = id(0xb2);
    d.run(Command::CreateList {
        list_id: work.clone(),
        name: "Work".into(),
    });
    d.run(Command::AddTodo {
        todo_id: id(3),
        list_id: work.clone(),
        title: "report".into(),
        due_date: None,
        after: None,
    });
    let trash = |d: &Device| match d.service.request(Request::Trash) {
        Reply::Trash { items, more } => {
            assert!(!more);
            items
                .into_iter()
                .map(|i| (i.kind, i.title, i.deleted, i.list_deleted))
                .collect::<Vec<_>>()
        }
        other => panic!("not the trash: {other:?}"),
    };
    assert!(trash(&d).is_empty());
    d.run(Command::DeleteTodo { todo_id: id(1) });
    d.run(Command::DeleteList {
        list_id: work.clone(),
    });
    // Newest first: the list, then the todo it hides; then the deleted todo.
    let s = |t: &str| t.to_string();
    assert_eq!(
        trash(&d),
        [
            (s("list"), s("Work"), true, false),
            (s("todo"), s("report"), false, true),
            (s("todo"), s("milk"), true, false),
        ]
    );
    d.changes();
    // Restoring the todo brings it back with its change set; restoring again is refused.
    assert_eq!(d.run(Command::RestoreTodo { todo_id: id(1) }), 1);
    assert_eq!(d.titles(Filter::All), ["milk", "bread"]);
    let back = d.changes();
    assert_eq!(back.todos.len(), 1, "{back:?}");
    assert!(matches!(
        d.send(Command::RestoreTodo { todo_id: id(1) }),
        Reply::Refused { .. }
    ));
    // A hidden todo is moved to a live list; the list is restored with the rest of its todos.
    d.run(Command::MoveToList {
        todo_id: id(3),
        list_id: LIST.into(),
    });
    assert_eq!(d.titles(Filter::All), ["milk", "bread", "report"]);
    assert_eq!(trash(&d), [(s("list"), s("Work"), true, false)]);
    assert_eq!(d.run(Command::RestoreList { list_id: work }), 1);
    assert!(trash(&d).is_empty());
}

#[test]
fn a_restored_list_comes_back_with_its_todos_and_counts_in_the_change_set() {
    let mut d = Device::new();
    d.add(1, "milk");
    d.add(2, "bread");
    d.run(Command::SetCompleted {
        todo_id: id(2),
        completed: true,
        shown: None,
    });
    d.run(Command::DeleteList {
        list_id: LIST.into(),
    });
    let gone = d.changes();
    assert_eq!(gone.removed_lists, [LIST]);
    d.run(Command::RestoreList {
        list_id: LIST.into(),
    });
    let back = d.changes();
    assert_eq!(back.lists.len(), 1);
    let mut titles: Vec<&str> = back.todos.iter().map(|t| t.title.as_str()).collect();
    titles.sort();
    assert_eq!(titles, ["bread", "milk"], "{back:?}");
    assert_eq!(back.counts.len(), 1);
    assert_eq!(
        back.counts[0].counts,
        Counts {
            active: 1,
            completed: 1
        }
    );
    // A rename is not a restore: no todos are sent again.
    d.run(Command::RenameList {
        list_id: LIST.into(),
        name: "Home".into(),
        shown: None,
    });
    assert!(d.changes().todos.is_empty());
}

fn todo_row(d: &Device, n: u128) -> TodoRow {
    match d.service.request(Request::Todo { id: id(n) }) {
        Reply::Todo { todo: Some(t) } => *t,
        other => panic!("no todo {n}: {other:?}"),
    }
}

fn conflicts(d: &Device, item: &str) -> Vec<tandem_protocol::data::FieldConflict> {
    match d.service.request(Request::Conflicts { id: item.into() }) {
        Reply::Conflicts { fields } => fields,
        other => panic!("not conflicts: {other:?}"),
    }
}

#[test]
fn a_conflict_lists_every_competing_value_and_resolving_needs_them_all_seen() {
    let mut d = Device::new();
    d.add(1, "milk");
    let created = todo_row(&d, 1).title_hlc;
    // Two edits over the same shown value: concurrent, so the older one stays a conflict.
    for title in ["oat milk", "almond milk"] {
        d.run(Command::EditTitle {
            todo_id: id(1),
            title: title.into(),
            shown: Some(created.clone()),
        });
    }
    // Two equal ticks over the same shown value: no conflict for the user.
    let unticked = todo_row(&d, 1).completed_hlc;
    for _ in 0..2 {
        d.run(Command::SetCompleted {
            todo_id: id(1),
            completed: true,
            shown: Some(unticked.clone()),
        });
    }
    let row = todo_row(&d, 1);
    assert_eq!((row.title.as_str(), row.conflicts), ("almond milk", 1));
    let fields = conflicts(&d, &id(1));
    assert_eq!(fields.len(), 1, "{fields:?}");
    assert_eq!(fields[0].field, "title");
    let values: Vec<(&str, bool)> = fields[0]
        .values
        .iter()
        .map(|v| (v.value.as_str(), v.current))
        .collect();
    assert_eq!(values, [("\"almond milk\"", true), ("\"oat milk\"", false)]);
    assert!(fields[0].values.iter().all(|v| v.at == 1_750_000_000_000));
    let stamps: Vec<String> = fields[0].values.iter().map(|v| v.hlc.clone()).collect();
    // A choice made without seeing every value is refused and records nothing.
    let pending = d.pending();
    let refused = d.send(Command::ResolveConflict {
        item_id: id(1),
        field: "title".into(),
        value: "\"oat milk\"".into(),
        seen: stamps[..1].to_vec(),
    });
    assert!(
        matches!(&refused, Reply::Refused { reason } if reason.contains("look again")),
        "{refused:?}"
    );
    assert_eq!(d.pending(), pending);
    // Bad values are refused too.
    for (field, value) in [("title", "5"), ("title", "not json"), ("colour", "\"red\"")] {
        let reply = d.send(Command::ResolveConflict {
            item_id: id(1),
            field: field.into(),
            value: value.into(),
            seen: stamps.clone(),
        });
        assert!(
            matches!(reply, Reply::Failed { .. } | Reply::Refused { .. }),
            "{field} {value}: {reply:?}"
        );
    }
    assert_eq!(d.pending(), pending);
    // Keeping the older value ends the conflict: one edit naming both.
    assert_eq!(
        d.run(Command::ResolveConflict {
            item_id: id(1),
            field: "title".into(),
            value: "\"oat milk\"".into(),
            seen: stamps,
        }),
        1
    );
    let row = todo_row(&d, 1);
    assert_eq!((row.title.as_str(), row.conflicts), ("oat milk", 0));
    assert!(conflicts(&d, &id(1)).is_empty());
}

#[test]
fn a_list_name_and_a_todos_list_in_conflict_are_resolved_like_any_field() {
    let mut d = Device::new();
    let shown = match d.service.request(Request::Lists) {
        Reply::Lists { lists } => lists[0].name_hlc.clone(),
        other => panic!("{other:?}"),
    };
    for name in ["Home", "House"] {
        d.run(Command::RenameList {
            list_id: LIST.into(),
            name: name.into(),
            shown: Some(shown.clone()),
        });
    }
    let lists = match d.service.request(Request::Lists) {
        Reply::Lists { lists } => lists,
        other => panic!("{other:?}"),
    };
    assert_eq!((lists[0].name.as_str(), lists[0].conflicts), ("House", 1));
    let fields = conflicts(&d, LIST);
    assert_eq!(fields[0].field, "name");
    let seen = fields[0].values.iter().map(|v| v.hlc.clone()).collect();
    d.run(Command::ResolveConflict {
        item_id: LIST.into(),
        field: "name".into(),
        value: "\"Home & House\"".into(),
        seen,
    });
    let lists = match d.service.request(Request::Lists) {
        Reply::Lists { lists } => lists,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        (lists[0].name.as_str(), lists[0].conflicts),
        ("Home & House", 0)
    );
}

#[test]
fn a_device_is_named_once_by_default_and_renamed_at_will() {
    let mut d = Device::new();
    let devices = |d: &Device| match d.service.request(Request::Devices) {
        Reply::Devices {
            devices,
            this_device,
        } => (
            devices
                .into_iter()
                .map(|n| (n.device_id, n.name))
                .collect::<Vec<_>>(),
            this_device,
        ),
        other => panic!("not devices: {other:?}"),
    };
    let (none, me) = devices(&d);
    assert!(none.is_empty());
    let name = |name: &str, if_unnamed| Command::NameDevice {
        name: name.into(),
        if_unnamed,
    };
    assert_eq!(d.run(name("Chrome on Linux", true)), 1);
    // Another tab's default never replaces it.
    assert_eq!(d.run(name("Firefox on Linux", true)), 0);
    assert_eq!(devices(&d).0, [(me.clone(), "Chrome on Linux".to_string())]);
    assert_eq!(d.run(name("  Laptop ", false)), 1);
    assert_eq!(devices(&d).0, [(me.clone(), "Laptop".to_string())]);
    assert!(matches!(d.send(name("   ", false)), Reply::Refused { .. }));
    assert!(matches!(
        d.send(name(&"x".repeat(61), false)),
        Reply::Refused { .. }
    ));
    // Its name is shown with its edits in a conflict, and with its deletes in the Trash.
    d.add(1, "milk");
    let created = todo_row(&d, 1).title_hlc;
    for title in ["a", "b"] {
        d.run(Command::EditTitle {
            todo_id: id(1),
            title: title.into(),
            shown: Some(created.clone()),
        });
    }
    let fields = conflicts(&d, &id(1));
    assert!(fields[0]
        .values
        .iter()
        .all(|v| v.device_name.as_deref() == Some("Laptop") && v.device_id == me));
    d.run(Command::DeleteTodo { todo_id: id(1) });
    match d.service.request(Request::Trash) {
        Reply::Trash { items, .. } => {
            assert_eq!(items[0].device_name.as_deref(), Some("Laptop"))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_items_history_reads_old_to_new_and_the_list_replays_as_it_was() {
    use std::sync::atomic::Ordering;
    let mut d = Device::with_clock(Arc::new(|| NOW.load(Ordering::SeqCst)));
    let at = |ms: u64| NOW.store(1_750_000_000_000 + ms, Ordering::SeqCst);
    at(1_000);
    d.add(1, "milk");
    d.add(2, "bread");
    at(2_000);
    d.run(Command::EditTitle {
        todo_id: id(1),
        title: "oat milk".into(),
        shown: None,
    });
    d.run(Command::SetCompleted {
        todo_id: id(2),
        completed: true,
        shown: None,
    });
    at(3_000);
    d.run(Command::DeleteTodo { todo_id: id(2) });
    d.add(3, "eggs");
    let entries = match d.service.request(Request::History { id: id(1) }) {
        Reply::History { entries } => entries,
        other => panic!("not a history: {other:?}"),
    };
    // Newest first, with what changed, old -> new; everything still pending here.
    let described: Vec<(&str, &str, Vec<String>, &str)> = entries
        .iter()
        .flat_map(|e| {
            e.changes.iter().map(move |c| {
                (
                    e.event_type.as_str(),
                    c.field.as_str(),
                    c.old.clone(),
                    c.new.as_str(),
                )
            })
        })
        .collect();
    assert_eq!(
        described,
        [
            (
                "TodoTitleEdited",
                "title",
                vec!["\"milk\"".to_string()],
                "\"oat milk\""
            ),
            ("TodoCreated", "title", vec![], "\"milk\""),
            ("TodoCreated", "list", vec![], &*format!("\"{LIST}\"")),
        ]
    );
    assert!(entries
        .iter()
        .all(|e| e.pending && e.at >= 1_750_000_001_000));
    assert_eq!(entries[0].hlc_ms, 1_750_000_002_000);
    let as_of = |d: &Device, ms: u64| match d.service.request(Request::AsOf {
        list_id: LIST.into(),
        at_ms: 1_750_000_000_000 + ms,
    }) {
        Reply::AsOf {
            list,
            deleted,
            todos,
        } => (
            list.map(|l| l.name),
            deleted,
            todos
                .into_iter()
                .map(|t| (t.title, t.completed))
                .collect::<Vec<_>>(),
        ),
        other => panic!("not as-of: {other:?}"),
    };
    let s = |t: &str| t.to_string();
    assert_eq!(
        as_of(&d, 1_500),
        (
            Some(s("Inbox")),
            false,
            vec![(s("milk"), false), (s("bread"), false)]
        )
    );
    assert_eq!(
        as_of(&d, 2_000),
        (
            Some(s("Inbox")),
            false,
            vec![(s("oat milk"), false), (s("bread"), true)]
        )
    );
    assert_eq!(
        as_of(&d, 9_000),
        (
            Some(s("Inbox")),
            false,
            vec![(s("oat milk"), false), (s("eggs"), false)]
        )
    );
    // Before the list existed: nothing.
    assert!(matches!(
        d.service.request(Request::AsOf {
            list_id: LIST.into(),
            at_ms: 1_749_999_999_999
        }),
        Reply::AsOf { list: None, .. }
    ));
    assert!(matches!(
        d.service.request(Request::History { id: "nope".into() }),
        Reply::Failed { .. }
    ));
}

#[test]
fn a_todos_list_in_conflict_is_resolved_to_either_list() {
    use tandem_events::decide::TodoCommand;
    for keep_current in [true, false] {
        let mut d = Device::new();
        let (l2, l3) = (id(0xb2), id(0xb3));
        for (list, name) in [(&l2, "Work"), (&l3, "Home")] {
            d.run(Command::CreateList {
                list_id: list.clone(),
                name: name.into(),
            });
        }
        d.add(1, "report");
        let created: tandem_events::hlc::Stamp = todo_row(&d, 1).title_hlc.parse().unwrap();
        // Two moves over the same shown list: concurrent.
        for (n, list) in [&l2, &l3].into_iter().enumerate() {
            d.replica
                .borrow_mut()
                .execute_todo(
                    WorkspaceId::DEFAULT,
                    id(1).parse().unwrap(),
                    TodoCommand::MoveToList {
                        list_id: list.parse().unwrap(),
                        position: ["a", "b"][n].into(),
                        shown_list: Some(created),
                        shown_position: Some(created),
                        resolving: false,
                    },
                )
                .unwrap();
        }
        let row = todo_row(&d, 1);
        assert_eq!((row.list_id.as_str(), row.conflicts), (l3.as_str(), 1));
        let fields = conflicts(&d, &id(1));
        assert_eq!(fields.len(), 1, "{fields:?}");
        let values: Vec<&str> = fields[0].values.iter().map(|v| v.value.as_str()).collect();
        assert_eq!(values, [format!("\"{l3}\""), format!("\"{l2}\"")]);
        let seen = fields[0].values.iter().map(|v| v.hlc.clone()).collect();
        let keep = if keep_current { &l3 } else { &l2 };
        d.run(Command::ResolveConflict {
            item_id: id(1),
            field: "list".into(),
            value: format!("\"{keep}\""),
            seen,
        });
        let row = todo_row(&d, 1);
        assert_eq!(
            (&row.list_id, row.conflicts),
            (keep, 0),
            "keep current: {keep_current}"
        );
        assert!(conflicts(&d, &id(1)).is_empty());
    }
}

#[test]
fn an_equal_value_hidden_as_no_conflict_does_not_come_back_when_the_field_changes() {
    let mut d = Device::new();
    d.add(1, "milk");
    let unticked = todo_row(&d, 1).completed_hlc;
    // Two people tick the box at once: equal, no conflict.
    for _ in 0..2 {
        d.run(Command::SetCompleted {
            todo_id: id(1),
            completed: true,
            shown: Some(unticked.clone()),
        });
    }
    assert_eq!(todo_row(&d, 1).conflicts, 0);
    // One unticks it: the other tick was the same value shown, so it is replaced too.
    let shown = todo_row(&d, 1).completed_hlc;
    d.run(Command::SetCompleted {
        todo_id: id(1),
        completed: false,
        shown: Some(shown),
    });
    let row = todo_row(&d, 1);
    assert_eq!((row.completed, row.conflicts), (false, 0));
}

fn undo_state(d: &Device) -> (Option<String>, Option<String>) {
    match d.service.request(Request::UndoState) {
        Reply::UndoState { undo, redo } => (undo, redo),
        other => panic!("not an undo state: {other:?}"),
    }
}

#[test]
fn undo_and_redo_take_back_the_devices_own_actions_one_command_at_a_time() {
    let mut d = Device::new();
    let s = |t: &str| Some(t.to_string());
    // The list's creation (by Device::new) is the first step.
    assert_eq!(undo_state(&d), (s("create the list “Inbox”"), None));
    d.add(1, "milk");
    d.add(2, "bread");
    d.run(Command::EditTitle {
        todo_id: id(1),
        title: "oat milk".into(),
        shown: None,
    });
    assert_eq!(undo_state(&d), (s("edit the title"), None));
    assert_eq!(d.run(Command::Undo), 1);
    assert_eq!(d.titles(Filter::All), ["milk", "bread"]);
    assert_eq!(undo_state(&d), (s("add “bread”"), s("edit the title")));
    assert_eq!(d.run(Command::Undo), 1);
    assert_eq!(d.titles(Filter::All), ["milk"]);
    assert_eq!(d.run(Command::Redo), 1);
    assert_eq!(d.titles(Filter::All), ["milk", "bread"]);
    assert_eq!(d.run(Command::Redo), 1);
    assert_eq!(d.titles(Filter::All), ["oat milk", "bread"]);
    assert!(
        matches!(d.send(Command::Redo), Reply::Refused { reason } if reason == "Nothing to redo")
    );
    // A many-item command is one step.
    d.run(Command::ToggleAll {
        list_id: LIST.into(),
        completed: true,
    });
    assert_eq!(
        d.todos(Filter::All).1,
        Counts {
            active: 0,
            completed: 2
        }
    );
    assert_eq!(d.run(Command::Undo), 2);
    assert_eq!(
        d.todos(Filter::All).1,
        Counts {
            active: 2,
            completed: 0
        }
    );
    // A new action forgets what was undone.
    d.run(Command::DeleteTodo { todo_id: id(2) });
    assert_eq!(undo_state(&d), (s("delete the to-do"), None));
    assert_eq!(d.run(Command::Undo), 1);
    assert_eq!(d.titles(Filter::All), ["oat milk", "bread"]);
    // The same undo command sent again (a lost reply) takes effect once.
    let again = id(0x9999);
    let send = |d: &Device| {
        d.service.request(Request::Command {
            command_id: again.clone(),
            command: Command::Undo,
        })
    };
    assert_eq!(send(&d), Reply::Done { events: 1 });
    assert_eq!(send(&d), Reply::Done { events: 1 });
    // (It undid the title edit, once.)
    assert_eq!(d.titles(Filter::All), ["milk", "bread"]);
    assert_eq!(undo_state(&d).0, s("add “bread”"));
}

#[test]
fn an_undo_of_what_someone_changed_since_is_refused_naming_them() {
    use tandem_events::domain::{DeviceNamed, DomainEvent, TodoTitleEdited};
    use tandem_events::event::Event;
    use tandem_events::hlc::Stamp;
    use tandem_events::ids::AggregateId;
    let mut d = Device::new();
    d.add(1, "milk");
    d.run(Command::EditTitle {
        todo_id: id(1),
        title: "oat milk".into(),
        shown: None,
    });
    // The server accepts everything this device made.
    let (mine, own) = d.accept_all();
    // Another device, "Phone", then edits the title it saw.
    let edit = mine.last().unwrap();
    let phone = DeviceId::from_uuid(uuid::Uuid::from_u128(0xb0b));
    let at = |n: u32| Stamp {
        ms: edit.hlc_timestamp.ms + 1,
        counter: n,
        node: phone,
    };
    let theirs = |n: u32, aggregate: AggregateId, version: u64, body: DomainEvent| {
        Event {
            event_id: uuid::Uuid::from_u128(0xe000 + u128::from(n))
                .to_string()
                .parse()
                .unwrap(),
            workspace_id: WorkspaceId::DEFAULT,
            aggregate_id: aggregate,
            hlc: at(n),
            device_id: phone,
            version,
            created_at: 1_750_000_000_000,
            body,
        }
        .to_stored()
    };
    let pulled = vec![
        (
            own.len() as u64 + 1,
            theirs(
                1,
                AggregateId::device(WorkspaceId::DEFAULT, phone),
                1,
                DomainEvent::DeviceNamed(DeviceNamed {
                    name: "Phone".into(),
                    bases: vec![],
                }),
            ),
        ),
        (
            own.len() as u64 + 2,
            theirs(
                2,
                edit.aggregate_id,
                edit.version + 1,
                DomainEvent::TodoTitleEdited(TodoTitleEdited {
                    title: "almond milk".into(),
                    bases: vec![edit.hlc_timestamp],
                }),
            ),
        ),
    ];
    d.replica.borrow_mut().accept(&pulled, &[]).unwrap();
    assert_eq!(d.titles(Filter::All), ["almond milk"]);
    let pending = d.pending();
    let refused = d.send(Command::Undo);
    assert_eq!(
        refused,
        Reply::Refused {
            reason: "Cannot undo: Phone changed the title since".into()
        }
    );
    assert_eq!(d.pending(), pending, "nothing recorded");
    assert_eq!(d.titles(Filter::All), ["almond milk"]);
}

#[test]
fn the_inspector_lists_events_runs_read_only_queries_rebuilds_and_exports() {
    use tandem_protocol::data::{Database, EventTable};
    let mut d = Device::new();
    d.add(1, "milk");
    d.add(2, "bread");
    d.run(Command::SetCompleted {
        todo_id: id(2),
        completed: true,
        shown: None,
    });
    // Events: newest first, filtered, paged.
    let list = |d: &Device, event_type: Option<&str>, offset, limit| match d.service.request(
        Request::InspectEvents {
            table: EventTable::Outbox,
            event_type: event_type.map(str::to_string),
            item: None,
            device: Some(String::new()),
            offset,
            limit,
        },
    ) {
        Reply::InspectEvents { events, more } => (
            events.into_iter().map(|e| e.event_type).collect::<Vec<_>>(),
            more,
        ),
        other => panic!("not events: {other:?}"),
    };
    let s = |t: &str| t.to_string();
    assert_eq!(
        list(&d, None, 0, 10),
        (
            vec![
                s("TodoCompleted"),
                s("TodoCreated"),
                s("TodoCreated"),
                s("ListCreated")
            ],
            false
        )
    );
    assert_eq!(
        list(&d, None, 1, 2),
        (vec![s("TodoCreated"), s("TodoCreated")], true)
    );
    assert_eq!(list(&d, Some("TodoCreated"), 0, 10).0.len(), 2);
    // The state.
    match d.service.request(Request::InspectState) {
        Reply::InspectState(state) => {
            assert_eq!((state.pending, state.logged, state.set_aside), (4, 0, 0));
            assert_eq!(state.projection_version, tandem_store::PROJECTION_VERSION);
            assert!(state.clock.starts_with("00175"), "{}", state.clock);
        }
        other => panic!("{other:?}"),
    }
    // The console reads, pages, refuses writes and stops what runs too long.
    let query = |d: &Device, database, sql: &str, offset| {
        d.service.request(Request::Query {
            database,
            sql: sql.into(),
            offset,
        })
    };
    match query(
        &d,
        Database::Views,
        "SELECT title, completed FROM todos ORDER BY title",
        0,
    ) {
        Reply::Query(page) => {
            assert_eq!(page.columns, ["title", "completed"]);
            assert_eq!(
                page.rows,
                [vec![s("bread"), s("1")], vec![s("milk"), s("0")]]
            );
            assert!(!page.more);
        }
        other => panic!("{other:?}"),
    }
    match query(
        &d,
        Database::Events,
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 250) SELECT i FROM n",
        100,
    ) {
        Reply::Query(page) => {
            assert_eq!(page.rows.len(), 100);
            assert_eq!(page.rows[0], [s("101")]);
            assert!(page.more);
        }
        other => panic!("{other:?}"),
    }
    for (sql, why) in [
        ("DELETE FROM outbox", "only reads"),
        ("UPDATE outbox SET version = 9", "only reads"),
        ("SELECT 1; DELETE FROM outbox", "only reads"),
        ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n", "too long"),
        ("SELEC nonsense", "syntax error"),
        ("BEGIN", "only reads"),
        ("PRAGMA synchronous = OFF", "only reads"),
        ("ATTACH DATABASE ':memory:' AS other", "only reads"),
        ("SELECT hlc_now()", "only reads"),
    ] {
        match query(&d, Database::Events, sql, 0) {
            Reply::Refused { reason } => assert!(reason.contains(why), "{sql}: {reason}"),
            other => panic!("{sql}: {other:?}"),
        }
    }
    assert_eq!(d.pending(), 4, "nothing was written");
    // Reading pragmas is allowed, and settings are as they were.
    match query(&d, Database::Events, "PRAGMA synchronous", 0) {
        Reply::Query(page) => assert_eq!(page.rows, [vec![s("2")]], "FULL"),
        other => panic!("{other:?}"),
    }
    // After all that the connection writes again.
    d.add(3, "eggs");
    assert_eq!(d.titles(Filter::All), ["milk", "bread", "eggs"]);
    // A rebuild gives the same views.
    let before = d.replica.borrow().views().hash().unwrap();
    assert_eq!(
        d.service.request(Request::RebuildViews),
        Reply::Rebuilt { events: 5 }
    );
    assert_eq!(d.replica.borrow().views().hash().unwrap(), before);
    assert!(d.changes().reset, "the page reads its list again");
    // The export: one JSON line per event.
    match d.service.request(Request::Export) {
        Reply::Export { lines, events } => {
            assert_eq!(events, 5);
            assert_eq!(lines.lines().count(), 5);
            for line in lines.lines() {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                assert!(
                    v["event_id"].is_string() && v["event_type"].is_string(),
                    "{line}"
                );
            }
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_step_that_cannot_be_undone_is_forgotten_and_a_new_list_with_others_todos_is_kept() {
    use tandem_events::domain::{DomainEvent, TodoCreated};
    use tandem_events::event::Event;
    use tandem_events::hlc::Stamp;
    let mut d = Device::new();
    d.add(1, "milk");
    // The server accepts it all; another device adds a to-do to this device's new list.
    let (mine, own) = d.accept_all();
    let phone = DeviceId::from_uuid(uuid::Uuid::from_u128(0xb0b));
    let theirs = Event {
        event_id: uuid::Uuid::from_u128(0xe001).to_string().parse().unwrap(),
        workspace_id: WorkspaceId::DEFAULT,
        aggregate_id: id(7).parse().unwrap(),
        hlc: Stamp {
            ms: mine.last().unwrap().hlc_timestamp.ms + 1,
            counter: 0,
            node: phone,
        },
        device_id: phone,
        version: 1,
        created_at: 1_750_000_000_000,
        body: DomainEvent::TodoCreated(TodoCreated {
            list_id: LIST.parse().unwrap(),
            title: "theirs".into(),
            position: "z".into(),
            due_date: None,
        }),
    }
    .to_stored();
    d.replica
        .borrow_mut()
        .accept(&[(own.len() as u64 + 1, theirs)], &[])
        .unwrap();
    // Undo the add: fine. Undo the list's creation: refused (their to-do is in it), and the
    // step is forgotten, so there is nothing left to undo rather than a refusal forever.
    assert_eq!(d.run(Command::Undo), 1);
    assert_eq!(d.titles(Filter::All), ["theirs"]);
    match d.send(Command::Undo) {
        Reply::Refused { reason } => assert!(reason.contains("changed the list since"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(d.titles(Filter::All), ["theirs"]);
    assert_eq!(undo_state(&d).0, None);
    assert!(
        matches!(d.send(Command::Undo), Reply::Refused { reason } if reason == "Nothing to undo")
    );
}

#[test]
fn a_list_as_of_follows_todos_moved_in_and_out_and_a_deleted_list() {
    use std::sync::atomic::{AtomicU64, Ordering};
    static CLOCK: AtomicU64 = AtomicU64::new(1_760_000_000_000);
    let mut d = Device::with_clock(Arc::new(|| CLOCK.load(Ordering::SeqCst)));
    let at = |ms: u64| CLOCK.store(1_760_000_000_000 + ms, Ordering::SeqCst);
    let work = id(0xb2);
    at(1_000);
    d.run(Command::CreateList {
        list_id: work.clone(),
        name: "Work".into(),
    });
    d.add(1, "report");
    at(2_000);
    d.run(Command::MoveToList {
        todo_id: id(1),
        list_id: work.clone(),
    });
    at(3_000);
    d.run(Command::DeleteList {
        list_id: work.clone(),
    });
    let as_of = |list: &str, ms: u64| match d.service.request(Request::AsOf {
        list_id: list.into(),
        at_ms: 1_760_000_000_000 + ms,
    }) {
        Reply::AsOf {
            list,
            deleted,
            todos,
        } => (
            list.is_some(),
            deleted,
            todos.into_iter().map(|t| t.title).collect::<Vec<_>>(),
        ),
        other => panic!("{other:?}"),
    };
    let report = vec!["report".to_string()];
    assert_eq!(as_of(LIST, 1_500), (true, false, report.clone()));
    assert_eq!(as_of(&work, 1_500), (true, false, vec![]));
    assert_eq!(as_of(LIST, 2_500), (true, false, vec![]));
    assert_eq!(as_of(&work, 2_500), (true, false, report));
    // Deleted then: said so, with the to-dos it held.
    assert_eq!(
        as_of(&work, 3_500),
        (true, true, vec!["report".to_string()])
    );
}
