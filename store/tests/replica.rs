//! A device replica on real files: commands go through decide → outbox → views, survive a
//! reopen, and a refused command writes nothing.

use std::sync::Arc;

use tandem_events::decide::{DomainError, ListCommand, TodoCommand, TodoEdit};
use tandem_events::event::StoredEvent;
use tandem_events::ids::{AggregateId, DeviceId, WorkspaceId};
use tandem_store::{Replica, ReplicaError, Summary};

fn open(dir: &std::path::Path, first_id: u128) -> Replica {
    try_open(dir, first_id).unwrap()
}

fn try_open(dir: &std::path::Path, first_id: u128) -> Result<Replica, ReplicaError> {
    let mut next = first_id;
    Replica::open(
        dir.join("events.db"),
        dir.join("views.db"),
        DeviceId::from_uuid(uuid::Uuid::from_u128(0xd1)),
        Arc::new(|| 1_750_000_000_000),
        Box::new(move || {
            next += 1;
            uuid::Uuid::from_u128(next)
        }),
        |_| {},
    )
}

#[test]
fn commands_are_recorded_projected_and_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let ws = WorkspaceId::DEFAULT;
    let list = AggregateId::from_uuid(uuid::Uuid::from_u128(0x11));
    let todo = AggregateId::from_uuid(uuid::Uuid::from_u128(0x22));
    {
        let mut r = open(dir.path(), 1_000);
        r.execute_list(
            ws,
            list,
            ListCommand::Create {
                name: "Inbox".into(),
            },
        )
        .unwrap();
        let created = r
            .execute_todo(
                ws,
                todo,
                TodoCommand::Create {
                    list_id: list,
                    title: "milk".into(),
                    position: "V".into(),
                    due_date: None,
                },
            )
            .unwrap();
        assert_eq!(created.len(), 1);
        assert_eq!(created[0].version, 1);
        let done = r
            .execute_todo(
                ws,
                todo,
                TodoCommand::Edit {
                    edit: TodoEdit::Completed(true),
                    resolving: false,
                    shown: None,
                },
            )
            .unwrap();
        assert_eq!(done[0].version, 2);
        assert!(done[0].hlc_timestamp > created[0].hlc_timestamp);
        assert_eq!(
            r.summary().unwrap(),
            Summary {
                lists: 1,
                todos: 1,
                accepted: 0,
                pending: 3
            }
        );
        // Refused: nothing written.
        let err = r
            .execute_todo(
                ws,
                todo,
                TodoCommand::Edit {
                    edit: TodoEdit::Title("  ".into()),
                    resolving: false,
                    shown: None,
                },
            )
            .unwrap_err();
        assert!(
            matches!(
                err,
                ReplicaError::Domain(DomainError::Empty { field: "title" })
            ),
            "{err}"
        );
        assert_eq!(r.summary().unwrap().pending, 3);
    }
    let r = open(dir.path(), 2_000);
    assert_eq!(
        r.summary().unwrap(),
        Summary {
            lists: 1,
            todos: 1,
            accepted: 0,
            pending: 3
        }
    );
    let lists = r.lists(ws).unwrap();
    assert_eq!(lists.len(), 1);
    assert_eq!((lists[0].id, lists[0].name.as_str()), (list, "Inbox"));
    let todos = r.views().todos(list).unwrap();
    assert_eq!(todos.len(), 1);
    assert!(todos[0].completed);
    let completed: bool = r
        .views()
        .connection()
        .query_row(
            "SELECT completed FROM todos WHERE todo_id = ?1",
            [todo.to_string()],
            |row| row.get(0),
        )
        .unwrap();
    assert!(completed);
    assert_eq!(
        r.log().device_id(),
        DeviceId::from_uuid(uuid::Uuid::from_u128(0xd1))
    );
}

#[test]
fn a_list_reads_by_filter_with_counts_and_one_item_in_detail() {
    use tandem_store::{TodoCounts, TodoFilter};
    let dir = tempfile::tempdir().unwrap();
    let ws = WorkspaceId::DEFAULT;
    let list = AggregateId::from_uuid(uuid::Uuid::from_u128(0x11));
    let mut r = open(dir.path(), 1_000);
    r.execute_list(
        ws,
        list,
        ListCommand::Create {
            name: "Home".into(),
        },
    )
    .unwrap();
    let ids: Vec<AggregateId> = (0..4u128)
        .map(|i| AggregateId::from_uuid(uuid::Uuid::from_u128(0x100 + i)))
        .collect();
    for (i, id) in ids.iter().enumerate() {
        r.execute_todo(
            ws,
            *id,
            TodoCommand::Create {
                list_id: list,
                title: format!("todo {i}"),
                position: ["3", "V", "k", "x"][i].into(),
                due_date: None,
            },
        )
        .unwrap();
    }
    for id in &ids[..2] {
        r.execute_todo(
            ws,
            *id,
            TodoCommand::Edit {
                edit: TodoEdit::Completed(true),
                resolving: false,
                shown: None,
            },
        )
        .unwrap();
    }
    r.execute_todo(ws, ids[3], TodoCommand::Delete).unwrap();
    r.execute_todo(
        ws,
        ids[2],
        TodoCommand::Edit {
            edit: TodoEdit::Notes("two litres".into()),
            resolving: false,
            shown: None,
        },
    )
    .unwrap();
    let v = r.views();
    let titles = |f| -> Vec<String> {
        v.todos_filtered(list, f)
            .unwrap()
            .into_iter()
            .map(|t| t.title)
            .collect()
    };
    assert_eq!(titles(TodoFilter::All), ["todo 0", "todo 1", "todo 2"]);
    assert_eq!(titles(TodoFilter::Active), ["todo 2"]);
    assert_eq!(titles(TodoFilter::Completed), ["todo 0", "todo 1"]);
    assert_eq!(
        v.counts(list).unwrap(),
        TodoCounts {
            active: 1,
            completed: 2
        }
    );
    let detail = v.todo(ids[2]).unwrap().unwrap();
    assert_eq!(
        (detail.notes.as_str(), detail.list_id, detail.deleted),
        ("two litres", list, false)
    );
    assert!(
        v.todo(ids[3]).unwrap().unwrap().deleted,
        "deleted ones are still readable"
    );
    assert_eq!(
        v.todo(AggregateId::from_uuid(uuid::Uuid::from_u128(9)))
            .unwrap(),
        None
    );
}

#[test]
fn each_taking_of_ownership_gets_a_greater_epoch_across_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let first = {
        let r = open(dir.path(), 1_000);
        let a = r.log().take_ownership().unwrap();
        let b = r.log().take_ownership().unwrap();
        assert_eq!((a, b), (1, 2));
        b
    };
    let r = open(dir.path(), 2_000);
    assert_eq!(r.log().take_ownership().unwrap(), first + 1);
}

/// An acknowledgement of this device's own events changes no view row: only the checkpoint
/// moves, so the pages hear of no change (the views are not rewritten with what they hold),
/// and an empty pull writes nothing at all (its commit would cost a durable sync).
#[test]
fn an_acknowledgement_rewrites_no_view_row_and_an_empty_pull_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ws = WorkspaceId::DEFAULT;
    let list = AggregateId::from_uuid(uuid::Uuid::from_u128(0x11));
    let todo = AggregateId::from_uuid(uuid::Uuid::from_u128(0x22));
    let mut r = open(dir.path(), 3_000);
    tandem_store::changes::take(r.views().connection()).unwrap();
    let mut made = r
        .execute_list(
            ws,
            list,
            ListCommand::Create {
                name: "Inbox".into(),
            },
        )
        .unwrap();
    made.extend(
        r.execute_todo(
            ws,
            todo,
            TodoCommand::Create {
                list_id: list,
                title: "milk".into(),
                position: "V".into(),
                due_date: None,
            },
        )
        .unwrap(),
    );
    let recorded = tandem_store::changes::take(r.views().connection()).unwrap();
    assert!(
        !recorded.todos.is_empty(),
        "the commands' own rows are a change"
    );
    let own: Vec<_> = made
        .iter()
        .enumerate()
        .map(|(i, e)| (e.event_id, i as u64 + 1))
        .collect();
    let before = tandem_store::views::hash(r.views().connection()).unwrap();
    r.accept(&[], &own).unwrap();
    assert_eq!(r.pending_len().unwrap(), 0);
    assert_eq!(r.views().checkpoint(ws).unwrap(), 2, "the checkpoint moves");
    let acked = tandem_store::changes::take(r.views().connection()).unwrap();
    assert_eq!(
        acked,
        tandem_protocol::data::Changes::default(),
        "the acknowledgement changed rows"
    );
    assert_eq!(
        tandem_store::views::hash(r.views().connection()).unwrap(),
        before
    );
    // An empty pull: the log's file is not written.
    let changes_before: i64 = r
        .log()
        .connection()
        .query_row("SELECT total_changes()", [], |row| row.get(0))
        .unwrap();
    r.store_pulled(&[], true).unwrap();
    let changes_after: i64 = r
        .log()
        .connection()
        .query_row("SELECT total_changes()", [], |row| row.get(0))
        .unwrap();
    assert_eq!(changes_before, changes_after, "an empty pull wrote rows");
}

#[test]
fn a_damaged_file_is_told_apart_from_a_passing_failure() {
    let dir = tempfile::tempdir().unwrap();
    // A healthy device first: its files exist and open.
    drop(open(dir.path(), 1_000));
    // Then events.db's header is overwritten (a damaged disk, another program's file).
    let path = dir.path().join("events.db");
    let mut bytes = std::fs::read(&path).unwrap();
    for b in bytes.iter_mut().take(100) {
        *b = 0xAB;
    }
    std::fs::write(&path, &bytes).unwrap();
    let _ = std::fs::remove_file(dir.path().join("events.db-wal"));
    let Err(error) = try_open(dir.path(), 2_000) else {
        panic!("a damaged file opened")
    };
    assert!(error.is_damaged_file(), "{error}");
    // A refusal of the domain is no damaged file.
    assert!(!ReplicaError::NothingToUndo.is_damaged_file());
}

#[test]
fn a_log_written_by_a_newer_build_is_refused_unchanged_and_an_old_one_is_marked() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path(), 1_000));
    let path = dir.path().join("events.db");
    let version = |path: &std::path::Path| -> i64 {
        let conn = tandem_store::rusqlite::Connection::open(path).unwrap();
        conn.pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap()
    };
    // A file of this build records its schema.
    assert_eq!(version(&path), tandem_store::log::LOG_SCHEMA);
    // One from before schemas were recorded (0) opens and is marked.
    {
        let conn = tandem_store::rusqlite::Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 0).unwrap();
    }
    drop(open(dir.path(), 2_000));
    assert_eq!(version(&path), tandem_store::log::LOG_SCHEMA);
    // A newer build's file is refused, said as such, and left as it was.
    let newer = tandem_store::log::LOG_SCHEMA + 1;
    {
        let conn = tandem_store::rusqlite::Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", newer).unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let Err(error) = try_open(dir.path(), 3_000) else {
        panic!("a newer build's log opened")
    };
    assert!(error.is_newer_file(), "{error}");
    assert!(!error.is_damaged_file(), "{error}");
    assert!(error.to_string().contains("newer version"), "{error}");
    assert_eq!(version(&path), newer);
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert!(tandem_store::log::EventLog::open_reader(&path).is_err());
}

#[test]
fn a_recovered_log_is_copied_over_the_old_file_and_keeps_counting_owners() {
    let (old_dir, fresh_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ws = WorkspaceId::DEFAULT;
    let list = AggregateId::from_uuid(uuid::Uuid::from_u128(0x11));
    let mut old = open(old_dir.path(), 1_000);
    old.execute_list(
        ws,
        list,
        ListCommand::Create {
            name: "Inbox".into(),
        },
    )
    .unwrap();
    for _ in 0..3 {
        old.log().take_ownership().unwrap();
    }
    let mut fresh = open(fresh_dir.path(), 2_000);
    assert_eq!(fresh.adopt(&old).unwrap(), 1);
    assert_eq!(fresh.log().ownership_epoch().unwrap(), 3);
    let outbox = fresh.pending(10).unwrap();
    assert!(!fresh.log().is_recovered().unwrap());
    fresh.log().mark_recovered().unwrap();
    assert!(fresh.log().is_recovered().unwrap());
    drop(old);
    fresh
        .log()
        .copy_over(old_dir.path().join("events.db"))
        .unwrap();
    // The old place now holds the recovered log (its views are built again from it).
    std::fs::remove_file(old_dir.path().join("views.db")).unwrap();
    let reopened = open(old_dir.path(), 3_000);
    assert_eq!(reopened.pending(10).unwrap(), outbox);
    assert_eq!(reopened.log().take_ownership().unwrap(), 4);
    assert_eq!(reopened.summary().unwrap().lists, 1);
}

/// A device answers its page once the outbox commit is durable and commits the views after
/// (`hold_views`/`release_views`): the worker killed between the two loses nothing — the next
/// open applies the outbox again. And a held command is readable on the views' own connection
/// at once (the change set the page renders), committed by the release.
#[test]
fn views_held_open_after_a_command_catch_up_at_the_next_open_when_never_committed() {
    let dir = tempfile::tempdir().unwrap();
    let ws = WorkspaceId::DEFAULT;
    let list = AggregateId::from_uuid(uuid::Uuid::from_u128(0x11));
    let milk = AggregateId::from_uuid(uuid::Uuid::from_u128(0x22));
    let eggs = AggregateId::from_uuid(uuid::Uuid::from_u128(0x23));
    let create = |title: &str, position: &str| TodoCommand::Create {
        list_id: list,
        title: title.into(),
        position: position.into(),
        due_date: None,
    };
    // What another connection reads from views.db: only what is committed.
    let committed = |dir: &std::path::Path| -> Vec<String> {
        let conn = rusqlite::Connection::open(dir.join("views.db")).unwrap();
        let mut stmt = conn
            .prepare("SELECT title FROM todos ORDER BY position")
            .unwrap();
        let titles = stmt
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<Vec<String>, _>>()
            .unwrap();
        titles
    };
    {
        let mut r = open(dir.path(), 1_000);
        r.execute_list(
            ws,
            list,
            ListCommand::Create {
                name: "Inbox".into(),
            },
        )
        .unwrap();
        r.hold_views();
        r.execute_todo(ws, milk, create("milk", "V")).unwrap();
        let shown: Vec<String> = r
            .views()
            .todos(list)
            .unwrap()
            .into_iter()
            .map(|t| t.title)
            .collect();
        assert_eq!(shown, ["milk"], "readable on the views' connection at once");
        r.release_views().unwrap();
        assert_eq!(committed(dir.path()), ["milk"], "committed by the release");

        r.hold_views();
        r.execute_todo(ws, eggs, create("eggs", "W")).unwrap();
        assert_eq!(
            committed(dir.path()),
            ["milk"],
            "not yet committed while held"
        );
        // Killed here: the connections close with the views' transaction open.
    }
    let r = open(dir.path(), 2_000);
    let titles: Vec<String> = r
        .views()
        .todos(list)
        .unwrap()
        .into_iter()
        .map(|t| t.title)
        .collect();
    assert_eq!(
        titles,
        ["milk", "eggs"],
        "the outbox applied again at the open"
    );
    assert_eq!(r.pending_len().unwrap(), 3);
    drop(r);
    assert_eq!(committed(dir.path()), ["milk", "eggs"]);
}

/// A list made as "draft" and then renamed "final" on the device at `dir`, each command in a
/// replica of its own (ids from `first_id`), both left in its outbox: the two commands' events.
fn draft_then_final(
    dir: &std::path::Path,
    list: AggregateId,
    first_id: u128,
) -> (Vec<StoredEvent>, Vec<StoredEvent>) {
    let ws = WorkspaceId::DEFAULT;
    let made = open(dir, first_id)
        .execute_list(
            ws,
            list,
            ListCommand::Create {
                name: "draft".into(),
            },
        )
        .unwrap();
    let renamed = open(dir, first_id + 1_000)
        .execute_list(
            ws,
            list,
            ListCommand::Rename {
                name: "final".into(),
                resolving: false,
                shown: None,
            },
        )
        .unwrap();
    (made, renamed)
}

/// events.db in `dir`, opened as `device`'s log.
fn log_in(dir: &std::path::Path, device: u128) -> tandem_store::EventLog {
    tandem_store::EventLog::open(
        dir.join("events.db"),
        DeviceId::from_uuid(uuid::Uuid::from_u128(device)),
        Arc::new(|| 1_750_000_000_000),
    )
    .unwrap()
}

/// Views over `log` from views.db in `dir`, their cache cold.
fn cold_views(dir: &std::path::Path, log: &tandem_store::EventLog) -> tandem_store::Views {
    let (views, _) = tandem_store::Views::open_current(dir.join("views.db"), log, |_| {}).unwrap();
    assert_eq!(views.cached(), 0, "a cold cache");
    views
}

fn list_name(views: &tandem_store::Views, list: AggregateId) -> String {
    views
        .connection()
        .query_row(
            "SELECT name FROM lists WHERE list_id = ?1",
            [list.to_string()],
            |row| row.get(0),
        )
        .unwrap()
}

/// A pulled creation of an aggregate whose later edit waits in the outbox (the push's answer
/// was lost, and the views' cache is cold after a reopen): the views fold the outbox's edit
/// too — the projector's shortcut for new aggregates (no history to read) must not apply here.
#[test]
fn a_pulled_creation_keeps_the_outboxs_later_edit_in_the_views() {
    let dir = tempfile::tempdir().unwrap();
    let list = AggregateId::from_uuid(uuid::Uuid::from_u128(0x31));
    let (made, _) = draft_then_final(dir.path(), list, 5_000);
    // The creation comes back from the server with seq 1, to views whose cache is cold.
    let mut log = log_in(dir.path(), 0xd1);
    let mut views = cold_views(dir.path(), &log);
    log.accept(&[(1, made[0].clone())], &[]).unwrap();
    assert_eq!(log.outbox_len().unwrap(), 1, "the rename still waits");
    views.catch_up(&log, 100).unwrap();
    assert_eq!(list_name(&views, list), "final");
}

/// A server's pull is not trusted to hand an aggregate's versions out in order: a creation
/// arriving after its own later edit (a hostile or broken server) reaches cold views, which
/// must not start that aggregate empty and lose the edit already in the log.
#[test]
fn a_creation_pulled_after_its_own_edit_keeps_the_edit_in_the_views() {
    let list = AggregateId::from_uuid(uuid::Uuid::from_u128(0x41));
    let author = tempfile::tempdir().unwrap();
    let (made, renamed) = draft_then_final(author.path(), list, 7_000);
    assert_eq!((made.len(), renamed.len()), (1, 1));
    let dir = tempfile::tempdir().unwrap();
    let mut log = log_in(dir.path(), 0xd2);
    // The rename (version 2) comes as seq 1, the creation (version 1) as seq 2.
    log.accept(&[(1, renamed[0].clone())], &[]).unwrap();
    cold_views(dir.path(), &log).catch_up(&log, 100).unwrap();
    log.accept(&[(2, made[0].clone())], &[]).unwrap();
    let mut views = cold_views(dir.path(), &log);
    views.catch_up(&log, 100).unwrap();
    assert_eq!(
        list_name(&views, list),
        "final",
        "the edit the log already held"
    );
}
