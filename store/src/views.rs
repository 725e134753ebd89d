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
//! then kept in memory (at most [`CACHE_LIMIT`] of them); a full rebuild reads the log one
//! aggregate at a time and writes its rows as it goes, so its memory does not grow with the log.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};
use tandem_events::event::{DecodeError, Event, StoredEvent};
use tandem_events::ids::{AggregateId, WorkspaceId};
use tandem_events::state::{Aggregate, HistoryRow, Rows};

use crate::connection::{open_with_page_size, Durability, StoreError};
use crate::log::{EventLog, LogError};

/// The version of the projection (fold and tables). Bump it whenever either changes: every
/// views.db is then rebuilt from the log at its next open.
pub const PROJECTION_VERSION: i64 = 4;
const PROJECTION_NAME: &str = "todo-views";

#[derive(Debug, thiserror::Error)]
pub enum ViewsError {
    #[error(transparent)]
    Log(#[from] LogError),
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

/// Aggregates whose state the projection keeps in memory, at most (DESIGN.md rule 22); past
/// it, the least recently used quarter is dropped (and reloaded from the log when touched).
pub const CACHE_LIMIT: usize = 20_000;

/// An event left out of the views because this build cannot decode it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedEvent {
    pub event_id: String,
    pub aggregate_id: String,
    pub event_type: String,
    pub schema_version: u32,
    pub reason: String,
}

/// The open views.db.
pub struct Views {
    conn: Connection,
    /// The projection's aggregate states with the tick of their last use.
    cache: HashMap<AggregateId, (u64, Aggregate)>,
    tick: u64,
    cache_limit: usize,
    /// Whether a device's own events are being applied in a transaction left open until
    /// [`Self::release`] ([`Self::hold`]).
    held: Held,
}

/// [`Views::hold`]'s state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    No,
    /// The next [`Views::apply_outbox`] opens a transaction and leaves it open.
    Armed,
    /// A transaction is open with applied events not yet committed.
    Open,
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
            tick: 0,
            cache_limit: CACHE_LIMIT,
            held: Held::No,
        };
        let stored = views.stored_version()?;
        if stored == Some(PROJECTION_VERSION) {
            views
                .conn
                .execute_batch(include_str!("sql/views_tables.sql"))?;
            if views.ahead_of(log)? || views.skipped_now_decode()? {
                views.rebuild(log, progress)?;
                return Ok((views, true));
            }
            Ok((views, false))
        } else {
            views.rebuild(log, progress)?;
            Ok((views, true))
        }
    }

    /// Whether a checkpoint is above its workspace's head in `log`: the views hold events the
    /// log does not (events.db was restored from an older backup, or replaced). Such views are
    /// rebuilt, never left with ghost rows.
    fn ahead_of(&self, log: &EventLog) -> Result<bool, ViewsError> {
        let checkpoints: Vec<(String, i64)> = self
            .conn
            .prepare("SELECT workspace_id, seq FROM checkpoints")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        for (workspace, seq) in checkpoints {
            let Ok(workspace) = workspace.parse::<WorkspaceId>() else {
                return Ok(true);
            };
            if seq.max(0) as u64 > log.head(workspace)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Whether an event skipped as undecodable decodes with this build (then a rebuild picks
    /// it up).
    fn skipped_now_decode(&self) -> Result<bool, ViewsError> {
        let kinds: Vec<(String, u32)> = self
            .conn
            .prepare(
                "SELECT DISTINCT event_type, schema_version FROM skipped_events WHERE unknown",
            )?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        Ok(kinds.iter().any(|(event_type, version)| {
            !matches!(
                tandem_events::domain::DomainEvent::decode(event_type, *version, "{}"),
                Err(DecodeError::UnknownType { .. } | DecodeError::UnknownVersion { .. })
            )
        }))
    }

    /// Events left out of the views because this build cannot decode them: `(event id,
    /// aggregate, type, schema version, reason)`. Non-empty means "update Tandem".
    pub fn skipped(&self) -> Result<Vec<SkippedEvent>, ViewsError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT event_id, aggregate_id, event_type, schema_version, reason \
             FROM skipped_events ORDER BY event_id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(SkippedEvent {
                event_id: r.get(0)?,
                aggregate_id: r.get(1)?,
                event_type: r.get(2)?,
                schema_version: r.get(3)?,
                reason: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
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

    /// The connection, for the inspector's console (which sets it read-only while it runs).
    pub fn connection_mut(&mut self) -> &mut Connection {
        &mut self.conn
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
        self.catch_up_with(log, batch, |_| {})
    }

    /// As [`Self::catch_up`], reporting the progress of a bulk catch-up.
    pub fn catch_up_with(
        &mut self,
        log: &EventLog,
        batch: usize,
        progress: impl FnMut(Progress),
    ) -> Result<u64, ViewsError> {
        // A large backlog (a fresh device's first pull, a restore) goes faster through the
        // bulk path: fold everything in memory, write every row once.
        let mut backlog = 0;
        for (workspace, head) in log.heads()? {
            backlog += head.saturating_sub(self.checkpoint(workspace)?);
        }
        if backlog >= BULK_BACKLOG && backlog * 2 >= log.len()? {
            self.rebuild(log, progress)?;
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

    /// The projection's state of one aggregate, loaded from `log` and its outbox the first
    /// time and then kept (bounded: see [`CACHE_LIMIT`]).
    fn load(&mut self, log: &EventLog, id: AggregateId) -> Result<&mut Aggregate, ViewsError> {
        if !self.cache.contains_key(&id) {
            if self.cache.len() >= self.cache_limit {
                self.evict();
            }
            let state = fold(&log.aggregate_events(id)?);
            self.cache.insert(id, (0, state));
        }
        self.tick += 1;
        let tick = self.tick;
        match self.cache.get_mut(&id) {
            Some((used, state)) => {
                *used = tick;
                Ok(state)
            }
            None => Err(ViewsError::Log(LogError::Corrupt(
                "the projection cache lost an entry it just made".into(),
            ))),
        }
    }

    /// Drops the least recently used quarter of the cache.
    fn evict(&mut self) {
        let mut uses: Vec<u64> = self.cache.values().map(|(used, _)| *used).collect();
        let cut = uses.len() / 4;
        let (_, nth, _) = uses.select_nth_unstable(cut);
        let cut = *nth;
        self.cache.retain(|_, (used, _)| *used > cut);
    }

    /// Aggregates whose state the projection keeps in memory.
    pub fn cached(&self) -> usize {
        self.cache.len()
    }

    /// Sets how many aggregate states the projection keeps (default [`CACHE_LIMIT`]).
    pub fn set_cache_limit(&mut self, limit: usize) {
        self.cache_limit = limit.max(1);
        while self.cache.len() > self.cache_limit {
            self.evict();
        }
    }

    /// Recomputes the rows and history of `aggregates` from the log and outbox (after events of
    /// theirs changed in place: the clock correction re-stamps outbox events).
    pub fn refresh(
        &mut self,
        log: &EventLog,
        aggregates: &[AggregateId],
    ) -> Result<(), ViewsError> {
        // Every stored pull and acknowledgement calls this; usually nothing changed in place.
        if aggregates.is_empty() {
            return Ok(());
        }
        self.release()?;
        let tx = self.conn.transaction()?;
        for id in aggregates {
            self.cache.remove(id);
            let events = log.aggregate_events(*id)?;
            let (decoded, skipped) = decode_known(&events);
            let mut state = Aggregate::default();
            for (_, e) in &decoded {
                state.apply(e);
            }
            write_aggregate(&tx, *id, &state.rows(*id))?;
            tx.prepare_cached("DELETE FROM history WHERE aggregate_id = ?1")?
                .execute([id.to_string()])?;
            for (stored, e) in &decoded {
                write_history(&tx, &HistoryRow::of(stored, e))?;
            }
            write_skipped(&tx, &skipped)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Makes the next [`Self::apply_outbox`] write in a transaction that stays open until
    /// [`Self::release`]: a device answers its page once the outbox commit is durable and its
    /// rows are written (readable on this connection), and commits the views while the page
    /// renders. Until then nothing else may write the views (every other write path releases
    /// first). A crash before the release loses only the views' copy: the next open applies
    /// the outbox again ([`crate::replica::Replica::assemble`]).
    pub fn hold(&mut self) {
        if self.held == Held::No {
            self.held = Held::Armed;
        }
    }

    /// Commits what [`Self::hold`] left open (nothing when nothing was applied). When the
    /// commit fails, nothing of it is kept and the cached states are forgotten (they would
    /// say rows were written that are not).
    pub fn release(&mut self) -> Result<(), ViewsError> {
        let open = self.held == Held::Open;
        self.held = Held::No;
        if open {
            if let Err(e) = self.conn.execute_batch("COMMIT") {
                let _ = self.conn.execute_batch("ROLLBACK");
                self.cache.clear();
                return Err(e.into());
            }
        }
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
        let (decoded, skipped) = decode_known(events);
        let touched: BTreeSet<AggregateId> = decoded.iter().map(|(_, e)| e.aggregate_id).collect();
        // The rows as written, for the aggregates whose state is cached (it is what was last
        // written): one whose rows come out the same is not rewritten. That is the common case
        // of an acknowledgement — this device's own events, applied from the outbox when they
        // were made, come back from the log with a seq and fold to the same state — so only
        // the checkpoint moves, and the pages hear of no change that is none. (An aggregate
        // loaded now is folded from a log that already holds `events`: always written.)
        let mut before = Vec::with_capacity(touched.len());
        for id in &touched {
            before.push(self.cache.get(id).map(|(_, state)| state.rows(*id)));
        }
        // An aggregate made in these events has no history to read: its state starts empty.
        // Bulk creations (an import, a first list of lists) skip a read per aggregate.
        for id in made_here(log, &decoded, &self.cache)? {
            if self.cache.len() >= self.cache_limit {
                self.evict();
            }
            self.cache.insert(id, (0, fold(&[])));
        }
        for (_, e) in &decoded {
            self.load(log, e.aggregate_id)?.apply(e);
        }
        let mut rows = Vec::with_capacity(touched.len());
        for (id, before) in touched.iter().zip(before) {
            let after = self.load(log, *id)?.rows(*id);
            if before.as_ref() != Some(&after) {
                rows.push((*id, after));
            }
        }
        let written = if checkpoint.is_none() && self.held != Held::No {
            self.write_held(&rows, &decoded, &skipped)
        } else {
            self.release()?;
            self.write_applied(&rows, &decoded, &skipped, checkpoint)
        };
        if written.is_err() {
            // The cache must keep saying what is written: forget what this failed to write.
            for id in &touched {
                self.cache.remove(id);
            }
        }
        written
    }

    /// [`Self::write_applied`] into the transaction [`Self::hold`] keeps open. A failure rolls
    /// back everything held (one command's rows: the caller repairs them).
    fn write_held(
        &mut self,
        rows: &[(AggregateId, Rows)],
        decoded: &[(&StoredEvent, Event)],
        skipped: &[(&StoredEvent, DecodeError)],
    ) -> Result<(), ViewsError> {
        if rows.is_empty() && decoded.is_empty() && skipped.is_empty() {
            return Ok(());
        }
        if self.held == Held::Armed {
            self.conn.execute_batch("BEGIN")?;
            self.held = Held::Open;
        }
        let conn = &self.conn;
        let written = (|| {
            for (id, rows) in rows {
                write_aggregate(conn, *id, rows)?;
            }
            for (stored, e) in decoded {
                write_history(conn, &HistoryRow::of(stored, e))?;
            }
            write_skipped(conn, skipped)
        })();
        if let Err(e) = written {
            let _ = self.conn.execute_batch("ROLLBACK");
            self.held = Held::No;
            self.cache.clear();
            return Err(e.into());
        }
        Ok(())
    }

    fn write_applied(
        &mut self,
        rows: &[(AggregateId, Rows)],
        decoded: &[(&StoredEvent, Event)],
        skipped: &[(&StoredEvent, DecodeError)],
        checkpoint: Option<(WorkspaceId, u64)>,
    ) -> Result<(), ViewsError> {
        let tx = self.conn.transaction()?;
        for (id, rows) in rows {
            write_aggregate(&tx, *id, rows)?;
        }
        for (stored, e) in decoded {
            write_history(&tx, &HistoryRow::of(stored, e))?;
        }
        write_skipped(&tx, skipped)?;
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
        self.release()?;
        // One read snapshot of the log for the heads and everything folded: events appended
        // meanwhile (by the server's writer, WAL) are after the checkpoint, never skipped.
        let snapshot = log.connection().unchecked_transaction()?;
        let heads = log.heads()?;
        let total = log.len()? + log.outbox_len()? as u64;
        let mut done = 0u64;
        let step = (total / 100).max(1_000);
        progress(Progress { done, total });
        let tx = self.conn.transaction()?;
        tx.execute_batch(
            "DROP TABLE IF EXISTS lists; DROP TABLE IF EXISTS todos; \
             DROP TABLE IF EXISTS conflicts; DROP TABLE IF EXISTS history; \
             DROP TABLE IF EXISTS list_counts; DROP TABLE IF EXISTS devices; \
             DROP TABLE IF EXISTS skipped_events; DELETE FROM checkpoints;",
        )?;
        tx.execute_batch(include_str!("sql/views_tables.sql"))?;
        // One aggregate at a time (the log in aggregate order, its outbox events after its
        // logged ones): memory holds one aggregate's state, never the whole log's, and every
        // history row goes straight to the table (DESIGN.md rule 22).
        let mut current: Option<(AggregateId, Aggregate)> = None;
        let flush = |current: &mut Option<(AggregateId, Aggregate)>| -> rusqlite::Result<()> {
            if let Some((id, state)) = current.take() {
                write_rows(&tx, &state.rows(id))?;
            }
            Ok(())
        };
        let mut history = tx.prepare_cached(HISTORY_INSERT)?;
        log.for_each_by_aggregate(|stored| {
            if current
                .as_ref()
                .is_none_or(|(id, _)| *id != stored.aggregate_id)
            {
                flush(&mut current).map_err(LogError::Sql)?;
                current = Some((stored.aggregate_id, Aggregate::default()));
            }
            match stored.decode() {
                Ok(event) => {
                    if let Some((_, state)) = current.as_mut() {
                        state.apply(&event);
                    }
                    insert_history(&mut history, &HistoryRow::of(stored, &event))
                        .map_err(LogError::Sql)?;
                }
                Err(e) => write_skipped(&tx, &[(stored, e)]).map_err(LogError::Sql)?,
            }
            done += 1;
            if done.is_multiple_of(step) {
                progress(Progress { done, total });
            }
            Ok(())
        })?;
        flush(&mut current)?;
        drop(history);
        drop(snapshot);
        for (workspace, head) in heads {
            set_checkpoint(&tx, workspace, head)?;
        }
        tx.execute(
            "INSERT INTO projection_meta (name, version) VALUES (?1, ?2) \
             ON CONFLICT (name) DO UPDATE SET version = ?2",
            params![PROJECTION_NAME, PROJECTION_VERSION],
        )?;
        tx.commit()?;
        // The cache starts cold: a rebuild's states are as many as the log's aggregates.
        self.cache.clear();
        progress(Progress { done: total, total });
        Ok(())
    }

    /// A device other than `me` that has made or changed a to-do now in `list`, if any.
    pub fn other_authors_in_list(
        &self,
        list: AggregateId,
        me: tandem_events::ids::DeviceId,
    ) -> Result<Option<tandem_events::ids::DeviceId>, ViewsError> {
        let device: Option<String> = self
            .conn
            .prepare_cached(
                "SELECT h.device_id FROM todos t JOIN history h ON h.aggregate_id = t.todo_id \
                 WHERE t.list_id = ?1 AND h.device_id <> ?2 ORDER BY h.hlc DESC LIMIT 1",
            )?
            .query_row([list.to_string(), me.to_string()], |r| r.get(0))
            .optional()?;
        device
            .map(|d| {
                d.parse().map_err(|e| {
                    ViewsError::Log(LogError::Corrupt(format!("views hold a malformed id: {e}")))
                })
            })
            .transpose()
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

/// Which todos of a list to show (TodoMVC's filters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TodoFilter {
    All,
    Active,
    Completed,
}

/// How many todos of a list are active and completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TodoCounts {
    pub active: u64,
    pub completed: u64,
}

/// One todo with everything its detail view shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TodoDetail {
    pub item: TodoItem,
    pub list_id: AggregateId,
    pub notes: String,
    pub position: String,
    pub created_at: i64,
    pub deleted: bool,
}

impl Views {
    /// The live lists of a workspace, oldest first (the rows of [`crate::changes::list_rows`],
    /// with typed ids).
    pub fn lists(&self, workspace: WorkspaceId) -> Result<Vec<ListItem>, ViewsError> {
        crate::changes::list_rows(&self.conn, &workspace.to_string())?
            .into_iter()
            .map(|l| {
                Ok(ListItem {
                    id: parse_view_id(&l.id)?,
                    name: l.name,
                })
            })
            .collect()
    }

    /// The live todos of a list, in display order (position, then id).
    pub fn todos(&self, list: AggregateId) -> Result<Vec<TodoItem>, ViewsError> {
        self.todos_filtered(list, TodoFilter::All)
    }

    /// The live todos of a list that pass `filter`, in display order (the rows of
    /// [`crate::changes::todo_rows`], with typed ids).
    pub fn todos_filtered(
        &self,
        list: AggregateId,
        filter: TodoFilter,
    ) -> Result<Vec<TodoItem>, ViewsError> {
        let completed: Option<bool> = match filter {
            TodoFilter::All => None,
            TodoFilter::Active => Some(false),
            TodoFilter::Completed => Some(true),
        };
        crate::changes::todo_rows(&self.conn, &list.to_string(), completed)?
            .into_iter()
            .map(|t| {
                Ok(TodoItem {
                    id: parse_view_id(&t.id)?,
                    title: t.title,
                    completed: t.completed,
                    due_date: t.due_date,
                    conflicts: t.conflicts,
                })
            })
            .collect()
    }
}

impl Views {
    /// How many live todos of a list are active and completed (TodoMVC's count).
    pub fn counts(&self, list: AggregateId) -> Result<TodoCounts, ViewsError> {
        let c = crate::changes::counts(&self.conn, &list.to_string())?;
        Ok(TodoCounts {
            active: c.active,
            completed: c.completed,
        })
    }

    /// One todo (deleted ones too: the Trash and history show them), or `None`.
    pub fn todo(&self, id: AggregateId) -> Result<Option<TodoDetail>, ViewsError> {
        let row = self
            .conn
            .prepare_cached(
                "SELECT t.title, t.completed, t.due_date, \
                        (SELECT count(*) FROM conflicts c WHERE c.aggregate_id = t.todo_id), \
                        t.list_id, t.notes, t.position, t.created_at, t.deleted \
                 FROM todos t WHERE t.todo_id = ?1",
            )?
            .query_row([id.to_string()], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, bool>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, String>(6)?,
                    r.get::<_, i64>(7)?,
                    r.get::<_, bool>(8)?,
                ))
            })
            .optional()?;
        let Some((
            title,
            completed,
            due_date,
            conflicts,
            list,
            notes,
            position,
            created_at,
            deleted,
        )) = row
        else {
            return Ok(None);
        };
        Ok(Some(TodoDetail {
            item: TodoItem {
                id,
                title,
                completed,
                due_date,
                conflicts: conflicts.max(0) as u64,
            },
            list_id: parse_view_id(&list)?,
            notes,
            position,
            created_at,
            deleted,
        }))
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
            ("list_counts", "list_id"),
            ("devices", "aggregate_id"),
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

/// Decodes what this build knows; the rest (a newer device's type or schema version, or data
/// that does not match) is skipped, never blocking the events after it.
type Decoded<'a> = (
    Vec<(&'a StoredEvent, Event)>,
    Vec<(&'a StoredEvent, DecodeError)>,
);

fn decode_known(events: &[StoredEvent]) -> Decoded<'_> {
    let mut known = Vec::with_capacity(events.len());
    let mut skipped = Vec::new();
    for e in events {
        match e.decode() {
            Ok(event) => known.push((e, event)),
            Err(err) => skipped.push((e, err)),
        }
    }
    (known, skipped)
}

/// The aggregates made in `decoded` whose state can start empty instead of being read from
/// the log: not cached, their events here are versions 1, 2, … n in that order, and the log
/// holds exactly n events of them (no other version, none this build cannot decode), with an
/// empty outbox (an edit waiting there is read as for any other aggregate). A server's pull
/// whose versions are out of seq order, or that skips one, takes the read.
fn made_here(
    log: &EventLog,
    decoded: &[(&StoredEvent, Event)],
    cache: &HashMap<AggregateId, (u64, Aggregate)>,
) -> Result<Vec<AggregateId>, ViewsError> {
    let candidates = fresh_runs(
        decoded.iter().map(|(_, e)| (e.aggregate_id, e.version)),
        cache,
    );
    if candidates.is_empty() || log.outbox_len()? > 0 {
        return Ok(Vec::new());
    }
    let counts = log.aggregate_counts(candidates.keys().copied())?;
    Ok(candidates
        .into_iter()
        .filter(|(id, n)| counts.get(id) == Some(n))
        .map(|(id, _)| id)
        .collect())
}

/// Of `(aggregate, version)` in order, the aggregates not in `cache` whose versions run 1, 2,
/// … n without a gap or a repeat, with their n.
fn fresh_runs<V>(
    events: impl Iterator<Item = (AggregateId, u64)>,
    cache: &HashMap<AggregateId, V>,
) -> HashMap<AggregateId, u64> {
    // None: seen out of order (never made here).
    let mut runs: HashMap<AggregateId, Option<u64>> = HashMap::new();
    for (id, version) in events {
        if cache.contains_key(&id) {
            continue;
        }
        let run = runs.entry(id).or_insert(Some(0));
        *run = match *run {
            Some(n) if version == n + 1 => Some(version),
            _ => None,
        };
    }
    runs.into_iter()
        .filter_map(|(id, n)| Some((id, n?)))
        .collect()
}

/// The fold of `events`, leaving out those this build cannot decode.
pub(crate) fn fold(events: &[StoredEvent]) -> Aggregate {
    let mut state = Aggregate::default();
    for (_, e) in decode_known(events).0 {
        state.apply(&e);
    }
    state
}

fn write_skipped(tx: &Connection, skipped: &[(&StoredEvent, DecodeError)]) -> rusqlite::Result<()> {
    if skipped.is_empty() {
        return Ok(());
    }
    let mut insert = tx.prepare_cached(
        "INSERT OR REPLACE INTO skipped_events (event_id, aggregate_id, event_type, schema_version, unknown, reason) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for (e, err) in skipped {
        insert.execute(params![
            e.event_id.to_string(),
            e.aggregate_id.to_string(),
            e.event_type,
            e.schema_version,
            matches!(
                err,
                DecodeError::UnknownType { .. } | DecodeError::UnknownVersion { .. }
            ),
            err.to_string()
        ])?;
    }
    Ok(())
}

fn set_checkpoint(tx: &Connection, workspace: WorkspaceId, seq: u64) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO checkpoints (workspace_id, seq) VALUES (?1, ?2) \
         ON CONFLICT (workspace_id) DO UPDATE SET seq = max(seq, ?2)",
    )?
    .execute(params![workspace.to_string(), seq as i64])?;
    Ok(())
}

fn write_aggregate(tx: &Connection, id: AggregateId, rows: &Rows) -> rusqlite::Result<()> {
    let key = id.to_string();
    tx.prepare_cached("DELETE FROM lists WHERE list_id = ?1")?
        .execute([&key])?;
    tx.prepare_cached("DELETE FROM todos WHERE todo_id = ?1")?
        .execute([&key])?;
    tx.prepare_cached("DELETE FROM conflicts WHERE aggregate_id = ?1")?
        .execute([&key])?;
    tx.prepare_cached("DELETE FROM devices WHERE aggregate_id = ?1")?
        .execute([&key])?;
    write_rows(tx, rows)
}

fn write_rows(tx: &Connection, rows: &Rows) -> rusqlite::Result<()> {
    let (lists, todos, conflicts) = (&rows.list, &rows.todo, &rows.conflicts);
    let mut insert = tx.prepare_cached(
        "INSERT INTO lists (list_id, workspace_id, name, name_hlc, created_hlc, created_at, deleted) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    if let Some(l) = lists {
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
         created_hlc, created_at, title_hlc, notes_hlc, due_date_hlc, completed_hlc, position_hlc, list_hlc, deleted) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
    )?;
    if let Some(t) = todos {
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
            t.list_hlc.encode(),
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
    if let Some(d) = &rows.device {
        tx.prepare_cached(
            "INSERT INTO devices (aggregate_id, device_id, workspace_id, name, name_hlc) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![
            d.aggregate_id.to_string(),
            d.device_id.to_string(),
            d.workspace_id.to_string(),
            d.name,
            d.name_hlc.encode(),
        ])?;
    }
    Ok(())
}

const HISTORY_INSERT: &str = "INSERT OR IGNORE INTO history \
     (aggregate_id, hlc, event_id, event_type, device_id, created_at, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

fn write_history(tx: &Connection, h: &HistoryRow) -> rusqlite::Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> AggregateId {
        AggregateId::from_uuid(uuid::Uuid::from_u128(n))
    }

    #[test]
    fn only_runs_from_version_one_in_order_start_empty() {
        let cached: HashMap<AggregateId, ()> = [(id(5), ())].into();
        let events = [
            (id(1), 1),
            (id(2), 2),
            (id(1), 2),
            (id(3), 1),
            (id(3), 3),
            (id(4), 2),
            (id(4), 1),
            (id(5), 1),
            (id(6), 1),
            (id(6), 1),
        ];
        let runs = fresh_runs(events.into_iter(), &cached);
        assert_eq!(runs, [(id(1), 2)].into(), "{runs:?}");
    }
}
