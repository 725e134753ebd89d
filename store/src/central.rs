//! The server's central log: push and pull over events.db, in the order of checks of
//! DESIGN.md rule 13 (the checks themselves: [`crate::push`]). One writer: the caller
//! serialises calls (the server holds it behind a mutex).

use std::path::Path;

use tandem_events::domain::{DomainEvent, ListCreated};
use tandem_events::event::Event;
use tandem_events::event::StoredEvent;
use tandem_events::ids::{AggregateId, DeviceId, EventId, WorkspaceId};
use tandem_protocol::sync::{
    ErrorCode, LoggedEvent, PullRequest, PullResponse, PushRequest, PushResponse, SyncError,
};

use crate::log::{EventLog, LogError, PhysicalClock};
use crate::views::{Progress, Views, ViewsError};
use crate::wire::logged_by;

/// The limits a push or pull is held to (CONTRACT.md defaults). The body size limit is the
/// HTTP layer's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncLimits {
    pub events_per_push: usize,
    /// Bytes of events in one pull answer, at most (one event always goes).
    pub pull_bytes: usize,
    pub event_data_bytes: usize,
    pub max_clock_drift_ms: u64,
    pub pull_limit_default: u64,
    pub pull_limit_max: u64,
}

impl Default for SyncLimits {
    fn default() -> Self {
        Self {
            events_per_push: 1_000,
            pull_bytes: 4 * 1024 * 1024,
            event_data_bytes: tandem_events::event::MAX_EVENT_DATA_BYTES,
            max_clock_drift_ms: 60_000,
            pull_limit_default: 500,
            pull_limit_max: 5_000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CentralError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Views(#[from] ViewsError),
}

/// Who pushes: the account recorded on the new events, and the quota they are held to (a
/// refusal is the error to answer, e.g. QUOTA_EXCEEDED). Both absent for the server's own
/// events and for tests without accounts.
#[derive(Default)]
pub struct Pusher<'a> {
    pub user: Option<&'a str>,
    #[allow(clippy::type_complexity)]
    pub quota: Option<&'a (dyn Fn(usize, usize) -> Result<(), SyncError> + Sync)>,
}

/// What a push did: the answer, and the events it appended (for the live broadcast).
#[derive(Debug, Clone, PartialEq)]
pub struct PushOutcome {
    pub response: PushResponse,
    pub workspace: WorkspaceId,
    pub appended: Vec<LoggedEvent>,
}

pub struct Central {
    log: EventLog,
    limits: SyncLimits,
    /// The log's identity, sent with every answer.
    log_id: String,
}

/// The server's views, projected from events.db through a read-only connection of their own,
/// so projecting never holds up the log's writer (WAL lets them run side by side).
pub struct ServerViews {
    reader: EventLog,
    views: Views,
}

impl ServerViews {
    /// Opens views.db in `data_dir` (rebuilding it if the projection version changed) over a
    /// read-only connection to its events.db, which must exist.
    pub fn open(data_dir: &Path, progress: impl FnMut(Progress)) -> Result<Self, CentralError> {
        let reader = EventLog::open_reader(data_dir.join("events.db"))?;
        let (views, _) = Views::open_current(data_dir.join("views.db"), &reader, progress)?;
        Ok(Self { reader, views })
    }

    /// The projector's step: applies the log's new events to the views; returns how many.
    pub fn project(&mut self) -> Result<u64, CentralError> {
        Ok(self.views.catch_up(&self.reader, 5_000)?)
    }

    pub fn views(&self) -> &Views {
        &self.views
    }

    /// The log as this reader sees it.
    pub fn log(&self) -> &EventLog {
        &self.reader
    }
}

impl Central {
    /// Opens (creating if needed) events.db in `data_dir`.
    pub fn open(
        data_dir: &Path,
        device: DeviceId,
        physical: PhysicalClock,
        limits: SyncLimits,
    ) -> Result<Self, CentralError> {
        let log = EventLog::open(data_dir.join("events.db"), device, physical)?;
        Ok(Self::assemble(log, limits))
    }

    /// A central log over an opened log (an in-memory one in simulations).
    pub fn assemble(log: EventLog, limits: SyncLimits) -> Self {
        let log_id = log.log_id().ok().flatten().unwrap_or_default();
        Self {
            log,
            limits,
            log_id,
        }
    }

    /// Gives a log without an identity `candidate` as its `log_id` (a new data dir); returns
    /// the identity.
    pub fn ensure_log_id(&mut self, candidate: &str) -> Result<String, CentralError> {
        if self.log_id.is_empty() {
            self.log.set_log_id(candidate)?;
            self.log_id = candidate.to_string();
        }
        Ok(self.log_id.clone())
    }

    pub fn log_id(&self) -> &str {
        &self.log_id
    }

    pub fn log(&self) -> &EventLog {
        &self.log
    }

    pub fn limits(&self) -> SyncLimits {
        self.limits
    }

    fn now_ms(&self) -> i64 {
        i64::try_from(self.log.now_ms()).unwrap_or(i64::MAX)
    }

    fn internal(&self, e: impl std::fmt::Display) -> SyncError {
        SyncError::new(ErrorCode::Internal, e.to_string()).at(self.now_ms())
    }

    /// Makes a workspace's first list when the workspace holds no events yet (a new
    /// account's "Inbox"), authored by the server's own device and recorded as `user`'s.
    /// Returns the list's id when it made one.
    pub fn ensure_first_list(
        &mut self,
        workspace: WorkspaceId,
        name: &str,
        list_id: AggregateId,
        event_id: EventId,
        user: Option<&str>,
    ) -> Result<Option<AggregateId>, SyncError> {
        if self.log.head(workspace).map_err(|e| self.internal(e))? > 0 {
            return Ok(None);
        }
        let body = DomainEvent::ListCreated(ListCreated {
            name: name.to_string(),
        });
        let event = Event {
            event_id,
            workspace_id: workspace,
            aggregate_id: list_id,
            hlc: self.log.stamp().map_err(|e| self.internal(e))?,
            device_id: self.log.device_id(),
            version: 1,
            created_at: self.now_ms(),
            body,
        };
        self.append_own_by(&[event.to_stored()], user)?;
        Ok(Some(list_id))
    }

    /// Appends events the server itself authored (e.g. the default list), like a push whose
    /// cursor is the head.
    pub fn append_own(&mut self, events: &[StoredEvent]) -> Result<PushOutcome, SyncError> {
        self.append_own_by(events, None)
    }

    /// [`Self::append_own`], recorded as made for `user`.
    pub fn append_own_by(
        &mut self,
        events: &[StoredEvent],
        user: Option<&str>,
    ) -> Result<PushOutcome, SyncError> {
        let Some(first) = events.first() else {
            return Err(SyncError::new(ErrorCode::Malformed, "no events"));
        };
        let workspace = first.workspace_id;
        let head = self.log.head(workspace).map_err(|e| self.internal(e))?;
        let request = PushRequest {
            device_id: self.log.device_id().to_string(),
            workspace_id: workspace.to_string(),
            cursor: head,
            events: events.iter().map(crate::wire::to_wire).collect(),
        };
        self.push_as(&request, &Pusher { user, quota: None })
    }

    /// Handles a push (docs/protocol.md). On any error nothing is stored.
    pub fn push(&mut self, request: &PushRequest) -> Result<PushOutcome, SyncError> {
        self.push_as(request, &Pusher::default())
    }

    /// Handles a push by an account (its access already checked): records `pusher.user` on
    /// the new events and asks `pusher.quota` about them after the idempotency check
    /// ([`crate::push::push_into`]).
    pub fn push_as(
        &mut self,
        request: &PushRequest,
        pusher: &Pusher<'_>,
    ) -> Result<PushOutcome, SyncError> {
        let now = self.now_ms();
        crate::push::push_into(
            &mut self.log,
            &self.limits,
            &self.log_id,
            now,
            request,
            pusher,
        )
    }

    /// Handles a pull (see [`pull_from`]) on the writer's connection (simulations and tests;
    /// the server pulls through [`Readers`]).
    pub fn pull(&self, request: &PullRequest) -> Result<PullResponse, SyncError> {
        pull_from(
            &self.log,
            &self.limits,
            &self.log_id,
            request,
            self.now_ms(),
        )
    }
}

/// Answers a pull from `log`: events with `seq > cursor`, at most `limit` (clamped) and at
/// most [`SyncLimits::pull_bytes`] of them (but always one, when there is one). The head and
/// the events are read in one snapshot.
pub fn pull_from(
    log: &EventLog,
    limits: &SyncLimits,
    log_id: &str,
    request: &PullRequest,
    now: i64,
) -> Result<PullResponse, SyncError> {
    let internal =
        |e: &dyn std::fmt::Display| SyncError::new(ErrorCode::Internal, e.to_string()).at(now);
    let workspace = pull_target(request, now)?;
    let snapshot = log
        .connection()
        .unchecked_transaction()
        .map_err(|e| internal(&e))?;
    let head = log.head(workspace).map_err(|e| internal(&e))?;
    let limit = pull_window(limits, request, head, now)?;
    let (events, has_more) = log
        .events_after_within(
            workspace,
            request.cursor,
            limit as usize,
            limits.pull_bytes,
            ENVELOPE_BYTES,
        )
        .map_err(|e| internal(&e))?;
    drop(snapshot);
    Ok(PullResponse {
        people: vec![],
        events: events
            .iter()
            .map(|(seq, e, user)| logged_by(*seq, e, user.clone()))
            .collect(),
        head,
        has_more,
        server_time_ms: now,
        log_id: log_id.to_string(),
    })
}

/// The workspace a pull asks about (MALFORMED when its ids are not ids).
pub fn pull_target(request: &PullRequest, now: i64) -> Result<WorkspaceId, SyncError> {
    let malformed = |e: String| SyncError::new(ErrorCode::Malformed, e).at(now);
    let workspace: WorkspaceId = request
        .workspace_id
        .parse()
        .map_err(|e| malformed(format!("workspace_id: {e}")))?;
    request
        .device_id
        .parse::<DeviceId>()
        .map_err(|e| malformed(format!("device_id: {e}")))?;
    Ok(workspace)
}

/// How many events a pull at `head` answers at most (its limit within the server's bounds);
/// CURSOR_AHEAD for a cursor beyond the head.
pub fn pull_window(
    limits: &SyncLimits,
    request: &PullRequest,
    head: u64,
    now: i64,
) -> Result<u64, SyncError> {
    if request.cursor > head {
        return Err(SyncError::new(
            ErrorCode::CursorAhead,
            format!(
                "cursor {} is beyond the workspace head {head}",
                request.cursor
            ),
        )
        .with_head(head)
        .at(now));
    }
    Ok(request
        .limit
        .unwrap_or(limits.pull_limit_default)
        .clamp(1, limits.pull_limit_max))
}

/// What an event's envelope (ids, stamp, type, numbers, JSON punctuation) adds to its data on
/// the wire, at most.
pub const ENVELOPE_BYTES: usize = 400;

/// The server's read-only connections to its log (WAL: they read beside the writer, never
/// under its lock), for pulls and live connects. Each is used by one request at a time; the
/// caller bounds how many requests wait for one (DESIGN.md rule 22).
pub struct Readers {
    conns: Vec<std::sync::Mutex<EventLog>>,
    /// Heads for live connects: a connection of their own (a head is one index probe), so
    /// sockets never compete with pulls for the pool.
    heads: std::sync::Mutex<EventLog>,
    limits: SyncLimits,
    log_id: String,
}

impl Readers {
    /// `n` read-only connections to `data_dir`'s events.db, which must exist.
    pub fn open(data_dir: &Path, n: usize, limits: SyncLimits) -> Result<Self, CentralError> {
        let conns = (0..n.max(1))
            .map(|_| EventLog::open_reader(data_dir.join("events.db")).map(std::sync::Mutex::new))
            .collect::<Result<Vec<_>, _>>()?;
        let heads = EventLog::open_reader(data_dir.join("events.db"))?;
        let log_id = heads.log_id()?.unwrap_or_default();
        Ok(Self {
            conns,
            heads: std::sync::Mutex::new(heads),
            limits,
            log_id,
        })
    }

    /// The log's identity.
    pub fn log_id(&self) -> &str {
        &self.log_id
    }

    /// How many connections there are (the most requests that can read at once).
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// The limits its pulls keep to.
    pub fn limits(&self) -> SyncLimits {
        self.limits
    }

    /// Runs `f` on a free connection; BUSY when none is free.
    pub fn with<T>(
        &self,
        now: i64,
        f: impl FnOnce(&EventLog) -> Result<T, SyncError>,
    ) -> Result<T, SyncError> {
        for conn in &self.conns {
            if let Ok(log) = conn.try_lock() {
                return f(&log);
            }
        }
        Err(busy("every read connection is in use", now))
    }

    /// Answers a pull (see [`pull_from`]).
    pub fn pull(&self, request: &PullRequest, now: i64) -> Result<PullResponse, SyncError> {
        self.with(now, |log| {
            pull_from(log, &self.limits, &self.log_id, request, now)
        })
    }

    /// A workspace's head (on the heads connection: waits for it, briefly).
    pub fn head(&self, workspace: WorkspaceId, now: i64) -> Result<u64, SyncError> {
        let log = self.heads.lock().unwrap_or_else(|p| p.into_inner());
        log.head(workspace)
            .map_err(|e| SyncError::new(ErrorCode::Internal, e.to_string()).at(now))
    }
}

/// BUSY (503): a bound was reached; retry after a second.
pub fn busy(message: &str, now: i64) -> SyncError {
    let mut e = SyncError::new(ErrorCode::Busy, message).at(now);
    e.retry_after_ms = Some(1_000);
    e
}
