//! views.db: the projection engine. It folds events with the core's pure fold
//! ([`tandem_events::state`]) and writes the resulting rows, with a checkpoint per workspace in
//! the same transaction, so each event takes effect exactly once across crashes.
//!
//! - Incremental: [`Views::catch_up`] applies the log after each workspace's checkpoint, in
//!   batches; [`Views::apply_outbox`] applies a device's recorded events. Applying is
//!   idempotent by event id (an outbox event accepted later changes nothing).
//! - Versioned: when [`PROJECTION_VERSION`] differs from the stored one, [`Views::open_current`]
//!   rebuilds — drop, recreate, replay the log then the outbox — reporting progress.
//!
//! An aggregate's state is loaded from the log (and outbox) the first time it is touched and
//! then kept in memory; a full rebuild folds everything in memory and writes rows once.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use tandem_events::event::{DecodeError, Event, StoredEvent};
use tandem_events::ids::{AggregateId, WorkspaceId};
use tandem_events::state::{Aggregate, AllRows, HistoryRow, Model, Rows};

use crate::connection::{open_with_page_size, Durability, StoreError};
use crate::log::{EventLog, LogError};

/// The version of the projection (fold and tables). Bump it whenever either changes: every
/// views.db is then rebuilt from the log at its next open.
pub const PROJECTION_VERSION: i64 = 1;
const PROJECTION_NAME: &str = "todo-views";

#[derive(Debug, thiserror::Error)]
pub enum ViewsError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("event {event_id} cannot be projected: {source}")]
    Decode {
        event_id: String,
        #[source]
        source: DecodeError,
    },
    #[error(transparent)]
    Open(#[from] StoreError),
    #[error("views database error: {0}")]
    Sql(#[from] rusqlite::Error),
}

/// From this many unapplied log events on, and when they are at least half the log,
/// [`Views::catch_up`] rebuilds instead of applying event by event (measured: ~200k events/s
/// against ~20k; docs/benchmarks.md).
const BULK_BACKLOG: u64 = 5_000;

/// Rebuild progress: events folded so far out of the total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub done: u64,
    pub total: u64,
}

/// The open views.db.
pub struct Views {
    conn: Connection,
    cache: HashMap<AggregateId, Aggregate>,
}

impl Views {
    /// Opens views.db and brings it to [`PROJECTION_VERSION`], rebuilding from `log` when the
    /// stored version differs. Returns whether it rebuilt. Does not catch up: call
    /// [`Self::catch_up`] next.
    pub fn open_current(
        path: impl AsRef<Path>,
        log: &EventLog,
        progress: impl FnMut(Progress),
    ) -> Result<(Self, bool), ViewsError> {
        let conn = open_with_page_size(path, Durability::Normal, Some(16_384))?;
        Self::with_connection(conn, log, progress)
    }

    /// As [`Self::open_current`], on a connection already opened (in-memory ones in tests).
    pub fn with_connection(
        conn: Connection,
        log: &EventLog,
        progress: impl FnMut(Progress),
    ) -> Result<(Self, bool), ViewsError> {
        conn.execute_batch(include_str!("sql/views.sql"))?;
        let mut views = Self {
            conn,
            cache: HashMap::new(),
        };
        let stored = views.stored_version()?;
        if stored == Some(PROJECTION_VERSION) {
            views
                .conn
                .execute_batch(include_str!("sql/views_tables.sql"))?;
            Ok((views, false))
        } else {
            views.rebuild(log, progress)?;
            Ok((views, true))
        }
    }

    fn stored_version(&self) -> Result<Option<i64>, ViewsError> {
        Ok(self
            .conn
            .query_row(
                "SELECT version FROM projection_meta WHERE name = ?1",
                [PROJECTION_NAME],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// The connection, for queries by the app and tests.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// A workspace's checkpoint: the greatest log `seq` applied (0 if none).
    pub fn checkpoint(&self, workspace: WorkspaceId) -> Result<u64, ViewsError> {
        let seq: Option<i64> = self
            .conn
            .query_row(
                "SELECT seq FROM checkpoints WHERE workspace_id = ?1",
                [workspace.to_string()],
                |r| r.get(0),
            )
            .optional()?;
        Ok(seq.unwrap_or(0) as u64)
    }

    /// Applies the log's events after each workspace's checkpoint, `batch` events per
    /// transaction. Returns the number of log events processed.
    pub fn catch_up(&mut self, log: &EventLog, batch: usize) -> Result<u64, ViewsError> {
        // A large backlog (a fresh device's first pull, a restore) goes faster through the
        // bulk path: fold everything in memory, write every row once.
        let mut backlog = 0;
        for (workspace, head) in log.heads()? {
            backlog += head.saturating_sub(self.checkpoint(workspace)?);
        }
        if backlog >= BULK_BACKLOG && backlog * 2 >= log.len()? {
            self.rebuild(log, |_| {})?;
            return Ok(backlog);
        }
        let mut processed = 0;
        for (workspace, head) in log.heads()? {
            let mut from = self.checkpoint(workspace)?;
            while from < head {
                let events = log.events_after(workspace, from, batch.max(1))?;
                let Some((last, _)) = events.last() else {
                    break;
                };
                let last = *last;
                let stored: Vec<StoredEvent> = events.into_iter().map(|(_, e)| e).collect();
                self.apply(log, &stored, Some((workspace, last)))?;
                processed += stored.len() as u64;
                from = last;
            }
        }
        Ok(processed)
    }

    /// The current state of one aggregate (for deciding commands), loaded from `log` and its
    /// outbox the first time and then kept.
    pub fn aggregate(&mut self, log: &EventLog, id: AggregateId) -> Result<&Aggregate, ViewsError> {
        self.load(log, id).map(|a| &*a)
    }

    fn load(&mut self, log: &EventLog, id: AggregateId) -> Result<&mut Aggregate, ViewsError> {
        match self.cache.entry(id) {
            std::collections::hash_map::Entry::Occupied(slot) => Ok(slot.into_mut()),
            std::collections::hash_map::Entry::Vacant(slot) => {
                let mut state = Aggregate::default();
                for e in decode_all(&log.aggregate_events(id)?)? {
                    state.apply(&e);
                }
                Ok(slot.insert(state))
            }
        }
    }

    /// Recomputes the rows and history of `aggregates` from the log and outbox (after events of
    /// theirs changed in place: the clock correction re-stamps outbox events).
    pub fn refresh(
        &mut self,
        log: &EventLog,
        aggregates: &[AggregateId],
    ) -> Result<(), ViewsError> {
        let tx = self.conn.transaction()?;
        for id in aggregates {
            self.cache.remove(id);
            let events = log.aggregate_events(*id)?;
            let decoded = decode_all(&events)?;
            let mut state = Aggregate::default();
            for e in &decoded {
                state.apply(e);
            }
            write_aggregate(&tx, *id, &state.rows(*id))?;
            tx.prepare_cached("DELETE FROM history WHERE aggregate_id = ?1")?
                .execute([id.to_string()])?;
            for (stored, e) in events.iter().zip(&decoded) {
                write_history(&tx, &HistoryRow::of(stored, e))?;
            }
            self.cache.insert(*id, state);
        }
        tx.commit()?;
        Ok(())
    }

    /// Applies events this device just recorded in its outbox.
    pub fn apply_outbox(
        &mut self,
        log: &EventLog,
        events: &[StoredEvent],
    ) -> Result<(), ViewsError> {
        self.apply(log, events, None)
    }

    /// Folds `events` into their aggregates' states and rewrites those aggregates' rows, plus
    /// the checkpoint when given, in one transaction.
    fn apply(
        &mut self,
        log: &EventLog,
        events: &[StoredEvent],
        checkpoint: Option<(WorkspaceId, u64)>,
    ) -> Result<(), ViewsError> {
        let decoded = decode_all(events)?;
        let touched: BTreeSet<AggregateId> = decoded.iter().map(|e| e.aggregate_id).collect();
        for e in &decoded {
            self.load(log, e.aggregate_id)?.apply(e);
        }
        let tx = self.conn.transaction()?;
        for id in &touched {
            let rows = self.cache.get(id).map(|a| a.rows(*id)).unwrap_or_default();
            write_aggregate(&tx, *id, &rows)?;
        }
        for (stored, e) in events.iter().zip(&decoded) {
            write_history(&tx, &HistoryRow::of(stored, e))?;
        }
        if let Some((workspace, seq)) = checkpoint {
            set_checkpoint(&tx, workspace, seq)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Drops the projection's tables, recreates them and replays the log (then the outbox),
    /// folding in memory and writing every row in one transaction.
    pub fn rebuild(
        &mut self,
        log: &EventLog,
        mut progress: impl FnMut(Progress),
    ) -> Result<(), ViewsError> {
        let total = log.len()? + log.outbox()?.len() as u64;
        let mut model = Model::default();
        let mut done = 0u64;
        let step = (total / 100).max(1_000);
        progress(Progress { done, total });
        log.for_each(|stored| {
            let event = stored.decode().map_err(|source| {
                LogError::Corrupt(format!(
                    "event {} does not decode: {source}",
                    stored.event_id
                ))
            })?;
            model.apply(stored, &event);
            done += 1;
            if done.is_multiple_of(step) {
                progress(Progress { done, total });
            }
            Ok(())
        })?;
        let heads = log.heads()?;
        let tx = self.conn.transaction()?;
        tx.execute_batch(
            "DROP TABLE IF EXISTS lists; DROP TABLE IF EXISTS todos; \
             DROP TABLE IF EXISTS conflicts; DROP TABLE IF EXISTS history; DELETE FROM checkpoints;",
        )?;
        tx.execute_batch(include_str!("sql/views_tables.sql"))?;
        let (rows, aggregates) = model.into_parts();
        write_all(&tx, &rows)?;
        for (workspace, head) in heads {
            set_checkpoint(&tx, workspace, head)?;
        }
        tx.execute(
            "INSERT INTO projection_meta (name, version) VALUES (?1, ?2) \
             ON CONFLICT (name) DO UPDATE SET version = ?2",
            params![PROJECTION_NAME, PROJECTION_VERSION],
        )?;
        tx.commit()?;
        self.cache = aggregates;
        progress(Progress { done: total, total });
        Ok(())
    }

    /// The canonical dump of DESIGN.md rule 20: every view row, sorted by key, as text.
    pub fn dump(&self) -> Result<String, ViewsError> {
        dump(&self.conn)
    }

    /// A hash of [`Self::dump`], for comparing replicas.
    pub fn hash(&self) -> Result<u64, ViewsError> {
        hash(&self.conn)
    }
}

/// A live list, for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListItem {
    pub id: AggregateId,
    pub name: String,
}

/// A live todo, for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TodoItem {
    pub id: AggregateId,
    pub title: String,
    pub completed: bool,
    pub due_date: Option<String>,
    /// Unresolved conflicting edits on this todo.
    pub conflicts: u64,
}

impl Views {
    /// The live lists of a workspace, oldest first.
    pub fn lists(&self, workspace: WorkspaceId) -> Result<Vec<ListItem>, ViewsError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT list_id, name FROM lists WHERE workspace_id = ?1 AND NOT deleted \
             ORDER BY created_hlc, list_id",
        )?;
        let rows = stmt.query_map([workspace.to_string()], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, name) = row?;
            out.push(ListItem {
                id: parse_view_id(&id)?,
                name,
            });
        }
        Ok(out)
    }

    /// The live todos of a list, in display order (position, then id).
    pub fn todos(&self, list: AggregateId) -> Result<Vec<TodoItem>, ViewsError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT t.todo_id, t.title, t.completed, t.due_date, \
                    (SELECT count(*) FROM conflicts c WHERE c.aggregate_id = t.todo_id) \
             FROM todos t WHERE t.list_id = ?1 AND NOT t.deleted ORDER BY t.position, t.todo_id",
        )?;
        let rows = stmt.query_map([list.to_string()], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, bool>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, title, completed, due_date, conflicts) = row?;
            out.push(TodoItem {
                id: parse_view_id(&id)?,
                title,
                completed,
                due_date,
                conflicts: conflicts.max(0) as u64,
            });
        }
        Ok(out)
    }
}

fn parse_view_id(text: &str) -> Result<AggregateId, ViewsError> {
    text.parse()
        .map_err(|e| ViewsError::Log(LogError::Corrupt(format!("views hold a malformed id: {e}"))))
}

/// The canonical dump of the views in `conn` (a views.db, possibly opened read-only by
/// another process or test).
pub fn dump(conn: &Connection) -> Result<String, ViewsError> {
    let mut out = String::new();
    {
        for (table, order) in [
            ("lists", "list_id"),
            ("todos", "todo_id"),
            ("conflicts", "aggregate_id, field, hlc, event_id"),
            ("history", "aggregate_id, hlc, event_id"),
        ] {
            let mut stmt = conn.prepare(&format!("SELECT * FROM {table} ORDER BY {order}"))?;
            let columns = stmt.column_count();
            let mut rows = stmt.query([])?;
            out.push_str(table);
            out.push('\n');
            while let Some(row) = rows.next()? {
                for i in 0..columns {
                    let value: rusqlite::types::Value = row.get(i)?;
                    out.push_str(&format!("{value:?}\t"));
                }
                out.push('\n');
            }
        }
    }
    Ok(out)
}

/// A hash of [`dump`].
pub fn hash(conn: &Connection) -> Result<u64, ViewsError> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    dump(conn)?.hash(&mut h);
    Ok(h.finish())
}

fn decode_all(events: &[StoredEvent]) -> Result<Vec<Event>, ViewsError> {
    events
        .iter()
        .map(|e| {
            e.decode().map_err(|source| ViewsError::Decode {
                event_id: e.event_id.to_string(),
                source,
            })
        })
        .collect()
}

fn set_checkpoint(tx: &Transaction<'_>, workspace: WorkspaceId, seq: u64) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO checkpoints (workspace_id, seq) VALUES (?1, ?2) \
         ON CONFLICT (workspace_id) DO UPDATE SET seq = max(seq, ?2)",
    )?
    .execute(params![workspace.to_string(), seq as i64])?;
    Ok(())
}

fn write_aggregate(tx: &Transaction<'_>, id: AggregateId, rows: &Rows) -> rusqlite::Result<()> {
    let key = id.to_string();
    tx.prepare_cached("DELETE FROM lists WHERE list_id = ?1")?
        .execute([&key])?;
    tx.prepare_cached("DELETE FROM todos WHERE todo_id = ?1")?
        .execute([&key])?;
    tx.prepare_cached("DELETE FROM conflicts WHERE aggregate_id = ?1")?
        .execute([&key])?;
    write_rows(
        tx,
        rows.list.iter(),
        rows.todo.iter(),
        rows.conflicts.iter(),
    )
}

fn write_all(tx: &Transaction<'_>, rows: &AllRows) -> rusqlite::Result<()> {
    write_rows(
        tx,
        rows.lists.iter(),
        rows.todos.iter(),
        rows.conflicts.iter(),
    )?;
    for h in &rows.history {
        write_history(tx, h)?;
    }
    Ok(())
}

fn write_rows<'a>(
    tx: &Transaction<'_>,
    lists: impl Iterator<Item = &'a tandem_events::state::ListRow>,
    todos: impl Iterator<Item = &'a tandem_events::state::TodoRow>,
    conflicts: impl Iterator<Item = &'a tandem_events::state::ConflictRow>,
) -> rusqlite::Result<()> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO lists (list_id, workspace_id, name, name_hlc, created_hlc, created_at, deleted) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for l in lists {
        insert.execute(params![
            l.list_id.to_string(),
            l.workspace_id.to_string(),
            l.name,
            l.name_hlc.encode(),
            l.created_hlc.encode(),
            l.created_at,
            l.deleted,
        ])?;
    }
    let mut insert = tx.prepare_cached(
        "INSERT INTO todos (todo_id, workspace_id, list_id, title, notes, due_date, completed, position, \
         created_hlc, created_at, title_hlc, notes_hlc, due_date_hlc, completed_hlc, position_hlc, deleted) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
    )?;
    for t in todos {
        insert.execute(params![
            t.todo_id.to_string(),
            t.workspace_id.to_string(),
            t.list_id.to_string(),
            t.title,
            t.notes,
            t.due_date,
            t.completed,
            t.position,
            t.created_hlc.encode(),
            t.created_at,
            t.title_hlc.encode(),
            t.notes_hlc.encode(),
            t.due_date_hlc.encode(),
            t.completed_hlc.encode(),
            t.position_hlc.encode(),
            t.deleted,
        ])?;
    }
    let mut insert = tx.prepare_cached(
        "INSERT INTO conflicts (aggregate_id, field, hlc, event_id, device_id, value) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for c in conflicts {
        insert.execute(params![
            c.aggregate_id.to_string(),
            c.field,
            c.hlc.encode(),
            c.event_id.to_string(),
            c.device_id.to_string(),
            c.value,
        ])?;
    }
    Ok(())
}

const HISTORY_INSERT: &str = "INSERT OR IGNORE INTO history \
     (aggregate_id, hlc, event_id, event_type, device_id, created_at, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

fn write_history(tx: &Transaction<'_>, h: &HistoryRow) -> rusqlite::Result<()> {
    let mut insert = tx.prepare_cached(HISTORY_INSERT)?;
    insert_history(&mut insert, h)
}

fn insert_history(insert: &mut rusqlite::Statement<'_>, h: &HistoryRow) -> rusqlite::Result<()> {
    insert.execute(params![
        h.aggregate_id.to_string(),
        h.hlc.encode(),
        h.event_id.to_string(),
        h.event_type,
        h.device_id.to_string(),
        h.created_at,
        h.data,
    ])?;
    Ok(())
}
