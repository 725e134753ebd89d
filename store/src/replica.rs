//! A device's replica: its event log (with outbox) and views, and the command path of
//! DESIGN.md rule 16 — decide against the current state, stamp, record in the outbox in one
//! transaction, then project. Used by the browser worker and by native clients alike.

use std::path::Path;

use tandem_events::decide::{
    decide_device, decide_list, decide_todo, DeviceCommand, DomainError, ListCommand, TodoCommand,
};
use tandem_events::domain::DomainEvent;
use tandem_events::event::{Event, StoredEvent};
use tandem_events::ids::DeviceId;
use tandem_events::ids::{AggregateId, EventId, WorkspaceId};
use tandem_events::state::{self, Aggregate};
use tandem_events::undo::{compensate, UndoError};

use crate::log::{EventLog, LogError, PhysicalClock, UndoBook};
use crate::views::{ListItem, Progress, Views, ViewsError};

/// The id generator, injected (UUIDs; v7 or v4, the caller's choice).
pub type IdSource = Box<dyn FnMut() -> uuid::Uuid + Send>;

#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error(transparent)]
    Undo(#[from] UndoError),
    #[error("there is nothing to undo")]
    NothingToUndo,
    #[error("there is nothing to redo")]
    NothingToRedo,
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Views(#[from] ViewsError),
}

impl ReplicaError {
    /// Whether retrying cannot help: a database file that is not one (damaged, or something
    /// else under its name) or is corrupt. Busy, locked, full or I/O errors may pass; these do
    /// not, so the device says what happened instead of trying forever.
    pub fn is_damaged_file(&self) -> bool {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(error) = cause {
            if let Some(sql) = error.downcast_ref::<rusqlite::Error>() {
                if matches!(
                    sql.sqlite_error_code(),
                    Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt)
                ) {
                    return true;
                }
            }
            cause = error.source();
        }
        false
    }

    /// Whether the log's file was written by a newer build (retrying cannot help either: the
    /// newer build can open it).
    pub fn is_newer_file(&self) -> bool {
        matches!(self, ReplicaError::Log(LogError::NewerSchema { .. }))
    }
}

/// Counts for a status line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    pub lists: u64,
    pub todos: u64,
    /// Events in the log (accepted by the server).
    pub accepted: u64,
    /// Events in the outbox (not yet accepted).
    pub pending: u64,
}

/// One aggregate's part of a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    List(AggregateId, ListCommand),
    Todo(AggregateId, TodoCommand),
    /// This device's profile in the workspace (its aggregate: [`AggregateId::device`]).
    Device(DeviceCommand),
}

pub struct Replica {
    log: EventLog,
    views: Views,
    ids: IdSource,
}

impl Replica {
    /// Opens (creating if needed) `events.db` and `views.db`, rebuilding the views if their
    /// projection version changed, then catching up with the log and the outbox.
    pub fn open(
        events_path: impl AsRef<Path>,
        views_path: impl AsRef<Path>,
        device: DeviceId,
        physical: PhysicalClock,
        ids: IdSource,
        progress: impl FnMut(Progress),
    ) -> Result<Self, ReplicaError> {
        let log = EventLog::open(events_path, device, physical)?;
        let (views, _) = Views::open_current(views_path, &log, progress)?;
        Self::assemble(log, views, ids)
    }

    /// A replica whose databases live in memory only: for a browser window without any file
    /// storage (DESIGN.md rule 18's exception). Everything works, and is gone with the worker.
    pub fn open_in_memory(
        device: DeviceId,
        physical: PhysicalClock,
        ids: IdSource,
    ) -> Result<Self, ReplicaError> {
        let memory = || rusqlite::Connection::open_in_memory().map_err(LogError::Sql);
        let log = EventLog::with_connection(memory()?, device, physical)?;
        let (views, _) = Views::with_connection(memory()?, &log, |_| {})?;
        Self::assemble(log, views, ids)
    }

    /// A replica over an opened log and views (in-memory ones in simulations).
    pub fn assemble(log: EventLog, mut views: Views, ids: IdSource) -> Result<Self, ReplicaError> {
        views.catch_up(&log, 1_000)?;
        // Outbox events recorded before a crash between the two transactions take effect now
        // (applying is idempotent).
        views.apply_outbox(&log, &log.outbox()?)?;
        Ok(Self { log, views, ids })
    }

    pub fn log(&self) -> &EventLog {
        &self.log
    }

    pub fn views(&self) -> &Views {
        &self.views
    }

    /// The next command's views stay uncommitted until [`Self::release_views`] (see
    /// [`Views::hold`]): a device answers its page as soon as the outbox commit is durable and
    /// commits the views after, before it answers anything else.
    pub fn hold_views(&mut self) {
        self.views.hold();
    }

    /// Commits the views [`Self::hold_views`] kept open. When that fails, the views are made
    /// again from the outbox (as at an open), so they never lack a recorded command.
    pub fn release_views(&mut self) -> Result<(), ReplicaError> {
        if let Err(e) = self.views.release() {
            let outbox = self.log.outbox()?;
            self.views.apply_outbox(&self.log, &outbox)?;
            return Err(e.into());
        }
        Ok(())
    }

    pub fn execute_list(
        &mut self,
        workspace: WorkspaceId,
        id: AggregateId,
        command: ListCommand,
    ) -> Result<Vec<StoredEvent>, ReplicaError> {
        self.execute(workspace, vec![Step::List(id, command)], None)
    }

    pub fn execute_todo(
        &mut self,
        workspace: WorkspaceId,
        id: AggregateId,
        command: TodoCommand,
    ) -> Result<Vec<StoredEvent>, ReplicaError> {
        self.execute(workspace, vec![Step::Todo(id, command)], None)
    }

    /// Decides every step against the state as it is, then records all their events in one
    /// transaction — with the command's id and the reply made from the number of events, when
    /// `command` is given (DESIGN.md rule 18) — and projects them. A step the domain refuses
    /// refuses the whole command: nothing is recorded. Each step is on its own aggregate.
    pub fn execute(
        &mut self,
        workspace: WorkspaceId,
        steps: Vec<Step>,
        command: Option<(&str, &dyn Fn(usize) -> String)>,
    ) -> Result<Vec<StoredEvent>, ReplicaError> {
        self.execute_undoable(workspace, steps, command, None)
    }

    /// [`Self::execute`], pushing the command on the workspace's undo history as one step
    /// named `undo_label` when given (and when it recorded events).
    pub fn execute_undoable(
        &mut self,
        workspace: WorkspaceId,
        steps: Vec<Step>,
        command: Option<(&str, &dyn Fn(usize) -> String)>,
        undo_label: Option<String>,
    ) -> Result<Vec<StoredEvent>, ReplicaError> {
        let mut decided = Vec::with_capacity(steps.len());
        for step in steps {
            let (id, bodies) = match step {
                Step::List(id, command) => (id, decide_list(id, &self.state(id)?.list, command)?),
                Step::Device(command) => {
                    let id = AggregateId::device(workspace, self.log.device_id());
                    (id, decide_device(&self.state(id)?.device, command)?)
                }
                Step::Todo(id, command) => {
                    let list = match &command {
                        TodoCommand::Create { list_id, .. }
                        | TodoCommand::MoveToList { list_id, .. } => {
                            Some(self.state(*list_id)?.list)
                        }
                        _ => None,
                    };
                    let todo = self.state(id)?.todo;
                    (id, decide_todo(id, &todo, list.as_ref(), command)?)
                }
            };
            if !bodies.is_empty() {
                decided.push((id, bodies));
            }
        }
        let book = undo_label.map(|label| UndoBook::Push { workspace, label });
        self.record(workspace, decided, command, book.as_ref())
    }

    /// Undoes this device's newest undoable action in `workspace` (DESIGN.md rule 19): records
    /// the events that take back each of its events (`tandem_events::undo::compensate`), in one
    /// transaction with the command and the undo history. Refused, recording nothing, when
    /// there is nothing to undo or any part cannot be undone. Returns the step's label and how
    /// many events were recorded.
    pub fn undo(
        &mut self,
        workspace: WorkspaceId,
        command: Option<(&str, &dyn Fn(usize) -> String)>,
    ) -> Result<(String, usize), ReplicaError> {
        self.take_back(workspace, command, false)
    }

    /// Redoes the action undone last: takes back its undo, the same way.
    pub fn redo(
        &mut self,
        workspace: WorkspaceId,
        command: Option<(&str, &dyn Fn(usize) -> String)>,
    ) -> Result<(String, usize), ReplicaError> {
        self.take_back(workspace, command, true)
    }

    /// An undo (the newest done step's events) or a redo (the oldest undone step's undo).
    fn take_back(
        &mut self,
        workspace: WorkspaceId,
        command: Option<(&str, &dyn Fn(usize) -> String)>,
        redo: bool,
    ) -> Result<(String, usize), ReplicaError> {
        let (step, events, book) = if redo {
            let step = self
                .log
                .redo_top(workspace)?
                .ok_or(ReplicaError::NothingToRedo)?;
            let book = UndoBook::Redone { step: step.step };
            (step.step, step.undo_events, (step.label, book))
        } else {
            let step = self
                .log
                .undo_top(workspace)?
                .ok_or(ReplicaError::NothingToUndo)?;
            let book = UndoBook::Undone { step: step.step };
            (step.step, step.events, (step.label, book))
        };
        let decided = self.compensations(&events).inspect_err(|e| {
            // A step that cannot be taken back (changed since, set aside) is forgotten, so
            // the next undo reaches the step before it instead of being refused forever.
            if matches!(e, ReplicaError::Undo(_)) {
                let _ = self.log.forget_undo_step(step);
            }
        })?;
        let (label, book) = book;
        let recorded = self.record(workspace, decided, command, Some(&book))?;
        Ok((label, recorded.len()))
    }

    /// The labels of what an undo and a redo would take back now.
    pub fn undo_labels(
        &self,
        workspace: WorkspaceId,
    ) -> Result<(Option<String>, Option<String>), ReplicaError> {
        Ok((
            self.log.undo_top(workspace)?.map(|s| s.label),
            self.log.redo_top(workspace)?.map(|s| s.label),
        ))
    }

    /// The events that take back `events` (newest first), each decided on its item's events
    /// as they are now, grouped by item.
    fn compensations(
        &self,
        events: &[EventId],
    ) -> Result<Vec<(AggregateId, Vec<DomainEvent>)>, ReplicaError> {
        let mut decided: Vec<(AggregateId, Vec<DomainEvent>)> = Vec::new();
        for id in events.iter().rev() {
            let undone = self
                .log
                .event(*id)?
                .ok_or(ReplicaError::Undo(UndoError::Unknown))?
                .decode()
                .map_err(|_| ReplicaError::Undo(UndoError::Unknown))?;
            let history: Vec<Event> = self
                .log
                .aggregate_events(undone.aggregate_id)?
                .iter()
                .filter_map(|e| e.decode().ok())
                .collect();
            let bodies = compensate(&history, &undone)?;
            // Taking back a new list would take other devices' to-dos in it to the Trash.
            if matches!(undone.body, DomainEvent::ListCreated(_)) {
                if let Some(device) = self
                    .views
                    .other_authors_in_list(undone.aggregate_id, undone.device_id)?
                {
                    return Err(ReplicaError::Undo(UndoError::ChangedSince {
                        what: "list",
                        device,
                    }));
                }
            }
            match decided.iter_mut().find(|(a, _)| *a == undone.aggregate_id) {
                Some((_, list)) => list.extend(bodies),
                None => decided.push((undone.aggregate_id, bodies)),
            }
        }
        Ok(decided)
    }

    /// Records a command that decided nothing because the domain refused it, with its reply, so
    /// the same command id is answered the same way again.
    pub fn record_refusal(&mut self, command_id: &str, reply: &str) -> Result<(), ReplicaError> {
        Ok(self.log.record_command(&[], Some((command_id, reply)))?)
    }

    /// The reply recorded for a command id, if that command has run on this device.
    pub fn command_reply(&self, command_id: &str) -> Result<Option<String>, ReplicaError> {
        Ok(self.log.command_reply(command_id)?)
    }

    /// An item's events, described for its history (oldest first), each with whether it is
    /// still in the outbox (pending) rather than accepted by the server.
    pub fn history(
        &self,
        id: AggregateId,
    ) -> Result<Vec<(tandem_events::history::Entry, bool)>, ReplicaError> {
        let stored = self.log.aggregate_events(id)?;
        let pending: std::collections::HashSet<EventId> =
            self.log.outbox_ids(id)?.into_iter().collect();
        let events: Vec<Event> = stored.iter().filter_map(|e| e.decode().ok()).collect();
        Ok(tandem_events::history::describe(&events)
            .into_iter()
            .map(|entry| {
                let waiting = pending.contains(&entry.event_id);
                (entry, waiting)
            })
            .collect())
    }

    /// A list as it was at `at_ms` (the physical time of the stamps): the fold of every event
    /// of `workspace` stamped up to then, replayed from the log and the outbox one aggregate at
    /// a time. The list's row (if it existed, deleted or not) and its live todos then, in
    /// display order.
    pub fn list_as_of(
        &self,
        workspace: WorkspaceId,
        list: AggregateId,
        at_ms: u64,
    ) -> Result<(Option<state::ListRow>, Vec<state::TodoRow>), ReplicaError> {
        let mut list_row = None;
        let mut todos = Vec::new();
        let mut current: Option<(AggregateId, Aggregate)> = None;
        let mut flush = |current: &mut Option<(AggregateId, Aggregate)>| {
            if let Some((id, state)) = current.take() {
                let rows = state.rows(id);
                if id == list {
                    list_row = rows.list;
                }
                if let Some(t) = rows.todo.filter(|t| t.list_id == list && !t.deleted) {
                    todos.push(t);
                }
            }
        };
        self.log.for_each_by_aggregate(|stored| {
            if stored.workspace_id != workspace || stored.hlc_timestamp.ms > at_ms {
                return Ok(());
            }
            if current
                .as_ref()
                .is_none_or(|(id, _)| *id != stored.aggregate_id)
            {
                flush(&mut current);
                current = Some((stored.aggregate_id, Aggregate::default()));
            }
            if let (Ok(event), Some((_, state))) = (stored.decode(), current.as_mut()) {
                state.apply(&event);
            }
            Ok(())
        })?;
        flush(&mut current);
        todos.sort_by(|a, b| (&a.position, a.todo_id).cmp(&(&b.position, b.todo_id)));
        Ok((list_row, todos))
    }

    /// The inspector's console: one read-only statement on events.db or views.db, a page of
    /// its rows (see [`crate::inspect::query`]).
    pub fn query(
        &mut self,
        views: bool,
        sql: &str,
        offset: u64,
    ) -> Result<tandem_protocol::data::QueryPage, crate::inspect::InspectError> {
        let conn = if views {
            self.views.connection_mut()
        } else {
            self.log.connection_mut()
        };
        crate::inspect::query(conn, sql, offset, crate::inspect::QUERY_BUDGET)
    }

    /// Drops the views and replays the log, then the outbox, reporting progress; returns how
    /// many events were replayed.
    pub fn rebuild_views(&mut self, progress: impl FnMut(Progress)) -> Result<u64, ReplicaError> {
        let events = self.log.len()? + self.log.outbox_len()? as u64;
        self.views.rebuild(&self.log, progress)?;
        Ok(events)
    }

    /// Every event of this device's log (with its seq) and outbox (without), as JSON lines of
    /// the wire form, and how many.
    pub fn export(&self) -> Result<(String, u64), ReplicaError> {
        let mut out = String::new();
        let mut n = 0u64;
        for (workspace, head) in self.log.heads()? {
            let mut after = 0;
            while after < head {
                let page = self.log.events_after(workspace, after, 1_000)?;
                let Some(last) = page.last() else { break };
                after = last.0;
                for (seq, e) in &page {
                    out.push_str(
                        &serde_json::to_string(&crate::wire::logged(*seq, e)).unwrap_or_default(),
                    );
                    out.push('\n');
                    n += 1;
                }
            }
        }
        for e in self.log.outbox()? {
            out.push_str(&serde_json::to_string(&crate::wire::to_wire(&e)).unwrap_or_default());
            out.push('\n');
            n += 1;
        }
        Ok((out, n))
    }

    /// An aggregate's state as commands decide on it: folded from the log and the outbox as
    /// they are now, never from a cache that could lag them (stale bases would make false
    /// conflicts).
    pub fn state(&self, id: AggregateId) -> Result<Aggregate, ReplicaError> {
        Ok(crate::views::fold(&self.log.aggregate_events(id)?))
    }

    /// Envelopes, records (one transaction, with the command) and projects the decided events.
    fn record(
        &mut self,
        workspace: WorkspaceId,
        decided: Vec<(AggregateId, Vec<DomainEvent>)>,
        command: Option<(&str, &dyn Fn(usize) -> String)>,
        undo: Option<&UndoBook>,
    ) -> Result<Vec<StoredEvent>, ReplicaError> {
        if decided.is_empty() && command.is_none() {
            return Ok(vec![]);
        }
        let device = self.log.device_id();
        let created_at = i64::try_from(self.log.now_ms()).unwrap_or(i64::MAX);
        // A page's command (its id a UUID) names its events after itself.
        let named = command.and_then(|(id, _)| uuid::Uuid::parse_str(id).ok());
        let mut batches = Vec::with_capacity(decided.len());
        let mut all = Vec::new();
        for (aggregate, bodies) in decided {
            let expected = self.log.version(aggregate)?;
            let start = all.len();
            for (i, body) in bodies.into_iter().enumerate() {
                let index = u32::try_from(all.len()).unwrap_or(u32::MAX);
                all.push(
                    Event {
                        event_id: match named {
                            Some(command) => EventId::of_command(command, index),
                            None => EventId::from_uuid((self.ids)()),
                        },
                        workspace_id: workspace,
                        aggregate_id: aggregate,
                        hlc: self.log.stamp()?,
                        device_id: device,
                        version: expected + 1 + i as u64,
                        created_at,
                        body,
                    }
                    .to_stored(),
                );
            }
            batches.push((aggregate, expected, start..all.len()));
        }
        let slices: Vec<(AggregateId, u64, &[StoredEvent])> = batches
            .iter()
            .map(|(a, v, range)| (*a, *v, &all[range.clone()]))
            .collect();
        let reply = command.map(|(id, reply)| (id, reply(all.len())));
        self.log.record_undoable(
            &slices,
            reply.as_ref().map(|(id, r)| (*id, r.as_str())),
            undo,
        )?;
        // Committed: the command has happened whatever the views do now (its reply is success,
        // so a retry never records it twice). Views that failed to take it are repaired by the
        // next refresh, or at the next open, which applies the outbox again.
        if self.views.apply_outbox(&self.log, &all).is_err() {
            let touched: Vec<AggregateId> = batches.iter().map(|(a, _, _)| *a).collect();
            let _ = self.views.refresh(&self.log, &touched);
        }
        Ok(all)
    }

    /// How many events the page command `command_id` recorded, when this store holds them (in
    /// its log or outbox) though not the command's own record: a store that replaced another
    /// (in memory) and pulled them. `None`: not here (or not a page command).
    pub fn command_events(&self, command_id: &str) -> Result<Option<usize>, ReplicaError> {
        let Ok(command) = uuid::Uuid::parse_str(command_id) else {
            return Ok(None);
        };
        let mut n = 0u32;
        while self.log.event(EventId::of_command(command, n))?.is_some() {
            n += 1;
        }
        Ok((n > 0).then_some(n as usize))
    }

    /// The greatest seq of `workspace` this device holds (its pull cursor).
    pub fn cursor(&self, workspace: WorkspaceId) -> Result<u64, ReplicaError> {
        Ok(self.log.head(workspace)?)
    }

    /// The first `limit` outbox events, in recording order.
    pub fn pending(&self, limit: usize) -> Result<Vec<StoredEvent>, ReplicaError> {
        Ok(self.log.outbox_first(limit)?)
    }

    /// The outbox size.
    pub fn pending_len(&self) -> Result<usize, ReplicaError> {
        Ok(self.log.outbox_len()?)
    }

    /// The outbox events of one workspace.
    pub fn pending_len_in(&self, workspace: WorkspaceId) -> Result<usize, ReplicaError> {
        Ok(self.log.outbox_len_in(workspace)?)
    }

    /// Stores events the server accepted (pulled ones and acknowledgements of ours), rebases
    /// the outbox and projects (DESIGN.md rules 5 and 17).
    pub fn accept(
        &mut self,
        pulled: &[(u64, StoredEvent)],
        own: &[(EventId, u64)],
    ) -> Result<usize, ReplicaError> {
        self.accept_by(pulled, own, &std::collections::HashMap::new())
    }

    /// [`Self::accept`], recording who pushed each event (`users`, by event id).
    pub fn accept_by(
        &mut self,
        pulled: &[(u64, StoredEvent)],
        own: &[(EventId, u64)],
        users: &std::collections::HashMap<EventId, String>,
    ) -> Result<usize, ReplicaError> {
        let taken = self.log.accept_by(pulled, own, users)?;
        self.views.refresh(&self.log, &taken.changed)?;
        self.project()?;
        Ok(taken.added)
    }

    /// Stores pulled events (as [`Self::accept`]) and projects them only when `project`;
    /// otherwise [`Self::project`] must follow (the driver calls it after the last page, and
    /// before reporting a failure, so the views never lag the log silently).
    pub fn store_pulled(
        &mut self,
        pulled: &[(u64, StoredEvent)],
        project: bool,
    ) -> Result<usize, ReplicaError> {
        self.store_pulled_by(pulled, &std::collections::HashMap::new(), project)
    }

    /// [`Self::store_pulled`], recording who pushed each event (`users`: by event id, as the
    /// pull said).
    pub fn store_pulled_by(
        &mut self,
        pulled: &[(u64, StoredEvent)],
        users: &std::collections::HashMap<tandem_events::ids::EventId, String>,
        project: bool,
    ) -> Result<usize, ReplicaError> {
        // A first download of several pages writes the log without its secondary indexes and
        // builds them once, after its last page.
        if !project && self.log.is_empty()? {
            self.log.drop_secondary_indexes()?;
        }
        let taken = self.log.accept_by(pulled, &[], users)?;
        if project {
            self.log.create_secondary_indexes()?;
        }
        // Outbox copies replaced by their stored copies: recompute those aggregates now (their
        // views were made from the outbox copy, which is gone).
        self.views.refresh(&self.log, &taken.changed)?;
        if project {
            self.project()?;
        }
        Ok(taken.added)
    }

    /// Brings the views up to the log (a no-op when they are).
    pub fn project(&mut self) -> Result<u64, ReplicaError> {
        Ok(self.views.catch_up(&self.log, 1_000)?)
    }

    /// Re-estimates the clock's offset from a server answer's time (DESIGN.md rule 8).
    pub fn observe_server_time(&self, server_ms: u64) {
        self.log.observe_server_time(server_ms);
    }

    /// The clock correction of DESIGN.md rule 8 after CLOCK_DRIFT (see
    /// [`EventLog::correct_clock`]), then re-projects what it touched. Returns the aggregates
    /// whose events changed.
    pub fn correct_clock(
        &mut self,
        server_ms: u64,
        max_drift_ms: u64,
    ) -> Result<Vec<AggregateId>, ReplicaError> {
        let touched = self.log.correct_clock(server_ms, max_drift_ms)?;
        self.views.refresh(&self.log, &touched)?;
        Ok(touched)
    }

    /// Sets a refused outbox event aside (DESIGN.md rule 13) and re-projects its aggregate.
    pub fn set_aside(
        &mut self,
        event_id: EventId,
        code: &str,
        reason: &str,
    ) -> Result<AggregateId, ReplicaError> {
        let aggregate = self.log.set_aside(event_id, code, reason)?;
        self.views.refresh(&self.log, &[aggregate])?;
        Ok(aggregate)
    }

    /// Recovery from a restored server (docs/protocol.md, "A restored server"): `self` is a
    /// fresh replica (new files, same device) that has pulled the restored server's log; this
    /// re-records `old`'s own accepted events the restored log lacks, then `old`'s outbox —
    /// same ids, content and stamps, versions rebased — and takes over its clock and its count
    /// of owners (the next owning tab's epoch is past every earlier one's). The next push sends
    /// them. Returns how many were re-recorded.
    pub fn adopt(&mut self, old: &Replica) -> Result<usize, ReplicaError> {
        let mut events = old.log.own_accepted()?;
        events.extend(old.log.outbox()?);
        let added = self
            .log
            .adopt(&events, old.log.clock_state(), &old.log.retired()?)?;
        self.log
            .continue_ownership_from(old.log.ownership_epoch()?)?;
        self.views.apply_outbox(&self.log, &added)?;
        Ok(added.len())
    }

    /// The items that have an event set aside (their marks: DESIGN.md rule 13), with the
    /// server's code and reason, oldest first.
    pub fn set_aside_items(&self) -> Result<Vec<(AggregateId, String, String)>, ReplicaError> {
        Ok(self
            .log
            .set_aside_events()?
            .into_iter()
            .map(|(e, code, reason)| (e.aggregate_id, code, reason))
            .collect())
    }

    /// Live lists and todos, and the log and outbox sizes.
    pub fn summary(&self) -> Result<Summary, ReplicaError> {
        let count = |conn: &rusqlite::Connection, sql: &str| -> Result<u64, rusqlite::Error> {
            conn.query_row(sql, [], |r| r.get::<_, i64>(0))
                .map(|n| n.max(0) as u64)
        };
        let views = self.views.connection();
        let log = self.log.connection();
        let map = |e: rusqlite::Error| ReplicaError::Views(ViewsError::Sql(e));
        Ok(Summary {
            lists: count(views, "SELECT count(*) FROM lists WHERE NOT deleted").map_err(map)?,
            todos: count(
                views,
                "SELECT count(*) FROM todos t JOIN lists l ON l.list_id = t.list_id \
                 WHERE NOT t.deleted AND NOT l.deleted",
            )
            .map_err(map)?,
            accepted: count(log, "SELECT count(*) FROM events").map_err(map)?,
            pending: count(log, "SELECT count(*) FROM outbox").map_err(map)?,
        })
    }

    /// The live lists of a workspace, oldest first: `(id, name)`.
    pub fn lists(&self, workspace: WorkspaceId) -> Result<Vec<ListItem>, ReplicaError> {
        Ok(self.views.lists(workspace)?)
    }
}
