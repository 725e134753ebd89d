//! events.db: the immutable event log, the device's outbox and the persisted HLC, with the SQL
//! functions `hlc_now()` and `hlc_compare(a, b)` registered on the same connection.
//!
//! Every write is one transaction: a batch is stored whole or not at all, and the clock's state
//! is saved in the same transaction as the events that used it.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::functions::FunctionFlags;
use rusqlite::{params, Connection, OptionalExtension, Row, Transaction};
use tandem_events::event::StoredEvent;
use tandem_events::hlc::{Clock, ClockError, ClockState, Stamp};
use tandem_events::ids::{AggregateId, DeviceId, EventId, WorkspaceId};

use crate::connection::{open, Durability, StoreError};

/// The physical clock, injected (ms since the Unix epoch).
pub type PhysicalClock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// Failures of the log. On any error nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error(
        "version conflict on aggregate {aggregate}: expected version {expected}, actual {actual}"
    )]
    VersionConflict {
        aggregate: AggregateId,
        expected: u64,
        actual: u64,
    },
    #[error("event {event_id} belongs to aggregate {found}, not {aggregate}")]
    WrongAggregate {
        event_id: EventId,
        aggregate: AggregateId,
        found: AggregateId,
    },
    #[error("event {event_id} is already stored")]
    DuplicateEvent { event_id: EventId },
    #[error("event {event_id} has seq {seq} but the log of workspace {workspace} is at {head}: seqs must follow densely")]
    SeqGap {
        event_id: EventId,
        workspace: WorkspaceId,
        seq: u64,
        head: u64,
    },
    #[error("event {event_id} is already stored with different content")]
    IdReused { event_id: EventId },
    #[error("the import does not fit this log: {0}")]
    ImportMismatch(String),
    #[error("event {event_id} is not in the outbox")]
    NotInOutbox { event_id: EventId },
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("the copy over {path} did not finish ({step}); the file is as it was")]
    CopyUnfinished { path: String, step: String },
    #[error("this events.db was written by a newer version of Tandem (its schema {found}; this version knows up to {known})")]
    NewerSchema { found: i64, known: i64 },
    #[error(transparent)]
    Clock(#[from] ClockError),
    #[error(transparent)]
    Open(#[from] StoreError),
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
}

/// The checks of `verify` on each event, read in log order (by workspace, then seq): seqs
/// dense from 1 per workspace, every event decodable and of its aggregate's kind. The SQLite
/// log and PostgreSQL's (`tandem-pg`) both run them.
#[derive(Debug, Default)]
pub struct EventChecks {
    heads: HashMap<WorkspaceId, u64>,
    checked: u64,
}

impl EventChecks {
    /// Checks the event read at `seq`.
    pub fn check(&mut self, seq: i64, event: &StoredEvent) -> Result<(), Violation> {
        let head = self.heads.entry(event.workspace_id).or_default();
        if u64::try_from(seq).ok() != Some(*head + 1) {
            return Err(Violation(format!(
                "workspace {}: seq {seq} follows seq {head} (seqs must be dense from 1)",
                event.workspace_id
            )));
        }
        *head += 1;
        if let Err(e) = event.decode() {
            return Err(Violation(format!(
                "event {} (seq {seq}) does not decode: {e}",
                event.event_id
            )));
        }
        if let Err(e) = event.check_aggregate_kind() {
            return Err(Violation(format!(
                "event {} (seq {seq}): {e}",
                event.event_id
            )));
        }
        self.checked += 1;
        Ok(())
    }

    /// How many events passed.
    pub fn checked(&self) -> u64 {
        self.checked
    }
}

/// A broken log invariant, described.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Violation(pub String);

/// An event stored in the log: its id and the position the log gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub event_id: EventId,
    pub seq: u64,
}

/// What [`EventLog::accept`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Taken {
    /// Events added to the log.
    pub added: usize,
    /// Aggregates whose outbox events changed other than by version (a stored copy replaced
    /// the outbox's, `bases` gained stamps): their views must be recomputed.
    pub changed: Vec<AggregateId>,
}

/// The open events.db.
pub struct EventLog {
    conn: Connection,
    clock: Arc<Mutex<Clock>>,
    physical: PhysicalClock,
    /// Whether the file has the tables this build adds (`heads`, `log_meta`): always for a
    /// writer (it makes them); a reader of a file no build of this version has opened reads
    /// the log itself instead.
    current_schema: bool,
}

/// A logged event with its seq and the account that pushed it (where recorded).
pub type LoggedBy = (u64, StoredEvent, Option<String>);

const COLUMNS: &str =
    "event_id, workspace_id, aggregate_id, event_type, schema_version, event_data, \
                       hlc_timestamp, device_id, version, created_at";

impl EventLog {
    /// Opens (creating if needed) the log at `path`. A new database takes `device` as its clock's
    /// node; an existing one keeps the device id it was created with.
    pub fn open(
        path: impl AsRef<Path>,
        device: DeviceId,
        physical: PhysicalClock,
    ) -> Result<Self, LogError> {
        let conn = open(path, Durability::Full)?;
        Self::with_connection(conn, device, physical)
    }

    /// Opens the log on a connection already opened with [`open`] (in-memory ones in tests).
    pub fn with_connection(
        conn: Connection,
        device: DeviceId,
        physical: PhysicalClock,
    ) -> Result<Self, LogError> {
        let found = check_schema(&conn)?;
        migrate(&conn)?;
        conn.execute_batch(include_str!("sql/events.sql"))?;
        conn.execute_batch(SECONDARY_INDEXES)?;
        if found < LOG_SCHEMA {
            conn.pragma_update(None, "user_version", LOG_SCHEMA)?;
        }
        let stored = conn
            .query_row(
                "SELECT node, last_ms, last_counter, offset_ms FROM hlc_state WHERE id = 1",
                [],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, i64>(3)?,
                    ))
                },
            )
            .optional()?;
        let mut clock = match stored {
            Some((node, last_ms, last_counter, offset_ms)) => Clock::restore(ClockState {
                node: node
                    .parse()
                    .map_err(|e| LogError::Corrupt(format!("hlc_state.node: {e}")))?,
                last_ms: u64::try_from(last_ms)
                    .map_err(|_| LogError::Corrupt("hlc_state.last_ms".into()))?,
                last_counter: u32::try_from(last_counter)
                    .map_err(|_| LogError::Corrupt("hlc_state.last_counter".into()))?,
                offset_ms,
            }),
            None => Clock::new(device),
        };
        // Never behind a stamp already stored, whatever happened to hlc_state.
        let greatest: Option<String> = conn.query_row(
            "SELECT max(h) FROM (SELECT max(hlc_timestamp) AS h FROM events \
             UNION ALL SELECT max(hlc_timestamp) FROM outbox \
             UNION ALL SELECT max(hlc_timestamp) FROM set_aside)",
            [],
            |r| r.get(0),
        )?;
        if let Some(text) = greatest {
            clock.observe(&parse_stamp(&text)?);
        }
        let retired: Vec<String> = conn
            .prepare("SELECT hlc FROM retired_stamps")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        clock.retire(
            retired
                .iter()
                .map(|t| parse_stamp(t))
                .collect::<Result<Vec<_>, _>>()?,
        );
        save_clock(&conn, &clock)?;
        conn.execute_batch(
            "INSERT INTO heads (workspace_id, head) \
             SELECT workspace_id, max(seq) FROM events \
             WHERE NOT EXISTS (SELECT 1 FROM heads) GROUP BY workspace_id",
        )?;
        let log = Self {
            conn,
            clock: Arc::new(Mutex::new(clock)),
            physical,
            current_schema: true,
        };
        log.register_functions()?;
        Ok(log)
    }

    /// Opens an existing log read-only (for a projector beside the writer; WAL lets both run).
    /// Its clock is the persisted one and never saved: it is for reading, not stamping.
    pub fn open_reader(path: impl AsRef<Path>) -> Result<Self, LogError> {
        let path = path.as_ref();
        let flags =
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let opened = |path: &Path| -> Result<Connection, LogError> {
            let conn =
                Connection::open_with_flags(path, flags).map_err(|source| StoreError::Open {
                    path: path.display().to_string(),
                    source,
                })?;
            conn.busy_timeout(std::time::Duration::from_secs(5))?;
            conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
                r.get::<_, i64>(0)
            })?;
            Ok(conn)
        };
        let conn = match opened(path) {
            Ok(conn) => conn,
            // A copy on read-only storage: SQLite cannot make the WAL's shared-memory file
            // beside it. Nothing else writes a read-only copy, so read it as immutable.
            Err(_) => {
                let uri = format!("file:{}?immutable=1", path.display());
                let conn =
                    Connection::open_with_flags(&uri, flags | rusqlite::OpenFlags::SQLITE_OPEN_URI)
                        .map_err(|source| StoreError::Open {
                            path: path.display().to_string(),
                            source,
                        })?;
                conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
                    r.get::<_, i64>(0)
                })?;
                conn
            }
        };
        check_schema(&conn)?;
        conn.pragma_update(None, "cache_size", -32_768)?;
        let stored = conn
            .query_row(
                "SELECT node, last_ms, last_counter FROM hlc_state WHERE id = 1",
                [],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                },
            )
            .optional()?;
        let clock = match stored {
            Some((node, ms, counter)) => Clock::restore(ClockState {
                node: node
                    .parse()
                    .map_err(|e| LogError::Corrupt(format!("hlc_state.node: {e}")))?,
                last_ms: ms.max(0) as u64,
                last_counter: counter.clamp(0, i64::from(u32::MAX)) as u32,
                offset_ms: 0,
            }),
            None => Clock::new(DeviceId::from_uuid(uuid::Uuid::nil())),
        };
        let current_schema: bool = conn.query_row(
            "SELECT count(*) = 2 FROM sqlite_schema WHERE type = 'table' AND name IN ('heads', 'log_meta')",
            [],
            |r| r.get(0),
        )?;
        Ok(Self {
            conn,
            clock: Arc::new(Mutex::new(clock)),
            physical: Arc::new(|| 0),
            current_schema,
        })
    }

    fn register_functions(&self) -> Result<(), LogError> {
        let clock = Arc::clone(&self.clock);
        let physical = Arc::clone(&self.physical);
        self.conn
            .create_scalar_function("hlc_now", 0, FunctionFlags::SQLITE_UTF8, move |_| {
                let mut clock = clock.lock().unwrap_or_else(|p| p.into_inner());
                clock
                    .tick(physical())
                    .map(|s| s.encode())
                    .map_err(|e| rusqlite::Error::UserFunctionError(Box::new(e)))
            })?;
        self.conn.create_scalar_function(
            "hlc_compare",
            2,
            FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
            |ctx| {
                let a: String = ctx.get(0)?;
                let b: String = ctx.get(1)?;
                let parse = |t: &str| {
                    t.parse::<Stamp>()
                        .map_err(|e| rusqlite::Error::UserFunctionError(Box::new(e)))
                };
                Ok(parse(&a)?.cmp(&parse(&b)?) as i32)
            },
        )?;
        Ok(())
    }

    fn clock(&self) -> MutexGuard<'_, Clock> {
        self.clock.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The device id this log's clock stamps with.
    pub fn device_id(&self) -> DeviceId {
        self.clock().node()
    }

    /// A new stamp from the device clock. It is persisted with the next write that uses it.
    pub fn stamp(&self) -> Result<Stamp, LogError> {
        let now = (self.physical)();
        Ok(self.clock().tick(now)?)
    }

    /// The physical clock (for `created_at`).
    pub fn now_ms(&self) -> u64 {
        (self.physical)()
    }

    /// The current clock state (what `hlc_state` holds after the next write).
    pub fn clock_state(&self) -> ClockState {
        self.clock().state()
    }

    /// The connection, for the inspector's console (which sets it read-only while it runs).
    pub fn connection_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    /// The connection, for read-only queries and tests (the triggers guard the log).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// The aggregate's version: its greatest version in the log and the outbox (0 if none).
    pub fn version(&self, aggregate: AggregateId) -> Result<u64, LogError> {
        version_in(&self.conn, aggregate)
    }

    /// The workspace an aggregate belongs to (DESIGN.md rule 21): that of its first event in
    /// append order; `None` when the log has none of its events.
    pub fn home(&self, aggregate: AggregateId) -> Result<Option<WorkspaceId>, LogError> {
        let home: Option<String> = self
            .conn
            .prepare_cached(
                // Versions are dense from 1 in append order: version 1 is the first event.
                "SELECT workspace_id FROM events WHERE aggregate_id = ?1 AND version = 1",
            )?
            .query_row([aggregate.to_string()], |r| r.get(0))
            .optional()?;
        home.map(|h| parse_id(&h)).transpose()
    }

    /// A workspace's head: its greatest `seq` (0 if none).
    pub fn head(&self, workspace: WorkspaceId) -> Result<u64, LogError> {
        if !self.current_schema {
            let h: i64 = self.conn.query_row(
                "SELECT coalesce(max(seq), 0) FROM events WHERE workspace_id = ?1",
                [workspace.to_string()],
                |r| r.get(0),
            )?;
            return Ok(h.max(0) as u64);
        }
        head_in(&self.conn, workspace)
    }

    /// Appends `events` of one aggregate to the log, if its version is still `expected_version`.
    /// Their versions must continue it densely. Assigns each its workspace's next `seq`.
    pub fn append(
        &mut self,
        aggregate: AggregateId,
        expected_version: u64,
        events: &[StoredEvent],
    ) -> Result<Vec<Appended>, LogError> {
        if let Some(e) = events.iter().find(|e| e.aggregate_id != aggregate) {
            return Err(LogError::WrongAggregate {
                event_id: e.event_id,
                aggregate,
                found: e.aggregate_id,
            });
        }
        let actual = self.version(aggregate)?;
        if actual != expected_version {
            return Err(LogError::VersionConflict {
                aggregate,
                expected: expected_version,
                actual,
            });
        }
        self.append_batch(events)
    }

    /// Appends a batch (any aggregates, any workspaces) in one transaction. Each event's
    /// version must be its aggregate's current version + 1, counting earlier events of the
    /// batch; otherwise nothing is stored.
    pub fn append_batch(&mut self, events: &[StoredEvent]) -> Result<Vec<Appended>, LogError> {
        self.append_batch_by(events, None)
    }

    /// [`Self::append_batch`], recording `user` (the pushing account) on every event.
    pub fn append_batch_by(
        &mut self,
        events: &[StoredEvent],
        user: Option<&str>,
    ) -> Result<Vec<Appended>, LogError> {
        let mut clock = self.clock().clone();
        let tx = self.conn.transaction()?;
        let appended = append_in(&tx, &mut clock, events, &|_| user.map(str::to_string))?;
        save_clock(&tx, &clock)?;
        tx.commit()?;
        self.publish_clock(clock);
        Ok(appended)
    }

    /// Imports exported events with their seqs (`server import`), all or nothing. Every event
    /// already in the log must be in the import with the same seq and content (an import only
    /// adds: it never shifts a seq, which would break every device's cursor); the others must
    /// continue their workspace's seqs densely. Returns `(imported, skipped)`.
    pub fn import_logged(&mut self, events: &[LoggedBy]) -> Result<(usize, usize), LogError> {
        let mut sorted: Vec<&LoggedBy> = events.iter().collect();
        sorted.sort_by_key(|(seq, e, _)| (e.workspace_id, *seq));
        let stored = self.len()?;
        let mut clock = self.clock().clone();
        let tx = self.conn.transaction()?;
        let mut fresh = Vec::new();
        let mut users: Vec<Option<String>> = Vec::new();
        let mut skipped = 0usize;
        let mut heads: HashMap<WorkspaceId, u64> = HashMap::new();
        {
            let mut find = tx.prepare_cached(&format!(
                "SELECT {COLUMNS}, seq FROM events WHERE event_id = ?1"
            ))?;
            for (seq, e, user) in sorted {
                let mut rows = find.query([e.event_id.to_string()])?;
                if let Some(row) = rows.next()? {
                    let at: i64 = row.get(10)?;
                    if !read_event(row)??.same_content(e) {
                        return Err(LogError::IdReused {
                            event_id: e.event_id,
                        });
                    }
                    if at.max(0) as u64 != *seq {
                        return Err(LogError::ImportMismatch(format!(
                            "event {} is at seq {at} here but at seq {seq} in the import",
                            e.event_id
                        )));
                    }
                    skipped += 1;
                    continue;
                }
                let head = match heads.get(&e.workspace_id) {
                    Some(h) => *h,
                    None => head_in(&tx, e.workspace_id)?,
                };
                if *seq != head + 1 {
                    return Err(LogError::ImportMismatch(format!(
                        "event {} has seq {seq} but workspace {} is at seq {head} here (an import only adds events after the log's)",
                        e.event_id, e.workspace_id
                    )));
                }
                heads.insert(e.workspace_id, *seq);
                fresh.push(e.clone());
                users.push(user.clone());
            }
        }
        if (skipped as u64) < stored {
            return Err(LogError::ImportMismatch(format!(
                "the data dir holds {stored} events but only {skipped} of them are in the import: an import into a non-empty data dir only adds"
            )));
        }
        append_in(&tx, &mut clock, &fresh, &|i| {
            users.get(i).cloned().flatten()
        })?;
        save_clock(&tx, &clock)?;
        tx.commit()?;
        self.publish_clock(clock);
        Ok((fresh.len(), skipped))
    }

    /// The log's identity (`log_id`), if it has one.
    pub fn log_id(&self) -> Result<Option<String>, LogError> {
        if !self.current_schema {
            return Ok(None);
        }
        Ok(self
            .conn
            .query_row("SELECT log_id FROM log_meta WHERE id = 1", [], |r| r.get(0))
            .optional()?)
    }

    /// Gives the log a (new) identity: when its data dir is made, restored or imported into.
    pub fn set_log_id(&self, log_id: &str) -> Result<(), LogError> {
        self.conn.execute(
            "INSERT INTO log_meta (id, log_id) VALUES (1, ?1) \
             ON CONFLICT (id) DO UPDATE SET log_id = ?1",
            [log_id],
        )?;
        Ok(())
    }

    /// On a device: the `log_id` of the server log `workspace` syncs with, once known.
    pub fn server_log_id(&self, workspace: WorkspaceId) -> Result<Option<String>, LogError> {
        Ok(self
            .conn
            .prepare_cached("SELECT log_id FROM server_logs WHERE workspace_id = ?1")?
            .query_row([workspace.to_string()], |r| r.get(0))
            .optional()?)
    }

    /// Records the `log_id` of the server log `workspace` syncs with.
    pub fn set_server_log_id(&self, workspace: WorkspaceId, log_id: &str) -> Result<(), LogError> {
        self.conn
            .prepare_cached(
                "INSERT INTO server_logs (workspace_id, log_id) VALUES (?1, ?2) \
                 ON CONFLICT (workspace_id) DO UPDATE SET log_id = ?2",
            )?
            .execute(params![workspace.to_string(), log_id])?;
        Ok(())
    }

    /// This device's own events in the log (accepted), in seq order per workspace.
    pub fn own_accepted(&self) -> Result<Vec<StoredEvent>, LogError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM events WHERE device_id = ?1 ORDER BY workspace_id, seq"
        ))?;
        let rows = stmt.query_map([self.device_id().to_string()], read_event)?;
        collect(rows)
    }

    /// The stamps this clock retired.
    pub fn retired(&self) -> Result<Vec<Stamp>, LogError> {
        let texts: Vec<String> = self
            .conn
            .prepare("SELECT hlc FROM retired_stamps ORDER BY hlc")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        texts.iter().map(|t| parse_stamp(t)).collect()
    }

    /// Recovery from a restored server (DESIGN.md rule 4): this is a fresh log that has pulled
    /// the restored server's events; `events` are the old log's own events and outbox (same
    /// ids, content and stamps). Those this log lacks go into the outbox, in order, with
    /// versions rebased; the old clock (`clock`, `retired`) is taken over so no stamp repeats.
    /// One transaction. Returns the events re-recorded.
    pub fn adopt(
        &mut self,
        events: &[StoredEvent],
        clock_state: ClockState,
        retired: &[Stamp],
    ) -> Result<Vec<StoredEvent>, LogError> {
        let mut clock = self.clock().clone();
        clock.observe(&Clock::restore(clock_state).last());
        clock.retire(retired.iter().copied());
        let tx = self.conn.transaction()?;
        let mut added = Vec::new();
        {
            let mut known = tx.prepare_cached(
                "SELECT 1 FROM events WHERE event_id = ?1 UNION ALL SELECT 1 FROM outbox WHERE event_id = ?1",
            )?;
            let mut insert = tx.prepare_cached(&format!(
                "INSERT INTO outbox ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
            ))?;
            let mut keep =
                tx.prepare_cached("INSERT OR IGNORE INTO retired_stamps (hlc) VALUES (?1)")?;
            for stamp in retired {
                keep.execute([stamp.encode()])?;
            }
            for (i, e) in events.iter().enumerate() {
                if known.exists([e.event_id.to_string()])? {
                    continue;
                }
                // A placeholder version (unique); the rebase below sets the real one.
                let parked = StoredEvent {
                    version: 2_000_000_000_000 + i as u64,
                    ..e.clone()
                };
                insert_row(&mut insert, None, &parked, None)?;
                clock.observe(&e.hlc_timestamp);
                added.push(e.clone());
            }
        }
        rebase_outbox(&tx)?;
        save_clock(&tx, &clock)?;
        tx.commit()?;
        *self.clock() = clock;
        Ok(added)
    }

    /// A device takes events the server accepted, in seq order: pulled ones (`events`, any
    /// author) and its own acknowledged ones (by id, from its outbox, with their seqs). Each must
    /// carry its workspace's next seq. An event whose id is in the outbox leaves the outbox (its
    /// ack was lost, or this is the ack). The remaining outbox is then rebased: its events get
    /// new versions after the log's, in recording order (DESIGN.md rule 5). One transaction.
    ///
    /// When the stored copy of an outbox event differs from the outbox's (a delayed request
    /// stored it under its stamp from before a clock correction), the stored copy wins: the
    /// outbox's is dropped, and every outbox event whose `bases` name the dropped stamp gains
    /// the stored one (DESIGN.md rule 8).
    pub fn accept(
        &mut self,
        events: &[(u64, StoredEvent)],
        own: &[(EventId, u64)],
    ) -> Result<Taken, LogError> {
        self.accept_by(events, own, &HashMap::new())
    }

    /// [`Self::accept`], recording the pushing account the server named for each event
    /// (`users`, by event id; pulled events carry it).
    pub fn accept_by(
        &mut self,
        events: &[(u64, StoredEvent)],
        own: &[(EventId, u64)],
        users: &HashMap<EventId, String>,
    ) -> Result<Taken, LogError> {
        // An empty pull changes nothing: no commit (a durable one costs a sync of the file,
        // and the page's next command would wait behind it). The clock's offset observed
        // with it is kept in memory and persisted with the next write.
        if events.is_empty() && own.is_empty() {
            return Ok(Taken {
                added: 0,
                changed: Vec::new(),
            });
        }
        let mut clock = self.clock().clone();
        let tx = self.conn.transaction()?;
        let mut heads: HashMap<WorkspaceId, u64> = HashMap::new();
        let mut incoming: Vec<(u64, StoredEvent)> = events.to_vec();
        for (event_id, seq) in own {
            let mut stmt =
                tx.prepare_cached(&format!("SELECT {COLUMNS} FROM outbox WHERE event_id = ?1"))?;
            let mut rows = stmt.query([event_id.to_string()])?;
            let Some(row) = rows.next()? else {
                return Err(LogError::NotInOutbox {
                    event_id: *event_id,
                });
            };
            incoming.push((*seq, read_event(row)??));
        }
        incoming.sort_by_key(|(seq, e)| (e.workspace_id, *seq));
        let mut added = 0;
        let mut renamed: HashMap<Stamp, Stamp> = HashMap::new();
        let mut changed: Vec<AggregateId> = Vec::new();
        {
            let mut pending =
                tx.prepare_cached(&format!("SELECT {COLUMNS} FROM outbox WHERE event_id = ?1"))?;
            let mut insert = tx.prepare_cached(&format!(
                "INSERT INTO events (seq, {COLUMNS}, user_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
            ))?;
            let mut remove = tx.prepare_cached("DELETE FROM outbox WHERE event_id = ?1")?;
            for (seq, e) in &incoming {
                let head = match heads.get(&e.workspace_id) {
                    Some(h) => *h,
                    None => head_in(&tx, e.workspace_id)?,
                };
                if *seq <= head {
                    // Already in the log (a repeated pull): nothing to do.
                    continue;
                }
                if *seq != head + 1 {
                    return Err(LogError::SeqGap {
                        event_id: e.event_id,
                        workspace: e.workspace_id,
                        seq: *seq,
                        head,
                    });
                }
                heads.insert(e.workspace_id, *seq);
                let ours = {
                    let mut rows = pending.query([e.event_id.to_string()])?;
                    match rows.next()? {
                        Some(row) => Some(read_event(row)??),
                        None => None,
                    }
                };
                if let Some(ours) = ours {
                    if !ours.same_content(e) {
                        if !changed.contains(&ours.aggregate_id) {
                            changed.push(ours.aggregate_id);
                        }
                        if is_copy_of(e, &ours) {
                            // The stored copy wins; the dropped stamp is retired (rule 8).
                            if ours.hlc_timestamp != e.hlc_timestamp {
                                renamed.insert(ours.hlc_timestamp, e.hlc_timestamp);
                                retire_in(&tx, &mut clock, ours.hlc_timestamp)?;
                            }
                        } else {
                            // Another author's event under our id (a buggy or hostile
                            // client): ours is not lost, it is set aside.
                            set_aside_in(
                                &tx,
                                &ours,
                                "ID_REUSED",
                                "another event is stored under this event's id",
                            )?;
                            retire_in(&tx, &mut clock, ours.hlc_timestamp)?;
                        }
                    }
                    remove.execute([e.event_id.to_string()])?;
                } else if let Some(aside) = set_aside_copy(&tx, e.event_id)? {
                    // A copy of an event we set aside was stored after all (a delayed request):
                    // it is accepted; edits that named the set-aside stamp gain the stored one.
                    if is_copy_of(e, &aside) {
                        if aside.hlc_timestamp != e.hlc_timestamp {
                            renamed.insert(aside.hlc_timestamp, e.hlc_timestamp);
                        }
                        tx.execute(
                            "DELETE FROM set_aside WHERE event_id = ?1",
                            [e.event_id.to_string()],
                        )?;
                    }
                }
                insert_row(
                    &mut insert,
                    Some(*seq),
                    e,
                    users.get(&e.event_id).map(String::as_str),
                )?;
                clock.observe(&e.hlc_timestamp);
                added += 1;
            }
        }
        for (workspace, head) in &heads {
            set_head(&tx, *workspace, *head)?;
        }
        for id in union_bases_in(&tx, &renamed)? {
            if !changed.contains(&id) {
                changed.push(id);
            }
        }
        rebase_outbox(&tx)?;
        save_clock(&tx, &clock)?;
        tx.commit()?;
        self.publish_clock(clock);
        Ok(Taken { added, changed })
    }

    /// Re-estimates the clock's offset from a server answer's time (DESIGN.md rule 8). Kept
    /// in memory and persisted with the next write.
    pub fn observe_server_time(&self, server_ms: u64) {
        let physical = (self.physical)();
        self.clock().set_offset(server_ms, physical);
    }

    /// The one backwards move of the clock (DESIGN.md rule 8), after the server refused an
    /// outbox stamp as more than `max_drift_ms` ahead of its time `server_ms` (read now):
    /// - the outbox events stamped beyond `server_ms + max_drift_ms` are retired: their stamps
    ///   are never issued again;
    /// - the clock restarts at the greatest of the server-corrected time, the greatest stamp in
    ///   the log (received, or this device's accepted) and the greatest stamp of the outbox
    ///   events kept;
    /// - the retired events get new stamps, in recording order;
    /// - an outbox event whose `bases` name a retired stamp keeps it and gains the new one (a
    ///   delayed copy of the old event may still be stored: both must stay superseded).
    ///
    /// One transaction. Returns the aggregates whose events changed.
    pub fn correct_clock(
        &mut self,
        server_ms: u64,
        max_drift_ms: u64,
    ) -> Result<Vec<AggregateId>, LogError> {
        let physical = (self.physical)();
        let threshold = server_ms.saturating_add(max_drift_ms);
        let outbox = self.outbox()?;
        let (retire, kept): (Vec<&StoredEvent>, Vec<&StoredEvent>) =
            outbox.iter().partition(|e| e.hlc_timestamp.ms > threshold);
        let greatest_logged: Option<String> =
            self.conn
                .query_row("SELECT max(hlc_timestamp) FROM events", [], |r| r.get(0))?;
        let floor = greatest_logged
            .map(|t| parse_stamp(&t))
            .transpose()?
            .into_iter()
            .chain(kept.iter().map(|e| e.hlc_timestamp))
            .max();
        // When the floor itself is beyond what the server accepts (its clock stepped back
        // after accepting stamps), new stamps would be refused too: re-stamp nothing (each
        // round would only add aliases to `bases`); the engine backs off until the server's
        // time passes the floor.
        let retire = if floor.is_some_and(|f| f.ms > threshold) {
            Vec::new()
        } else {
            retire
        };
        let mut clock = self.clock().clone();
        clock.retire(retire.iter().map(|e| e.hlc_timestamp));
        clock.set_back(server_ms, physical, floor.as_ref());
        let mut renamed: HashMap<Stamp, Stamp> = HashMap::new();
        for e in &retire {
            renamed.insert(e.hlc_timestamp, clock.tick(physical)?);
        }
        let tx = self.conn.transaction()?;
        let mut touched: Vec<AggregateId> = Vec::new();
        {
            let mut restamp =
                tx.prepare_cached("UPDATE outbox SET hlc_timestamp = ?2 WHERE event_id = ?1")?;
            let mut keep =
                tx.prepare_cached("INSERT OR IGNORE INTO retired_stamps (hlc) VALUES (?1)")?;
            for e in &retire {
                let new = renamed[&e.hlc_timestamp];
                restamp.execute(params![e.event_id.to_string(), new.encode()])?;
                keep.execute([e.hlc_timestamp.encode()])?;
                if !touched.contains(&e.aggregate_id) {
                    touched.push(e.aggregate_id);
                }
            }
            for id in union_bases_in(&tx, &renamed)? {
                if !touched.contains(&id) {
                    touched.push(id);
                }
            }
        }
        save_clock(&tx, &clock)?;
        tx.commit()?;
        // Published as is: this is the one move that may go backwards.
        *self.clock() = clock;
        Ok(touched)
    }

    /// Sets an outbox event aside (DESIGN.md rule 13): the server refused it for good with
    /// `code` and `reason`. It leaves the outbox (what follows is rebased) and is kept in
    /// `set_aside`, never sent again. One transaction. Returns its aggregate.
    pub fn set_aside(
        &mut self,
        event_id: EventId,
        code: &str,
        reason: &str,
    ) -> Result<AggregateId, LogError> {
        let tx = self.conn.transaction()?;
        let event = {
            let mut stmt =
                tx.prepare_cached(&format!("SELECT {COLUMNS} FROM outbox WHERE event_id = ?1"))?;
            let mut rows = stmt.query([event_id.to_string()])?;
            match rows.next()? {
                Some(row) => read_event(row)??,
                None => return Err(LogError::NotInOutbox { event_id }),
            }
        };
        // A refused creation takes the item's later unsent events with it: they would
        // otherwise be sent as the history of an item that was never made.
        let mut aside = vec![event.clone()];
        if event.event_type.ends_with("Created") {
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM outbox WHERE aggregate_id = ?1 AND event_id != ?2 ORDER BY recorded"
            ))?;
            let rows = stmt.query_map(
                params![event.aggregate_id.to_string(), event_id.to_string()],
                read_event,
            )?;
            aside.extend(collect(rows)?);
        }
        let mut retired = Vec::with_capacity(aside.len());
        for (i, e) in aside.iter().enumerate() {
            let why = if i == 0 {
                reason.to_string()
            } else {
                format!("its item's creation was refused: {reason}")
            };
            set_aside_in(&tx, e, code, &why)?;
            tx.execute(
                "DELETE FROM outbox WHERE event_id = ?1",
                [e.event_id.to_string()],
            )?;
            // Its stamp was issued and is kept (in set_aside): never issue it again (rule 8).
            tx.execute(
                "INSERT OR IGNORE INTO retired_stamps (hlc) VALUES (?1)",
                [e.hlc_timestamp.encode()],
            )?;
            retired.push(e.hlc_timestamp);
        }
        rebase_outbox(&tx)?;
        tx.commit()?;
        self.clock().retire(retired);
        Ok(event.aggregate_id)
    }

    /// The events set aside, oldest first, with the server's code and reason.
    pub fn set_aside_events(&self) -> Result<Vec<(StoredEvent, String, String)>, LogError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {COLUMNS}, code, reason FROM set_aside ORDER BY rowid"
        ))?;
        let rows = stmt.query_map([], |r| {
            Ok((
                read_event(r)?,
                r.get::<_, String>(10)?,
                r.get::<_, String>(11)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (event, code, reason) = row?;
            out.push((event?, code, reason));
        }
        Ok(out)
    }

    /// Records this device's new events of one aggregate in the outbox, if its version (log and
    /// outbox) is still `expected_version`; versions must continue it densely.
    pub fn record(
        &mut self,
        aggregate: AggregateId,
        expected_version: u64,
        events: &[StoredEvent],
    ) -> Result<(), LogError> {
        self.record_command(&[(aggregate, expected_version, events)], None)
    }

    /// Records the events of several aggregates in one transaction (a command on many items),
    /// each batch at its aggregate's expected version, with the command's id and reply when
    /// given (the `commands` table, DESIGN.md rule 18). All or nothing.
    pub fn record_command(
        &mut self,
        batches: &[(AggregateId, u64, &[StoredEvent])],
        command: Option<(&str, &str)>,
    ) -> Result<(), LogError> {
        self.record_undoable(batches, command, None)
    }

    /// [`Self::record_command`], keeping the undo history in the same transaction: a new
    /// action pushes a step (and forgets the undone ones), an undo or a redo marks its step.
    pub fn record_undoable(
        &mut self,
        batches: &[(AggregateId, u64, &[StoredEvent])],
        command: Option<(&str, &str)>,
        undo: Option<&UndoBook>,
    ) -> Result<(), LogError> {
        let mut clock = self.clock().clone();
        let tx = self.conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(&format!(
                "INSERT INTO outbox ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
            ))?;
            for &(aggregate, expected_version, events) in batches {
                let actual = version_in(&tx, aggregate)?;
                if actual != expected_version {
                    return Err(LogError::VersionConflict {
                        aggregate,
                        expected: expected_version,
                        actual,
                    });
                }
                for (i, e) in events.iter().enumerate() {
                    if e.aggregate_id != aggregate {
                        return Err(LogError::WrongAggregate {
                            event_id: e.event_id,
                            aggregate,
                            found: e.aggregate_id,
                        });
                    }
                    if e.version != expected_version + 1 + i as u64 {
                        return Err(LogError::VersionConflict {
                            aggregate,
                            expected: e.version.saturating_sub(1),
                            actual: expected_version + i as u64,
                        });
                    }
                    insert_row(&mut insert, None, e, None)?;
                    clock.observe(&e.hlc_timestamp);
                }
            }
            save_clock(&tx, &clock)?;
            if let Some((command_id, reply)) = command {
                tx.prepare_cached("INSERT INTO commands (command_id, reply) VALUES (?1, ?2)")?
                    .execute([command_id, reply])?;
            }
            if let Some(book) = undo {
                let ids: Vec<String> = batches
                    .iter()
                    .flat_map(|(_, _, events)| events.iter().map(|e| e.event_id.to_string()))
                    .collect();
                keep_undo(&tx, book, &ids)?;
            }
        }
        tx.commit()?;
        self.publish_clock(clock);
        Ok(())
    }

    /// The newest step that can be undone in `workspace`.
    pub fn undo_top(&self, workspace: WorkspaceId) -> Result<Option<UndoStep>, LogError> {
        self.undo_step(
            "SELECT step, label, events, undo_events FROM undo_steps \
             WHERE workspace_id = ?1 AND NOT undone ORDER BY step DESC LIMIT 1",
            workspace,
        )
    }

    /// The step a redo takes back: the one undone last (the oldest undone).
    pub fn redo_top(&self, workspace: WorkspaceId) -> Result<Option<UndoStep>, LogError> {
        self.undo_step(
            "SELECT step, label, events, undo_events FROM undo_steps \
             WHERE workspace_id = ?1 AND undone ORDER BY step LIMIT 1",
            workspace,
        )
    }

    fn undo_step(&self, sql: &str, workspace: WorkspaceId) -> Result<Option<UndoStep>, LogError> {
        let row = self
            .conn
            .prepare_cached(sql)?
            .query_row([workspace.to_string()], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                ))
            })
            .optional()?;
        let Some((step, label, events, undo_events)) = row else {
            return Ok(None);
        };
        let ids = |text: &str| -> Result<Vec<EventId>, LogError> {
            let texts: Vec<String> = serde_json::from_str(text)
                .map_err(|e| LogError::Corrupt(format!("undo step {step}: {e}")))?;
            texts
                .iter()
                .map(|t| {
                    t.parse()
                        .map_err(|e| LogError::Corrupt(format!("undo step {step}: {e}")))
                })
                .collect()
        };
        Ok(Some(UndoStep {
            step,
            label,
            events: ids(&events)?,
            undo_events: undo_events
                .as_deref()
                .map(ids)
                .transpose()?
                .unwrap_or_default(),
        }))
    }

    /// Forgets a step of the undo history (one that can no longer be undone or redone).
    pub fn forget_undo_step(&self, step: i64) -> Result<(), LogError> {
        self.conn
            .prepare_cached("DELETE FROM undo_steps WHERE step = ?1")?
            .execute([step])?;
        Ok(())
    }

    /// One event by id, from the log or the outbox.
    pub fn event(&self, event_id: EventId) -> Result<Option<StoredEvent>, LogError> {
        for table in ["events", "outbox"] {
            let mut stmt = self.conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM {table} WHERE event_id = ?1"
            ))?;
            let mut rows = stmt.query([event_id.to_string()])?;
            if let Some(row) = rows.next()? {
                return Ok(Some(read_event(row)??));
            }
        }
        Ok(None)
    }

    /// Counts one more taking of ownership of these databases and returns its epoch (1, 2, …;
    /// greater than every earlier one's, also across restarts). Only the owner calls this,
    /// holding the databases alone, so epochs are never shared.
    pub fn take_ownership(&self) -> Result<u64, LogError> {
        let epoch: i64 = self
            .conn
            .prepare_cached(
                "INSERT INTO ownership (id, epoch) VALUES (1, 1) \
                 ON CONFLICT (id) DO UPDATE SET epoch = epoch + 1 RETURNING epoch",
            )?
            .query_row([], |r| r.get(0))?;
        Ok(u64::try_from(epoch).unwrap_or(0))
    }

    /// The ownership epoch counted so far (0: never owned).
    pub fn ownership_epoch(&self) -> Result<u64, LogError> {
        let epoch: Option<i64> = self
            .conn
            .prepare_cached("SELECT epoch FROM ownership WHERE id = 1")?
            .query_row([], |r| r.get(0))
            .optional()?;
        Ok(epoch.map_or(0, |e| u64::try_from(e).unwrap_or(0)))
    }

    /// Counts ownership on from at least `epoch` (a log that replaces another, whose owners the
    /// other tabs know: the next owner's epoch must be greater than theirs).
    pub fn continue_ownership_from(&self, epoch: u64) -> Result<(), LogError> {
        if epoch == 0 {
            return Ok(());
        }
        let epoch = i64::try_from(epoch).unwrap_or(i64::MAX);
        self.conn
            .prepare_cached(
                "INSERT INTO ownership (id, epoch) VALUES (1, ?1) \
                 ON CONFLICT (id) DO UPDATE SET epoch = max(epoch, ?1)",
            )?
            .execute([epoch])?;
        Ok(())
    }

    /// Writes this log over the database file at `path` (closed; another device's copy that
    /// this one replaces) with SQLite's online backup in one step: the file is then either as
    /// it was or a copy of this log, never half of each.
    pub fn copy_over(&self, path: impl AsRef<Path>) -> Result<(), LogError> {
        let path = path.as_ref();
        let mut target = open(path, Durability::Full)?;
        let backup = rusqlite::backup::Backup::new(&self.conn, &mut target)?;
        // Every page in one step (one transaction on the target).
        match backup.step(-1)? {
            rusqlite::backup::StepResult::Done => Ok(()),
            other => Err(LogError::CopyUnfinished {
                path: path.display().to_string(),
                step: format!("{other:?}"),
            }),
        }
    }

    /// Marks this log as a finished recovery from a restored server: it is to replace the
    /// device's events.db, also when the copy over it has to wait for the next open.
    pub fn mark_recovered(&self) -> Result<(), LogError> {
        self.conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS recovered (id INTEGER PRIMARY KEY CHECK (id = 1)); \
             INSERT OR IGNORE INTO recovered (id) VALUES (1);",
        )?;
        Ok(())
    }

    /// Whether [`Self::mark_recovered`] marked this log.
    pub fn is_recovered(&self) -> Result<bool, LogError> {
        Ok(self.conn.query_row(
            "SELECT count(*) > 0 FROM sqlite_schema WHERE type = 'table' AND name = 'recovered'",
            [],
            |r| r.get(0),
        )?)
    }

    /// The reply recorded for a command id, if that command has run here.
    pub fn command_reply(&self, command_id: &str) -> Result<Option<String>, LogError> {
        Ok(self
            .conn
            .prepare_cached("SELECT reply FROM commands WHERE command_id = ?1")?
            .query_row([command_id], |r| r.get(0))
            .optional()?)
    }

    /// After a commit: the shared clock becomes the greater of itself (stamps issued meanwhile
    /// through `hlc_now()`) and the committed copy, and keeps every stamp the copy retired.
    fn publish_clock(&self, committed: Clock) {
        self.clock().absorb(&committed);
    }

    /// The stored event with this id, and its seq.
    pub fn find(&self, event_id: EventId) -> Result<Option<(u64, StoredEvent)>, LogError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {COLUMNS}, seq FROM events WHERE event_id = ?1"
        ))?;
        let mut rows = stmt.query([event_id.to_string()])?;
        match rows.next()? {
            Some(row) => {
                let seq: i64 = row.get(10)?;
                Ok(Some((seq as u64, read_event(row)??)))
            }
            None => Ok(None),
        }
    }

    /// The outbox, in recording order.
    pub fn outbox(&self) -> Result<Vec<StoredEvent>, LogError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM outbox ORDER BY recorded"))?;
        let rows = stmt.query_map([], read_event)?;
        collect(rows)
    }

    /// The outbox's size.
    /// Notes the names of accounts (a pull's `people`).
    pub fn remember_people(&self, people: &[(String, String)]) -> Result<(), LogError> {
        if people.is_empty() {
            return Ok(());
        }
        // One transaction for all, and a name already known writes nothing: every push's
        // answer names its pusher, and a commit that dirties a page costs a durable sync.
        let tx = self.conn.unchecked_transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO people (user_id, username) VALUES (?1, ?2) \
                 ON CONFLICT (user_id) DO UPDATE SET username = excluded.username \
                 WHERE people.username IS NOT excluded.username",
            )?;
            for (user, name) in people {
                stmt.execute(params![user, name])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Whether the log knows the name of every account in `users` (a live message's events
    /// carry ids only; a pull brings the names).
    pub fn knows_people<'a>(
        &self,
        users: impl IntoIterator<Item = &'a str>,
    ) -> Result<bool, LogError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM people WHERE user_id = ?1)")?;
        for user in users {
            if !stmt.query_row([user], |r| r.get::<_, bool>(0))? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Who made each of an aggregate's events (by event id), where the log knows the account
    /// and its name.
    pub fn people_of(&self, aggregate: AggregateId) -> Result<HashMap<String, String>, LogError> {
        if !self.has_user_column()? {
            return Ok(HashMap::new());
        }
        let mut stmt = self.conn.prepare_cached(
            "SELECT e.event_id, p.username FROM events e JOIN people p ON p.user_id = e.user_id \
             WHERE e.aggregate_id = ?1",
        )?;
        let rows = stmt.query_map([aggregate.to_string()], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Who made the event of `aggregate` stamped `hlc`, by name, where known.
    pub fn person_of_stamp(&self, aggregate: &str, hlc: &str) -> Result<Option<String>, LogError> {
        if !self.has_user_column()? {
            return Ok(None);
        }
        Ok(self
            .conn
            .prepare_cached(
                "SELECT p.username FROM events e JOIN people p ON p.user_id = e.user_id \
                 WHERE e.aggregate_id = ?1 AND e.hlc_timestamp = ?2",
            )?
            .query_row([aggregate, hlc], |r| r.get(0))
            .optional()?)
    }

    /// The workspaces with events in the outbox.
    pub fn outbox_workspaces(&self) -> Result<Vec<WorkspaceId>, LogError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT DISTINCT workspace_id FROM outbox")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for row in rows {
            out.push(parse_id(&row?)?);
        }
        Ok(out)
    }

    /// The outbox events of one workspace.
    pub fn outbox_len_in(&self, workspace: WorkspaceId) -> Result<usize, LogError> {
        let n: i64 = self
            .conn
            .prepare_cached("SELECT count(*) FROM outbox WHERE workspace_id = ?1")?
            .query_row([workspace.to_string()], |r| r.get(0))?;
        Ok(n.max(0) as usize)
    }

    /// How many events the log holds of each of `ids` (the outbox's not counted), in one
    /// statement; an aggregate without events is 0.
    pub fn aggregate_counts(
        &self,
        ids: impl Iterator<Item = AggregateId>,
    ) -> Result<HashMap<AggregateId, u64>, LogError> {
        per_aggregate(
            &self.conn,
            ids,
            "SELECT a.value, (SELECT count(*) FROM events WHERE aggregate_id = a.value) \
             FROM json_each(?1) a",
        )
    }

    pub fn outbox_len(&self) -> Result<usize, LogError> {
        let n: i64 = self
            .conn
            .prepare_cached("SELECT count(*) FROM outbox")?
            .query_row([], |r| r.get(0))?;
        Ok(n.max(0) as usize)
    }

    /// The outbox's first `limit` events, in recording order.
    pub fn outbox_first(&self, limit: usize) -> Result<Vec<StoredEvent>, LogError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM outbox ORDER BY recorded LIMIT ?1"
        ))?;
        let rows = stmt.query_map([i64::try_from(limit).unwrap_or(i64::MAX)], read_event)?;
        collect(rows)
    }

    /// Up to `limit` events of `workspace` with `seq > after`, in seq order.
    pub fn events_after(
        &self,
        workspace: WorkspaceId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, StoredEvent)>, LogError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {COLUMNS}, seq FROM events WHERE workspace_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"
        ))?;
        let rows = stmt.query_map(
            params![workspace.to_string(), after as i64, limit as i64],
            |r| Ok((r.get::<_, i64>(10)? as u64, read_event(r)?)),
        )?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, event) = row?;
            out.push((seq, event?));
        }
        Ok(out)
    }

    /// Up to `limit` events of `workspace` with `seq > after`, in seq order, stopping before
    /// `bytes` of event data plus `overhead` per event would be passed (but taking at least
    /// one): rows are read one at a time, so memory stays within the budget. Returns the events
    /// and whether more follow.
    pub fn events_after_within(
        &self,
        workspace: WorkspaceId,
        after: u64,
        limit: usize,
        bytes: usize,
        overhead: usize,
    ) -> Result<(Vec<LoggedBy>, bool), LogError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {COLUMNS}, seq, {} FROM events WHERE workspace_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
            self.user_column()
        ))?;
        let mut rows = stmt.query(params![
            workspace.to_string(),
            after as i64,
            limit.saturating_add(1) as i64
        ])?;
        let mut out = Vec::new();
        let mut used = 0usize;
        while let Some(row) = rows.next()? {
            if out.len() == limit {
                return Ok((out, true));
            }
            let size = row.get_ref(5)?.as_bytes().map_or(0, <[u8]>::len) + overhead;
            if !out.is_empty() && used.saturating_add(size) > bytes {
                return Ok((out, true));
            }
            used = used.saturating_add(size);
            let seq: i64 = row.get(10)?;
            let user: Option<String> = row.get(11)?;
            out.push((seq.max(0) as u64, read_event(row)??, user));
        }
        Ok((out, false))
    }

    /// Up to `limit` events of `workspace` with `seq > after` with the account that pushed
    /// each (`server export`).
    pub fn events_after_by(
        &self,
        workspace: WorkspaceId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<LoggedBy>, LogError> {
        Ok(self
            .events_after_within(workspace, after, limit, usize::MAX, 0)?
            .0)
    }

    /// The account that pushed each event, where recorded (`server verify`).
    pub fn event_users(&self) -> Result<Vec<(EventId, String)>, LogError> {
        if !self.has_user_column()? {
            return Ok(vec![]);
        }
        let mut stmt = self
            .conn
            .prepare("SELECT event_id, user_id FROM events WHERE user_id IS NOT NULL")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, user) = row?;
            out.push((parse_id(&id)?, user));
        }
        Ok(out)
    }

    fn has_user_column(&self) -> Result<bool, LogError> {
        has_user_column(&self.conn)
    }

    /// `user_id`, or NULL on a log from before accounts opened read-only (not migrated).
    fn user_column(&self) -> &'static str {
        if self.has_user_column().unwrap_or(false) {
            "user_id"
        } else {
            "NULL"
        }
    }

    /// The ids of one aggregate's events still in the outbox.
    pub fn outbox_ids(&self, aggregate: AggregateId) -> Result<Vec<EventId>, LogError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT event_id FROM outbox WHERE aggregate_id = ?1")?;
        let ids = stmt
            .query_map([aggregate.to_string()], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        ids.iter()
            .map(|id| {
                id.parse()
                    .map_err(|e| LogError::Corrupt(format!("the outbox holds a malformed id: {e}")))
            })
            .collect()
    }

    /// Every event of one aggregate: the log's in version order, then the outbox's.
    pub fn aggregate_events(&self, aggregate: AggregateId) -> Result<Vec<StoredEvent>, LogError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM events WHERE aggregate_id = ?1 ORDER BY version"
        ))?;
        let mut out = collect(stmt.query_map([aggregate.to_string()], read_event)?)?;
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM outbox WHERE aggregate_id = ?1 ORDER BY recorded"
        ))?;
        out.extend(collect(
            stmt.query_map([aggregate.to_string()], read_event)?,
        )?);
        Ok(out)
    }

    /// The workspaces that have events in the log, with their heads.
    pub fn heads(&self) -> Result<Vec<(WorkspaceId, u64)>, LogError> {
        let mut stmt = self.conn.prepare_cached(if self.current_schema {
            "SELECT workspace_id, head FROM heads ORDER BY workspace_id"
        } else {
            "SELECT workspace_id, max(seq) FROM events GROUP BY workspace_id ORDER BY workspace_id"
        })?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (ws, head) = row?;
            out.push((parse_id(&ws)?, head as u64));
        }
        Ok(out)
    }

    /// Checks the log's invariants (DESIGN.md rules 6 and 10, and that every event reads and
    /// decodes). Returns the number of events checked, or the first violation.
    pub fn verify(&self) -> Result<u64, Violation> {
        let sql = |e: rusqlite::Error| Violation(format!("cannot read the log: {e}"));
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {COLUMNS}, seq FROM events ORDER BY workspace_id, seq"
            ))
            .map_err(sql)?;
        let mut rows = stmt.query([]).map_err(sql)?;
        let mut checks = EventChecks::default();
        while let Some(row) = rows.next().map_err(sql)? {
            let seq: i64 = row.get(10).map_err(sql)?;
            let event = match read_event(row) {
                Ok(Ok(e)) => e,
                Ok(Err(e)) => {
                    return Err(Violation(format!("event at seq {seq} is unreadable: {e}")))
                }
                Err(e) => return Err(sql(e)),
            };
            checks.check(seq, &event)?;
        }
        let mut stmt = self
            .conn
            .prepare("SELECT aggregate_id, count(*), min(version), max(version) FROM events GROUP BY aggregate_id")
            .map_err(sql)?;
        let mut rows = stmt.query([]).map_err(sql)?;
        while let Some(row) = rows.next().map_err(sql)? {
            let (aggregate, count, min, max): (String, i64, i64, i64) = (
                row.get(0).map_err(sql)?,
                row.get(1).map_err(sql)?,
                row.get(2).map_err(sql)?,
                row.get(3).map_err(sql)?,
            );
            if min != 1 || max != count {
                return Err(Violation(format!(
                    "aggregate {aggregate}: {count} events with versions {min}..={max} (versions must be dense from 1)"
                )));
            }
        }
        // (A file no build of this version has written has no heads table yet.)
        if self.current_schema {
            let stale: Option<String> = self
                .conn
                .query_row(
                    "SELECT w.workspace_id FROM (SELECT workspace_id, max(seq) AS top FROM events GROUP BY workspace_id) w \
                     LEFT JOIN heads h ON h.workspace_id = w.workspace_id \
                     WHERE h.head IS NOT w.top LIMIT 1",
                    [],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sql)?;
            if let Some(workspace) = stale {
                return Err(Violation(format!(
                    "workspace {workspace}: the heads table disagrees with the log's greatest seq"
                )));
            }
        }
        // Rule 21: an aggregate lives in one workspace, and a todo's list in the todo's.
        let split: Option<String> = self
            .conn
            .query_row(
                "SELECT aggregate_id FROM events GROUP BY aggregate_id \
                 HAVING count(DISTINCT workspace_id) > 1 LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql)?;
        if let Some(aggregate) = split {
            return Err(Violation(format!(
                "aggregate {aggregate} has events in more than one workspace (an aggregate belongs to one workspace; this data dir predates that rule or was written around the server)"
            )));
        }
        let crossing: Option<(String, String)> = self
            .conn
            .query_row(
                "SELECT t.event_id, l.workspace_id FROM events t \
                 JOIN events l ON l.aggregate_id = json_extract(t.event_data, '$.list_id') \
                 WHERE t.event_type IN ('TodoCreated', 'TodoListChanged') \
                 AND l.workspace_id != t.workspace_id LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(sql)?;
        if let Some((event, workspace)) = crossing {
            return Err(Violation(format!(
                "todo event {event} names a list of workspace {workspace}, another workspace (rule 21)"
            )));
        }
        for trigger in ["events_no_update", "events_no_delete"] {
            let present: i64 = self
                .conn
                .query_row(
                    "SELECT count(*) FROM sqlite_schema WHERE type = 'trigger' AND name = ?1",
                    [trigger],
                    |r| r.get(0),
                )
                .map_err(sql)?;
            if present != 1 {
                return Err(Violation(format!(
                    "the immutability trigger {trigger} is missing"
                )));
            }
        }
        Ok(checks.checked())
    }

    /// Drops the log's secondary indexes (by time and by type: only the inspector's filters
    /// read them) for a first download, which writes faster without them;
    /// [`Self::create_secondary_indexes`] builds them in one pass at its end. A download cut
    /// short leaves them to the next open, which creates what is missing (`events.sql`).
    pub fn drop_secondary_indexes(&self) -> Result<(), LogError> {
        self.conn
            .execute_batch("DROP INDEX IF EXISTS events_hlc; DROP INDEX IF EXISTS events_type;")?;
        Ok(())
    }

    /// Creates the secondary indexes when missing (a no-op when they exist).
    pub fn create_secondary_indexes(&self) -> Result<(), LogError> {
        self.conn.execute_batch(SECONDARY_INDEXES)?;
        Ok(())
    }

    /// The number of events in the log.
    pub fn len(&self) -> Result<u64, LogError> {
        Ok(self
            .conn
            .query_row("SELECT count(*) FROM events", [], |r| r.get::<_, i64>(0))?
            as u64)
    }

    pub fn is_empty(&self) -> Result<bool, LogError> {
        Ok(self
            .conn
            .query_row("SELECT NOT EXISTS (SELECT 1 FROM events)", [], |r| r.get(0))?)
    }

    /// Calls `f` on every event of the log and the outbox, one aggregate after another (by
    /// aggregate id): an aggregate's logged events in version order, then its outbox events.
    /// Both tables are read in their `(aggregate_id, version)` index order and merged.
    pub fn for_each_by_aggregate(
        &self,
        mut f: impl FnMut(&StoredEvent) -> Result<(), LogError>,
    ) -> Result<(), LogError> {
        let mut logged = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM events ORDER BY aggregate_id, version"
        ))?;
        let mut pending = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM outbox ORDER BY aggregate_id, version"
        ))?;
        let mut a = logged.query([])?;
        let mut b = pending.query([])?;
        let next = |rows: &mut rusqlite::Rows<'_>| -> Result<Option<StoredEvent>, LogError> {
            match rows.next()? {
                Some(row) => Ok(Some(read_event(row)??)),
                None => Ok(None),
            }
        };
        let (mut x, mut y) = (next(&mut a)?, next(&mut b)?);
        loop {
            let take_logged = match (&x, &y) {
                (None, None) => return Ok(()),
                (Some(_), None) => true,
                (None, Some(_)) => false,
                // Ids compare as their text does (the index order): logged first on a tie.
                (Some(l), Some(o)) => l.aggregate_id.to_string() <= o.aggregate_id.to_string(),
            };
            if take_logged {
                if let Some(e) = x.take() {
                    f(&e)?;
                }
                x = next(&mut a)?;
            } else {
                if let Some(e) = y.take() {
                    f(&e)?;
                }
                y = next(&mut b)?;
            }
        }
    }

    /// Calls `f` on every event of the log (by workspace, then seq), then every outbox event.
    pub fn for_each(
        &self,
        mut f: impl FnMut(&StoredEvent) -> Result<(), LogError>,
    ) -> Result<(), LogError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM events ORDER BY workspace_id, seq"
        ))?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            f(&read_event(row)??)?;
        }
        for e in self.outbox()? {
            f(&e)?;
        }
        Ok(())
    }
}

/// How a recorded command changes the undo history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UndoBook {
    /// A new undoable action: pushed as a step named `label`; the undone steps are forgotten.
    Push {
        workspace: WorkspaceId,
        label: String,
    },
    /// The undo of step `step`: it is undone, its undo's events kept for a redo.
    Undone { step: i64 },
    /// The redo of step `step`: it is done again, now as the redo's events.
    Redone { step: i64 },
}

/// A step of the undo history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UndoStep {
    pub step: i64,
    pub label: String,
    /// The events of the action (or of its redo).
    pub events: Vec<EventId>,
    /// While undone: the events of its undo.
    pub undo_events: Vec<EventId>,
}

/// Steps kept per workspace: older ones are forgotten (DESIGN.md rule 22: bounded).
pub const UNDO_STEPS: i64 = 200;

fn keep_undo(tx: &Transaction<'_>, book: &UndoBook, ids: &[String]) -> Result<(), LogError> {
    let ids = serde_json::to_string(ids).unwrap_or_else(|_| "[]".into());
    match book {
        UndoBook::Push { workspace, label } => {
            if ids == "[]" {
                return Ok(());
            }
            let ws = workspace.to_string();
            tx.prepare_cached("DELETE FROM undo_steps WHERE workspace_id = ?1 AND undone")?
                .execute([&ws])?;
            tx.prepare_cached(
                "INSERT INTO undo_steps (workspace_id, label, events) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![ws, label, ids])?;
            tx.prepare_cached(
                "DELETE FROM undo_steps WHERE workspace_id = ?1 AND step <= \
                 (SELECT step FROM undo_steps WHERE workspace_id = ?1 ORDER BY step DESC LIMIT 1 OFFSET ?2)",
            )?
            .execute(params![ws, UNDO_STEPS])?;
        }
        UndoBook::Undone { step } => {
            tx.prepare_cached(
                "UPDATE undo_steps SET undone = 1, undo_events = ?2 WHERE step = ?1",
            )?
            .execute(params![step, ids])?;
        }
        UndoBook::Redone { step } => {
            tx.prepare_cached(
                "UPDATE undo_steps SET undone = 0, events = ?2, undo_events = NULL WHERE step = ?1",
            )?
            .execute(params![step, ids])?;
        }
    }
    Ok(())
}

/// Executes an insert prepared with `(seq, COLUMNS)` when `seq` is given (the log), or
/// `(COLUMNS)` when not (the outbox).
fn insert_row(
    insert: &mut rusqlite::Statement<'_>,
    seq: Option<u64>,
    e: &StoredEvent,
    user: Option<&str>,
) -> Result<(), LogError> {
    let id = e.event_id.to_string();
    let workspace = e.workspace_id.to_string();
    let aggregate = e.aggregate_id.to_string();
    let stamp = e.hlc_timestamp.encode();
    let device = e.device_id.to_string();
    let version = e.version as i64;
    let columns: [&dyn rusqlite::ToSql; 10] = [
        &id,
        &workspace,
        &aggregate,
        &e.event_type,
        &e.schema_version,
        &e.event_data,
        &stamp,
        &device,
        &version,
        &e.created_at,
    ];
    let result = match seq {
        Some(seq) => {
            let seq = seq as i64;
            let mut all: Vec<&dyn rusqlite::ToSql> = vec![&seq];
            all.extend(columns);
            all.push(&user);
            insert.execute(all.as_slice())
        }
        None => insert.execute(columns.as_slice()),
    };
    result
        .map(|_| ())
        .map_err(|err| duplicate_or(err, e.event_id))
}

fn duplicate_or(err: rusqlite::Error, event_id: EventId) -> LogError {
    match &err {
        rusqlite::Error::SqliteFailure(e, Some(msg))
            if e.code == rusqlite::ErrorCode::ConstraintViolation && msg.contains("event_id") =>
        {
            LogError::DuplicateEvent { event_id }
        }
        _ => LogError::Sql(err),
    }
}

/// Appends `events` in `tx`, checking versions and assigning each workspace's next seqs.
fn append_in(
    tx: &Connection,
    clock: &mut Clock,
    events: &[StoredEvent],
    user: &dyn Fn(usize) -> Option<String>,
) -> Result<Vec<Appended>, LogError> {
    let mut versions = versions_in(tx, events.iter().map(|e| e.aggregate_id))?;
    let mut heads: HashMap<WorkspaceId, u64> = HashMap::new();
    let mut appended = Vec::with_capacity(events.len());
    let mut insert = tx.prepare_cached(&format!(
        "INSERT INTO events (seq, {COLUMNS}, user_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
    ))?;
    for (i, e) in events.iter().enumerate() {
        let current = versions.get(&e.aggregate_id).copied().unwrap_or(0);
        if e.version != current + 1 {
            return Err(LogError::VersionConflict {
                aggregate: e.aggregate_id,
                expected: e.version.saturating_sub(1),
                actual: current,
            });
        }
        versions.insert(e.aggregate_id, e.version);
        let seq = match heads.get(&e.workspace_id) {
            Some(h) => h + 1,
            None => head_in(tx, e.workspace_id)? + 1,
        };
        heads.insert(e.workspace_id, seq);
        insert_row(&mut insert, Some(seq), e, user(i).as_deref())?;
        clock.observe(&e.hlc_timestamp);
        appended.push(Appended {
            event_id: e.event_id,
            seq,
        });
    }
    for (workspace, head) in heads {
        set_head(tx, workspace, head)?;
    }
    Ok(appended)
}

/// The event data with, for every stamp of its `bases` that `renamed` maps, the new stamp
/// added (the old one stays: DESIGN.md rule 8). `None` when nothing changes.
fn union_bases(data: &str, renamed: &HashMap<Stamp, Stamp>) -> Option<String> {
    let mut value = serde_json::from_str::<serde_json::Value>(data).ok()?;
    let bases = value.get_mut("bases")?.as_array_mut()?;
    let mut added = Vec::new();
    for base in bases.iter() {
        let Some(old) = base.as_str().and_then(|t| t.parse::<Stamp>().ok()) else {
            continue;
        };
        if let Some(new) = renamed.get(&old) {
            let new = serde_json::Value::String(new.encode());
            if !bases.contains(&new) && !added.contains(&new) {
                added.push(new);
            }
        }
    }
    if added.is_empty() {
        return None;
    }
    bases.extend(added);
    Some(tandem_events::event::canonical_json(&value))
}

/// Whether `stored` is a copy of `ours` (same event, as sent before a clock correction): same
/// author, aggregate and type, the same data but for `bases` (which may have gained aliases).
fn is_copy_of(stored: &StoredEvent, ours: &StoredEvent) -> bool {
    let without_bases = |data: &str| {
        let mut value = serde_json::from_str::<serde_json::Value>(data).ok()?;
        if let Some(map) = value.as_object_mut() {
            map.remove("bases");
        }
        Some(value)
    };
    stored.device_id == ours.device_id
        && stored.aggregate_id == ours.aggregate_id
        && stored.workspace_id == ours.workspace_id
        && stored.event_type == ours.event_type
        && stored.schema_version == ours.schema_version
        && without_bases(&stored.event_data).is_some()
        && without_bases(&stored.event_data) == without_bases(&ours.event_data)
}

/// Retires `stamp` in `tx` and in `clock` (never issued again).
fn retire_in(tx: &Connection, clock: &mut Clock, stamp: Stamp) -> Result<(), LogError> {
    tx.prepare_cached("INSERT OR IGNORE INTO retired_stamps (hlc) VALUES (?1)")?
        .execute([stamp.encode()])?;
    clock.retire([stamp]);
    Ok(())
}

fn set_aside_in(
    tx: &Connection,
    e: &StoredEvent,
    code: &str,
    reason: &str,
) -> Result<(), LogError> {
    let mut insert = tx.prepare_cached(&format!(
        "INSERT OR REPLACE INTO set_aside ({COLUMNS}, code, reason) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
    ))?;
    insert.execute(params![
        e.event_id.to_string(),
        e.workspace_id.to_string(),
        e.aggregate_id.to_string(),
        e.event_type,
        e.schema_version,
        e.event_data,
        e.hlc_timestamp.encode(),
        e.device_id.to_string(),
        e.version as i64,
        e.created_at,
        code,
        reason
    ])?;
    Ok(())
}

fn set_aside_copy(tx: &Connection, event_id: EventId) -> Result<Option<StoredEvent>, LogError> {
    let mut stmt = tx.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM set_aside WHERE event_id = ?1"
    ))?;
    let mut rows = stmt.query([event_id.to_string()])?;
    match rows.next()? {
        Some(row) => Ok(Some(read_event(row)??)),
        None => Ok(None),
    }
}

/// Applies [`union_bases`] to every outbox event in `tx`; returns the aggregates changed.
fn union_bases_in(
    tx: &Connection,
    renamed: &HashMap<Stamp, Stamp>,
) -> Result<Vec<AggregateId>, LogError> {
    if renamed.is_empty() {
        return Ok(vec![]);
    }
    let rows: Vec<(String, String, String)> = tx
        .prepare_cached("SELECT event_id, aggregate_id, event_data FROM outbox ORDER BY recorded")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    let mut update = tx.prepare_cached("UPDATE outbox SET event_data = ?2 WHERE event_id = ?1")?;
    let mut touched = Vec::new();
    for (event_id, aggregate, data) in rows {
        if let Some(data) = union_bases(&data, renamed) {
            update.execute(params![event_id, data])?;
            let id: AggregateId = parse_id(&aggregate)?;
            if !touched.contains(&id) {
                touched.push(id);
            }
        }
    }
    Ok(touched)
}

/// Gives every outbox event a version after its aggregate's greatest version in the log, in
/// recording order, keeping everything else (ids, content, stamps, order).
fn rebase_outbox(conn: &Connection) -> Result<(), LogError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT recorded, {COLUMNS} FROM outbox ORDER BY recorded"
    ))?;
    let rows: Vec<(i64, String, i64)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get::<_, String>(3)?, r.get(9)?)))?
        .collect::<Result<_, _>>()?;
    drop(stmt);
    let mut next: HashMap<String, i64> = HashMap::new();
    let mut changes = Vec::new();
    for (recorded, aggregate, version) in rows {
        let v = match next.get(&aggregate) {
            Some(v) => *v,
            None => conn
                .prepare_cached(
                    "SELECT coalesce(max(version), 0) + 1 FROM events WHERE aggregate_id = ?1",
                )?
                .query_row([&aggregate], |r| r.get(0))?,
        };
        next.insert(aggregate, v + 1);
        if v != version {
            changes.push((recorded, v));
        }
    }
    if changes.is_empty() {
        return Ok(());
    }
    // Two passes, so that no intermediate state breaks UNIQUE (aggregate_id, version).
    let mut park = conn.prepare_cached(
        "UPDATE outbox SET version = version + 1000000000000 WHERE recorded = ?1",
    )?;
    for (recorded, _) in &changes {
        park.execute([recorded])?;
    }
    let mut set = conn.prepare_cached("UPDATE outbox SET version = ?2 WHERE recorded = ?1")?;
    for (recorded, v) in &changes {
        set.execute([recorded, v])?;
    }
    Ok(())
}

fn version_in(conn: &Connection, aggregate: AggregateId) -> Result<u64, LogError> {
    let id = aggregate.to_string();
    let v: i64 = conn
        .prepare_cached(
            "SELECT max(coalesce((SELECT max(version) FROM events WHERE aggregate_id = ?1), 0), \
                        coalesce((SELECT max(version) FROM outbox WHERE aggregate_id = ?1), 0))",
        )?
        .query_row([&id], |r| r.get(0))?;
    Ok(v as u64)
}

/// [`version_in`] of each of `ids`, in one statement (a push's aggregates: one read, not one
/// per event); an aggregate without events is 0.
fn versions_in(
    conn: &Connection,
    ids: impl Iterator<Item = AggregateId>,
) -> Result<HashMap<AggregateId, u64>, LogError> {
    per_aggregate(
        conn,
        ids,
        "SELECT a.value, max(coalesce((SELECT max(version) FROM events WHERE aggregate_id = a.value), 0), \
                            coalesce((SELECT max(version) FROM outbox WHERE aggregate_id = a.value), 0)) \
         FROM json_each(?1) a",
    )
}

/// One number for each of `ids` (each once), in one statement: `sql` reads the ids as the JSON
/// array `?1` (`json_each(?1) a`) and yields `(a.value, number)` rows.
fn per_aggregate(
    conn: &Connection,
    ids: impl Iterator<Item = AggregateId>,
    sql: &str,
) -> Result<HashMap<AggregateId, u64>, LogError> {
    let mut distinct: Vec<String> = ids.map(|id| id.to_string()).collect();
    distinct.sort_unstable();
    distinct.dedup();
    let list = serde_json::to_string(&distinct)
        .map_err(|e| LogError::Corrupt(format!("cannot list aggregate ids: {e}")))?;
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map([list], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
    })?;
    let mut out = HashMap::with_capacity(distinct.len());
    for row in rows {
        let (id, n) = row?;
        out.insert(parse_id(&id)?, n.max(0) as u64);
    }
    Ok(out)
}

fn head_in(conn: &Connection, workspace: WorkspaceId) -> Result<u64, LogError> {
    let h: Option<i64> = conn
        .prepare_cached("SELECT head FROM heads WHERE workspace_id = ?1")?
        .query_row([workspace.to_string()], |r| r.get(0))
        .optional()?;
    Ok(h.unwrap_or(0).max(0) as u64)
}

/// The log's secondary indexes, one statement list for the open and for the end of a first
/// download (which drops them while it writes).
const SECONDARY_INDEXES: &str = include_str!("sql/events_indexes.sql");

/// The schema of events.db this build writes, in `PRAGMA user_version` (0: a file from before
/// it was recorded, which [`migrate`] brings up to date). A file of a greater one was written by
/// a newer build: it is refused, never opened and changed by an older one.
pub const LOG_SCHEMA: i64 = 2;

/// The schema `conn`'s file records; [`LogError::NewerSchema`] past this build's.
fn check_schema(conn: &Connection) -> Result<i64, LogError> {
    let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if found > LOG_SCHEMA {
        return Err(LogError::NewerSchema {
            found,
            known: LOG_SCHEMA,
        });
    }
    Ok(found)
}

/// Brings an events.db made by an older build to this one's schema (before `events.sql`).
fn migrate(conn: &Connection) -> Result<(), LogError> {
    // The outbox's recording order was called `position`, like a todo's sort key.
    let old_name: bool = conn.query_row(
        "SELECT count(*) > 0 FROM pragma_table_info('outbox') WHERE name = 'position'",
        [],
        |r| r.get(0),
    )?;
    if old_name {
        conn.execute_batch("ALTER TABLE outbox RENAME COLUMN position TO recorded")?;
    }
    // Logs from before accounts have no `user_id` (adding a column rewrites no event).
    let events_table: bool = conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_schema WHERE type = 'table' AND name = 'events'",
        [],
        |r| r.get(0),
    )?;
    if events_table && !has_user_column(conn)? {
        conn.execute_batch("ALTER TABLE events ADD COLUMN user_id TEXT")?;
    }
    Ok(())
}

fn has_user_column(conn: &Connection) -> Result<bool, LogError> {
    Ok(conn.query_row(
        "SELECT count(*) > 0 FROM pragma_table_info('events') WHERE name = 'user_id'",
        [],
        |r| r.get(0),
    )?)
}

/// Records `workspace`'s new head in the append transaction.
fn set_head(conn: &Connection, workspace: WorkspaceId, head: u64) -> Result<(), LogError> {
    conn.prepare_cached(
        "INSERT INTO heads (workspace_id, head) VALUES (?1, ?2) \
         ON CONFLICT (workspace_id) DO UPDATE SET head = ?2",
    )?
    .execute(params![workspace.to_string(), head as i64])?;
    Ok(())
}

fn save_clock(conn: &Connection, clock: &Clock) -> Result<(), LogError> {
    let s = clock.state();
    conn.prepare_cached(
        "INSERT INTO hlc_state (id, node, last_ms, last_counter, offset_ms) VALUES (1, ?1, ?2, ?3, ?4) \
         ON CONFLICT (id) DO UPDATE SET last_ms = ?2, last_counter = ?3, offset_ms = ?4",
    )?
    .execute(params![s.node.to_string(), s.last_ms as i64, s.last_counter, s.offset_ms])?;
    Ok(())
}

fn parse_stamp(text: &str) -> Result<Stamp, LogError> {
    text.parse().map_err(|e| LogError::Corrupt(format!("{e}")))
}

fn parse_id<T: std::str::FromStr>(text: &str) -> Result<T, LogError>
where
    T::Err: std::fmt::Display,
{
    text.parse()
        .map_err(|e: T::Err| LogError::Corrupt(e.to_string()))
}

/// Reads the first ten columns (COLUMNS) of a row. The outer error is SQLite's, the inner one
/// a corrupt value. Ids and stamps are parsed from borrowed text (no copies).
fn read_event(r: &Row<'_>) -> rusqlite::Result<Result<StoredEvent, LogError>> {
    let text = |i: usize| -> rusqlite::Result<&str> {
        r.get_ref(i)?.as_str().map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
        })
    };
    let event_type = r.get::<_, String>(3)?;
    let schema_version: u32 = r.get(4)?;
    let event_data = r.get::<_, String>(5)?;
    let version: i64 = r.get(8)?;
    let created_at: i64 = r.get(9)?;
    let (event_id, workspace_id, aggregate_id, hlc, device_id) =
        (text(0)?, text(1)?, text(2)?, text(6)?, text(7)?);
    Ok((|| {
        Ok(StoredEvent {
            event_id: parse_id(event_id)?,
            workspace_id: parse_id(workspace_id)?,
            aggregate_id: parse_id(aggregate_id)?,
            event_type,
            schema_version,
            event_data,
            hlc_timestamp: parse_stamp(hlc)?,
            device_id: parse_id(device_id)?,
            version: u64::try_from(version)
                .map_err(|_| LogError::Corrupt(format!("version {version}")))?,
            created_at,
        })
    })())
}

fn collect(
    rows: impl Iterator<Item = rusqlite::Result<Result<StoredEvent, LogError>>>,
) -> Result<Vec<StoredEvent>, LogError> {
    let mut out = Vec::new();
    for row in rows {
        out.push(row??);
    }
    Ok(out)
}
