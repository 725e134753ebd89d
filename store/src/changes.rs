//! Row-level change sets for the page (ARCHITECTURE.md "The page and the worker"): which list and
//! todo rows of the views changed since the last look, read as they are at that moment.
//!
//! Tracked by temporary triggers on the views connection, so every path that writes the views
//! is covered — commands, pulled pages, acknowledgements, clock corrections, set-aside events
//! — without each having to report what it touched. Temporary objects live only on this
//! connection and never reach views.db.

use rusqlite::{Connection, OptionalExtension};
use tandem_protocol::data::{
    Changes, Competing, Counts, DeviceName, FieldConflict, ListCounts, ListRow, ListSnapshot,
    TodoRow, TrashRow,
};

/// The lists of `workspace` with their counts and the live todos of `list_id` (or the first
/// list), read in one transaction.
/// The workspace a list lives in, by the views (none for an unknown list).
pub fn list_workspace(conn: &Connection, list_id: &str) -> Result<Option<String>, ViewsError> {
    Ok(conn
        .prepare_cached("SELECT workspace_id FROM lists WHERE list_id = ?1")?
        .query_row([list_id], |r| r.get(0))
        .optional()?)
}

pub fn snapshot(
    conn: &Connection,
    workspace: &str,
    list_id: Option<String>,
) -> Result<ListSnapshot, ViewsError> {
    // A read transaction (rolled back when dropped: it writes nothing).
    let _read = conn.unchecked_transaction()?;
    let lists = list_rows(conn, workspace)?;
    let mut list_counts = Vec::with_capacity(lists.len());
    for l in &lists {
        list_counts.push(ListCounts {
            list_id: l.id.clone(),
            counts: counts(conn, &l.id)?,
        });
    }
    let list_id = list_id.or_else(|| lists.first().map(|l| l.id.clone()));
    let list_known = list_id
        .as_ref()
        .is_some_and(|id| lists.iter().any(|l| &l.id == id));
    let todos = match (&list_id, list_known) {
        (Some(id), true) => todo_rows(conn, id, None)?,
        _ => vec![],
    };
    Ok(ListSnapshot {
        lists,
        list_counts,
        list_id,
        list_known,
        todos,
    })
}

use crate::views::ViewsError;

/// Past this many changed todos a change set says `reset` instead of listing them (a first
/// download of 100,000 events would otherwise be one enormous message the page must apply).
pub const MAX_LISTED_TODOS: i64 = 2_000;

const TRACK: &str = "
CREATE TEMP TABLE IF NOT EXISTS changed_lists (id TEXT NOT NULL PRIMARY KEY) WITHOUT ROWID;
CREATE TEMP TABLE IF NOT EXISTS changed_todos (id TEXT NOT NULL PRIMARY KEY) WITHOUT ROWID;
CREATE TEMP TABLE IF NOT EXISTS changed_counts (id TEXT NOT NULL PRIMARY KEY) WITHOUT ROWID;
-- A list row is rewritten (deleted, then inserted) when it changes: a deleted one written back
-- live is a restored list, whose todos (and counts) come back with it though none of their
-- rows changed.
CREATE TEMP TABLE IF NOT EXISTS deleted_lists (id TEXT NOT NULL PRIMARY KEY) WITHOUT ROWID;
CREATE TEMP TRIGGER IF NOT EXISTS track_lists_insert AFTER INSERT ON main.lists BEGIN
    INSERT OR IGNORE INTO changed_lists VALUES (new.list_id);
    INSERT OR IGNORE INTO changed_todos SELECT t.todo_id FROM main.todos t
        WHERE t.list_id = new.list_id AND NOT new.deleted
          AND EXISTS (SELECT 1 FROM deleted_lists WHERE id = new.list_id);
    INSERT OR IGNORE INTO changed_counts SELECT new.list_id
        WHERE NOT new.deleted AND EXISTS (SELECT 1 FROM deleted_lists WHERE id = new.list_id);
END;
CREATE TEMP TRIGGER IF NOT EXISTS track_lists_update AFTER UPDATE ON main.lists BEGIN
    INSERT OR IGNORE INTO changed_lists VALUES (new.list_id);
    INSERT OR IGNORE INTO changed_counts VALUES (new.list_id);
    INSERT OR IGNORE INTO changed_todos SELECT t.todo_id FROM main.todos t
        WHERE t.list_id = new.list_id AND old.deleted AND NOT new.deleted;
END;
CREATE TEMP TRIGGER IF NOT EXISTS track_lists_delete AFTER DELETE ON main.lists BEGIN
    INSERT OR IGNORE INTO changed_lists VALUES (old.list_id);
    INSERT OR IGNORE INTO deleted_lists SELECT old.list_id WHERE old.deleted;
END;
CREATE TEMP TRIGGER IF NOT EXISTS track_todos_insert AFTER INSERT ON main.todos BEGIN
    INSERT OR IGNORE INTO changed_todos VALUES (new.todo_id);
    INSERT OR IGNORE INTO changed_counts VALUES (new.list_id);
END;
CREATE TEMP TRIGGER IF NOT EXISTS track_todos_update AFTER UPDATE ON main.todos BEGIN
    INSERT OR IGNORE INTO changed_todos VALUES (new.todo_id);
    INSERT OR IGNORE INTO changed_counts VALUES (old.list_id);
    INSERT OR IGNORE INTO changed_counts VALUES (new.list_id);
END;
CREATE TEMP TRIGGER IF NOT EXISTS track_todos_delete AFTER DELETE ON main.todos BEGIN
    INSERT OR IGNORE INTO changed_todos VALUES (old.todo_id);
    INSERT OR IGNORE INTO changed_counts VALUES (old.list_id);
END;
CREATE TEMP TRIGGER IF NOT EXISTS track_conflicts_insert AFTER INSERT ON main.conflicts BEGIN
    INSERT OR IGNORE INTO changed_todos
        SELECT new.aggregate_id WHERE EXISTS (SELECT 1 FROM main.todos WHERE todo_id = new.aggregate_id);
    INSERT OR IGNORE INTO changed_lists
        SELECT new.aggregate_id WHERE EXISTS (SELECT 1 FROM main.lists WHERE list_id = new.aggregate_id);
END;
CREATE TEMP TRIGGER IF NOT EXISTS track_conflicts_delete AFTER DELETE ON main.conflicts BEGIN
    INSERT OR IGNORE INTO changed_todos
        SELECT old.aggregate_id WHERE EXISTS (SELECT 1 FROM main.todos WHERE todo_id = old.aggregate_id);
    INSERT OR IGNORE INTO changed_lists
        SELECT old.aggregate_id WHERE EXISTS (SELECT 1 FROM main.lists WHERE list_id = old.aggregate_id);
END;
";

/// How many tracking triggers [`TRACK`] installs.
const TRIGGERS: i64 = 8;

/// Starts tracking (idempotent). A rebuild drops the tables and their triggers with them:
/// [`take`] notices and answers `reset`.
pub fn track(conn: &Connection) -> Result<(), ViewsError> {
    conn.execute_batch(TRACK)?;
    Ok(())
}

fn tracking(conn: &Connection) -> Result<bool, ViewsError> {
    let n: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_temp_master WHERE type = 'trigger' AND name LIKE 'track_%'",
        [],
        |r| r.get(0),
    )?;
    Ok(n == TRIGGERS)
}

/// What changed since the last call, as the rows are now; then starts over.
pub fn take(conn: &Connection) -> Result<Changes, ViewsError> {
    if !tracking(conn)? {
        track(conn)?;
        clear(conn)?;
        return Ok(Changes {
            reset: true,
            ..Changes::default()
        });
    }
    let todos: i64 = conn.query_row("SELECT count(*) FROM temp.changed_todos", [], |r| r.get(0))?;
    if todos > MAX_LISTED_TODOS {
        clear(conn)?;
        return Ok(Changes {
            reset: true,
            ..Changes::default()
        });
    }
    let mut changes = Changes::default();
    for id in ids(conn, "changed_lists")? {
        match list_row(conn, &id)? {
            Some(row) => changes.lists.push(row),
            None => changes.removed_lists.push(id),
        }
    }
    for id in ids(conn, "changed_todos")? {
        match todo_row(conn, &id)? {
            Some(row) if !row.deleted => changes.todos.push(row),
            _ => changes.removed_todos.push(id),
        }
    }
    for id in ids(conn, "changed_counts")? {
        changes.counts.push(ListCounts {
            counts: counts(conn, &id)?,
            list_id: id,
        });
    }
    clear(conn)?;
    Ok(changes)
}

/// [`take`], split by the workspace of each row: one change set per workspace that has
/// changed rows, and removals (whose rows are gone: their workspace is unknown now) and a reset
/// under `None`, for every page (a page removes only what it shows).
pub fn take_by_workspace(conn: &Connection) -> Result<Vec<(Option<String>, Changes)>, ViewsError> {
    let all = take(conn)?;
    if all.reset {
        return Ok(vec![(None, all)]);
    }
    let mut parts: std::collections::BTreeMap<Option<String>, Changes> = Default::default();
    let list_home = |id: &str| list_workspace(conn, id);
    for list in all.lists {
        let ws = list_home(&list.id)?;
        parts.entry(ws).or_default().lists.push(list);
    }
    for todo in all.todos {
        let ws: Option<String> = conn
            .prepare_cached("SELECT workspace_id FROM todos WHERE todo_id = ?1")?
            .query_row([&todo.id], |r| r.get(0))
            .optional()?;
        parts.entry(ws).or_default().todos.push(todo);
    }
    for counts in all.counts {
        let ws = list_home(&counts.list_id)?;
        parts.entry(ws).or_default().counts.push(counts);
    }
    if !all.removed_lists.is_empty() || !all.removed_todos.is_empty() {
        let gone = parts.entry(None).or_default();
        gone.removed_lists = all.removed_lists;
        gone.removed_todos = all.removed_todos;
    }
    Ok(parts.into_iter().collect())
}

fn clear(conn: &Connection) -> Result<(), ViewsError> {
    conn.execute_batch(
        "DELETE FROM temp.changed_lists; DELETE FROM temp.changed_todos; \
         DELETE FROM temp.changed_counts; DELETE FROM temp.deleted_lists;",
    )?;
    Ok(())
}

fn ids(conn: &Connection, table: &str) -> Result<Vec<String>, ViewsError> {
    let mut stmt = conn.prepare_cached(&format!("SELECT id FROM temp.{table} ORDER BY id"))?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn read_list(r: &rusqlite::Row<'_>) -> rusqlite::Result<ListRow> {
    Ok(ListRow {
        id: r.get(0)?,
        name: r.get(1)?,
        name_hlc: r.get(2)?,
        created_hlc: r.get(3)?,
        conflicts: r.get::<_, i64>(4)?.max(0) as u64,
    })
}

const LIST_COLUMNS: &str = "list_id, name, name_hlc, created_hlc, \
     (SELECT count(DISTINCT c.field) FROM conflicts c WHERE c.aggregate_id = list_id)";

/// A live list's row (`None` once deleted or unknown).
pub fn list_row(conn: &Connection, id: &str) -> Result<Option<ListRow>, ViewsError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {LIST_COLUMNS} FROM lists WHERE list_id = ?1 AND NOT deleted"
        ))?
        .query_row([id], read_list)
        .optional()?)
}

/// The live lists of a workspace, oldest first.
pub fn list_rows(conn: &Connection, workspace: &str) -> Result<Vec<ListRow>, ViewsError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {LIST_COLUMNS} FROM lists \
         WHERE workspace_id = ?1 AND NOT deleted ORDER BY created_hlc, list_id"
    ))?;
    let rows = stmt.query_map([workspace], read_list)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

const TODO_COLUMNS: &str = "t.todo_id, t.list_id, t.title, t.title_hlc, t.notes, t.notes_hlc, \
     t.completed, t.completed_hlc, t.due_date, t.due_date_hlc, t.position, \
     (SELECT count(DISTINCT c.field) FROM conflicts c WHERE c.aggregate_id = t.todo_id AND c.field <> 'position'), \
     t.deleted OR coalesce((SELECT l.deleted FROM lists l WHERE l.list_id = t.list_id), 1)";

fn read_todo(r: &rusqlite::Row<'_>) -> rusqlite::Result<TodoRow> {
    Ok(TodoRow {
        id: r.get(0)?,
        list_id: r.get(1)?,
        title: r.get(2)?,
        title_hlc: r.get(3)?,
        notes: r.get(4)?,
        notes_hlc: r.get(5)?,
        completed: r.get(6)?,
        completed_hlc: r.get(7)?,
        due_date: r.get(8)?,
        due_date_hlc: r.get(9)?,
        position: r.get(10)?,
        conflicts: r.get::<_, i64>(11)?.max(0) as u64,
        deleted: r.get(12)?,
    })
}

/// One todo's row, deleted ones too (`deleted` is also set when its list is gone).
pub fn todo_row(conn: &Connection, id: &str) -> Result<Option<TodoRow>, ViewsError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {TODO_COLUMNS} FROM todos t WHERE t.todo_id = ?1"
        ))?
        .query_row([id], read_todo)
        .optional()?)
}

/// The live todos of a list with the given completion (`None`: all), in display order.
pub fn todo_rows(
    conn: &Connection,
    list_id: &str,
    completed: Option<bool>,
) -> Result<Vec<TodoRow>, ViewsError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {TODO_COLUMNS} FROM todos t WHERE t.list_id = ?1 AND NOT t.deleted \
         AND (?2 IS NULL OR t.completed = ?2) ORDER BY t.position, t.todo_id"
    ))?;
    let rows = stmt.query_map(rusqlite::params![list_id, completed], read_todo)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A list's counts of live active and completed todos (kept in `list_counts` by the views'
/// triggers: one row read, whatever the list's size).
pub fn counts(conn: &Connection, list_id: &str) -> Result<Counts, ViewsError> {
    let (active, completed): (i64, i64) = conn
        .prepare_cached("SELECT active, completed FROM list_counts WHERE list_id = ?1")?
        .query_row([list_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .unwrap_or((0, 0));
    Ok(Counts {
        active: active.max(0) as u64,
        completed: completed.max(0) as u64,
    })
}

/// At most this many Trash rows in one answer (the rest: `more`).
pub const TRASH_LIMIT: usize = 500;

/// The Trash of a workspace: deleted lists, deleted todos, and todos hidden because their list
/// is deleted, most recently deleted first (by the latest delete that hides each), at most
/// [`TRASH_LIMIT`] (a list before the todos it hides); `true` when there are more.
pub fn trash(conn: &Connection, workspace: &str) -> Result<(Vec<TrashRow>, bool), ViewsError> {
    // `hider`: the item whose delete hides the row (the todo itself, or its list); its latest
    // delete in the history says when, where and by whom.
    let sql = "WITH items AS ( \
           SELECT 'list' AS kind, l.list_id AS id, l.name AS title, NULL AS list_id, \
                  NULL AS list_name, 1 AS deleted, 0 AS list_deleted, l.list_id AS hider \
             FROM lists l WHERE l.workspace_id = ?1 AND l.deleted \
           UNION ALL \
           SELECT 'todo', t.todo_id, t.title, t.list_id, l.name, t.deleted, l.deleted, \
                  CASE WHEN t.deleted THEN t.todo_id ELSE l.list_id END \
             FROM todos t JOIN lists l ON l.list_id = t.list_id \
            WHERE t.workspace_id = ?1 AND (t.deleted OR l.deleted) \
         ) \
         SELECT i.kind, i.id, i.title, i.list_id, i.list_name, i.deleted, i.list_deleted, \
                d.hlc, d.created_at, d.device_id, v.name \
           FROM items i \
           JOIN history d ON d.aggregate_id = i.hider \
            AND d.hlc = (SELECT max(h.hlc) FROM history h WHERE h.aggregate_id = i.hider \
                         AND h.event_type IN ('ListDeleted', 'TodoDeleted') \
                         AND NOT EXISTS (SELECT 1 FROM history r, json_each(r.data, '$.bases') b \
                                          WHERE r.aggregate_id = i.hider \
                                            AND r.event_type IN ('ListRestored', 'TodoRestored') \
                                            AND b.value = h.hlc)) \
           LEFT JOIN devices v ON v.workspace_id = ?1 AND v.device_id = d.device_id \
          ORDER BY d.hlc DESC, i.kind = 'todo', i.id LIMIT ?2";
    let mut stmt = conn.prepare_cached(sql)?;
    let limit = i64::try_from(TRASH_LIMIT + 1).unwrap_or(i64::MAX);
    let mut rows: Vec<TrashRow> = stmt
        .query_map(rusqlite::params![workspace, limit], |r| {
            Ok(TrashRow {
                kind: r.get(0)?,
                id: r.get(1)?,
                title: r.get(2)?,
                list_id: r.get(3)?,
                list_name: r.get(4)?,
                deleted: r.get(5)?,
                list_deleted: r.get(6)?,
                deleted_hlc: r.get(7)?,
                deleted_at: r.get(8)?,
                device_id: r.get(9)?,
                device_name: r.get(10)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    let more = rows.len() > TRASH_LIMIT;
    rows.truncate(TRASH_LIMIT);
    Ok((rows, more))
}

/// Every device's name in a workspace, by device id.
pub fn devices(conn: &Connection, workspace: &str) -> Result<Vec<DeviceName>, ViewsError> {
    let mut stmt = conn.prepare_cached(
        "SELECT device_id, name FROM devices WHERE workspace_id = ?1 ORDER BY device_id",
    )?;
    let rows = stmt.query_map([workspace], |r| {
        Ok(DeviceName {
            device_id: r.get(0)?,
            name: r.get(1)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The fields of a todo the user sees conflicts of, with the column of the current value and
/// of its stamp (the position is not one: a reorder is no value anybody typed).
const TODO_FIELDS: &[(&str, &str, &str)] = &[
    ("title", "json_quote(title)", "title_hlc"),
    ("notes", "json_quote(notes)", "notes_hlc"),
    ("due_date", "json_quote(due_date)", "due_date_hlc"),
    (
        "completed",
        "CASE WHEN completed THEN 'true' ELSE 'false' END",
        "completed_hlc",
    ),
    ("list", "json_quote(list_id)", "list_hlc"),
];

/// The live conflicts of a list or todo of `workspace`: per field with a conflict, the current
/// value first, then the competing ones newest first, each with its device and time.
pub fn conflicts(
    conn: &Connection,
    workspace: &str,
    item: &str,
) -> Result<Vec<FieldConflict>, ViewsError> {
    let _read = conn.unchecked_transaction()?;
    let mut fields: Vec<FieldConflict> = Vec::new();
    let mut stmt = conn.prepare_cached(
        "SELECT c.field, c.value, c.hlc, c.device_id, v.name, coalesce(h.created_at, 0) \
           FROM conflicts c \
           LEFT JOIN history h ON h.aggregate_id = c.aggregate_id AND h.hlc = c.hlc \
                              AND h.event_id = c.event_id \
           LEFT JOIN devices v ON v.workspace_id = ?2 AND v.device_id = c.device_id \
          WHERE c.aggregate_id = ?1 AND c.field <> 'position' \
          ORDER BY c.field, c.hlc DESC",
    )?;
    let rows = stmt.query_map([item, workspace], |r| {
        Ok((
            r.get::<_, String>(0)?,
            Competing {
                value: r.get(1)?,
                hlc: r.get(2)?,
                device_id: r.get(3)?,
                device_name: r.get(4)?,
                at: r.get(5)?,
                current: false,
                person: None,
            },
        ))
    })?;
    for row in rows {
        let (field, competing) = row?;
        match fields.iter_mut().find(|f| f.field == field) {
            Some(f) => f.values.push(competing),
            None => fields.push(FieldConflict {
                field,
                values: vec![competing],
            }),
        }
    }
    for f in &mut fields {
        if let Some(current) = current_value(conn, workspace, item, &f.field)? {
            f.values.insert(0, current);
        }
    }
    Ok(fields)
}

/// The current value of an item's field as a [`Competing`] value (its author and time from
/// the history: the edit with the value's stamp).
fn current_value(
    conn: &Connection,
    workspace: &str,
    item: &str,
    field: &str,
) -> Result<Option<Competing>, ViewsError> {
    let (table, key, value, stamp) = if field == "name" {
        ("lists", "list_id", "json_quote(name)", "name_hlc")
    } else {
        let Some((_, value, stamp)) = TODO_FIELDS.iter().find(|(f, ..)| *f == field) else {
            return Ok(None);
        };
        ("todos", "todo_id", *value, *stamp)
    };
    let stamp = format!("t.{stamp}");
    let sql = format!(
        "SELECT v.value, v.stamp, h.device_id, d.name, h.created_at \
           FROM (SELECT {value} AS value, {stamp} AS stamp FROM {table} t WHERE t.{key} = ?1) v \
           LEFT JOIN history h ON h.aggregate_id = ?1 AND h.hlc = v.stamp \
           LEFT JOIN devices d ON d.workspace_id = ?2 AND d.device_id = h.device_id"
    );
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([item, workspace], |r| {
            Ok(Competing {
                value: r.get(0)?,
                hlc: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                device_id: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                device_name: r.get(3)?,
                at: r.get::<_, Option<i64>>(4)?.unwrap_or(0),
                current: true,
                person: None,
            })
        })
        .optional()?)
}
