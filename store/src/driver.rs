//! The sync driver: performs what the pure engine (`tandem_events::engine`) asks, against a
//! [`Transport`] (HTTP natively, `fetch` in the browser worker), storing what it pulls in the
//! device's [`Replica`]. It never sleeps itself: when the engine wants to wait it returns, and
//! the caller waits (tokio natively, a timer in the worker), so the same code runs everywhere.
//!
//! Two rules shape it:
//! - **Commands never wait on the network** (issue 8): the replica is shared
//!   (`Rc<RefCell<Replica>>`) and borrowed only in the synchronous steps between awaits, and
//!   inputs from elsewhere (a command's [`Input::LocalChange`], a live head) arrive through a
//!   [`Notifier`], so nothing needs the client while a request is in flight.
//! - **Every failure goes back to the engine**, which retries (backing off where it could
//!   repeat) and the user sees why: no error path leaves sync frozen.

use std::cell::RefCell;
use std::rc::Rc;

use tandem_events::engine::{Action, Engine, Failure, Input, Phase, Settings};
use tandem_events::ids::{EventId, WorkspaceId};
use tandem_protocol::sync::{
    ErrorCode, LoggedEvent, Person, PullRequest, PullResponse, PushRequest, PushResponse,
    SyncError, WireEvent,
};

use crate::replica::{Replica, ReplicaError};
use crate::wire::{from_wire, to_wire};

/// Why a request did not get an answer from the protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The server answered with a protocol error.
    #[error("the server refused: {0}")]
    Refused(SyncError),
    /// No answer (offline, timeout, a 5xx without the protocol's body).
    #[error("the server could not be reached: {0}")]
    Unreachable(String),
}

/// A way to reach the server's sync endpoints.
#[allow(async_fn_in_trait)] // Drivers run on one task (the worker, a test); no Send bound wanted.
pub trait Transport {
    async fn push(&mut self, request: &PushRequest) -> Result<PushResponse, TransportError>;
    async fn pull(&mut self, request: &PullRequest) -> Result<PullResponse, TransportError>;
    /// A hint that `request` is the next pull (a download's next page): a transport may send
    /// it now, while the page before it is stored, and answer [`Self::pull`] of the same
    /// request from it. The default sends nothing early.
    fn prefetch_pull(&mut self, request: &PullRequest) {
        let _ = request;
    }
}

/// What the user sees of sync (CONTRACT.md `data-sync-state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncState {
    Online,
    Syncing,
    Offline,
    Error,
}

/// A device's replica, shared between the command path and the sync driver.
pub type SharedReplica = Rc<RefCell<Replica>>;

/// Hands inputs to a [`SyncClient`] without borrowing it (a command while a request is in
/// flight). The client takes them at its next step.
#[derive(Clone, Default)]
pub struct Notifier {
    inputs: Rc<RefCell<Vec<Input>>>,
    /// Live messages with events, oldest first (see [`Self::live`]).
    lives: Rc<RefCell<Vec<Live>>>,
}

/// A live message: the workspace's head and the events it carried (docs/protocol.md, "Live").
struct Live {
    /// The `log_id` of the socket's first message.
    log_id: String,
    head: u64,
    events: Vec<LoggedEvent>,
    /// The names of the accounts the events name.
    people: Vec<Person>,
}

/// Live messages with events kept for the client's next step at most; past it the oldest
/// keeps its head only (a pull takes its events).
const LIVE_QUEUE: usize = 64;

impl Notifier {
    pub fn notify(&self, input: Input) {
        self.inputs.borrow_mut().push(input);
    }

    /// A live message from the socket of this client's workspace; `log_id`: the one its
    /// socket's first message named. Its events are stored at the client's next step when
    /// they come from the log this device syncs with and continue the cursor exactly; else
    /// the head is announced and pulled.
    pub fn live(&self, log_id: &str, head: u64, events: Vec<LoggedEvent>, people: Vec<Person>) {
        if events.is_empty() {
            self.notify(Input::HeadAnnounced { head });
            return;
        }
        let mut lives = self.lives.borrow_mut();
        if lives.len() >= LIVE_QUEUE {
            let oldest = lives.remove(0);
            drop(lives);
            self.notify(Input::HeadAnnounced { head: oldest.head });
            lives = self.lives.borrow_mut();
        }
        lives.push(Live {
            log_id: log_id.to_string(),
            head,
            events,
            people,
        });
    }
}

/// Pulled or announced events as the replica stores them: each with its seq, in order, and
/// the account that pushed each (by event id) where the server named one.
type Decoded = (
    Vec<(u64, tandem_events::event::StoredEvent)>,
    std::collections::HashMap<EventId, String>,
);

fn decode_logged<'a>(
    events: impl IntoIterator<Item = &'a LoggedEvent>,
) -> Result<Decoded, crate::wire::WireError> {
    let mut pulled = Vec::new();
    let mut users = std::collections::HashMap::new();
    for logged in events {
        let event = from_wire(&logged.event)?;
        if let Some(user) = &logged.user_id {
            users.insert(event.event_id, user.clone());
        }
        pulled.push((logged.seq, event));
    }
    Ok((pulled, users))
}

/// Accounts' names as the log notes them: (user id, name).
fn name_pairs(people: &[Person]) -> Vec<(String, String)> {
    people
        .iter()
        .map(|p| (p.user_id.clone(), p.username.clone()))
        .collect()
}

/// Something the user should be told, beside the sync state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// The device clock was ahead of the server's: the clock was corrected and these many
    /// unsent events got new stamps.
    ClockCorrected { ahead_ms: u64, restamped: usize },
    /// The server refused an event for good; it is set aside (kept, exportable, not sent).
    SetAside {
        event_id: String,
        code: ErrorCode,
        reason: String,
    },
}

/// A device's sync for one workspace: its engine and transport, over the shared replica.
pub struct SyncClient<T: Transport> {
    replica: SharedReplica,
    notifier: Notifier,
    engine: Engine,
    transport: T,
    workspace: WorkspaceId,
    /// Events per push at most: the engine's batch, halved after a TOO_LARGE for a whole body.
    push_limit: usize,
    /// The outbox event the server last answered ID_REUSED for: a second time (after the pull
    /// that should have brought its stored copy) sets it aside.
    id_reused: Option<String>,
    /// The last failure's reason while it lasts (cleared by a push or pull that gets through).
    pub last_error: Option<String>,
    /// The code of the last refusal while it lasts (UNAUTHENTICATED and FORBIDDEN stop a
    /// workspace's sync and say why, DESIGN.md rule 23).
    pub refusal: Option<ErrorCode>,
    /// Whether the server refuses this device's pushes while it still answers its pulls (a
    /// member made a reader with changes unsent): until a push gets through.
    pub push_forbidden: bool,
    /// Whether the last request got no answer (the page shows "offline").
    unreachable: bool,
    /// Things to tell the user, oldest first; the caller drains them.
    pub notices: Vec<Notice>,
    /// The server's clock minus this device's at the last answer (ms).
    pub clock_offset_ms: Option<i64>,
    /// Set when the server's log changed under this device (see [`Self::log_changed`]).
    log_changed: Option<String>,
}

impl<T: Transport> SyncClient<T> {
    pub fn new(
        replica: SharedReplica,
        transport: T,
        workspace: WorkspaceId,
        settings: Settings,
    ) -> Result<Self, ReplicaError> {
        let (cursor, pending) = {
            let r = replica.borrow();
            (r.cursor(workspace)?, r.pending_len()?)
        };
        Ok(Self {
            replica,
            notifier: Notifier::default(),
            engine: Engine::new(settings, cursor, pending),
            push_limit: settings.push_batch.max(1),
            transport,
            workspace,
            id_reused: None,
            last_error: None,
            refusal: None,
            push_forbidden: false,
            unreachable: false,
            notices: Vec::new(),
            clock_offset_ms: None,
            log_changed: None,
        })
    }

    /// The shared replica (commands go through it, also while a request is in flight).
    pub fn shared(&self) -> SharedReplica {
        Rc::clone(&self.replica)
    }

    pub fn replica(&self) -> std::cell::Ref<'_, Replica> {
        self.replica.borrow()
    }

    pub fn replica_mut(&self) -> std::cell::RefMut<'_, Replica> {
        self.replica.borrow_mut()
    }

    /// A handle that feeds inputs to this client without borrowing it.
    pub fn notifier(&self) -> Notifier {
        self.notifier.clone()
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    pub fn state(&self) -> SyncState {
        if self.engine.phase() == Phase::Stopped || self.last_error.is_some() {
            SyncState::Error
        } else if self.unreachable {
            SyncState::Offline
        } else if self.engine.busy() {
            SyncState::Syncing
        } else {
            SyncState::Online
        }
    }

    /// Feeds an input to the engine (a local change, a live head, a timer tick).
    pub fn notify(&mut self, input: Input, now_ms: u64, random: u64) {
        self.engine.on(input, now_ms, random);
    }

    /// Performs the engine's actions until it is idle or must wait; returns that action
    /// (`Idle` or `Wait`). `now` and `random` are injected. Never fails: every failure is fed
    /// back to the engine (see [`Self::last_error`]).
    pub async fn run(
        &mut self,
        mut now: impl FnMut() -> u64,
        mut random: impl FnMut() -> u64,
    ) -> Action {
        loop {
            let inputs: Vec<Input> = std::mem::take(&mut *self.notifier.inputs.borrow_mut());
            for input in inputs {
                self.engine.on(input, now(), random());
            }
            let lives: Vec<Live> = std::mem::take(&mut *self.notifier.lives.borrow_mut());
            for live in lives {
                let head = live.head;
                self.engine
                    .on(Input::HeadAnnounced { head }, now(), random());
                if let Some(cursor) = self.take_live(live) {
                    self.engine.on(Input::Applied { cursor }, now(), random());
                }
            }
            let pending = self.replica.borrow().pending_len();
            match pending {
                Ok(n) => self.engine.set_pending(n),
                Err(e) => {
                    let input = self.local(e);
                    self.engine.on(input, now(), random());
                    // A failing disk backs off; the next step waits.
                }
            }
            let input = match self.engine.next(now()) {
                action @ (Action::Idle | Action::Wait { .. }) => return action,
                Action::Pull { cursor } => {
                    let request = self.pull_request(cursor);
                    let answer = self.transport.pull(&request).await;
                    // More to come: the next page travels while this one is stored.
                    if let Ok(page) = &answer {
                        if page.has_more && self.log_changed.is_none() {
                            if let Some(last) = page.events.last() {
                                self.transport.prefetch_pull(&self.pull_request(last.seq));
                            }
                        }
                    }
                    self.pulled(answer)
                }
                Action::Push { cursor, limit } => match self.push_request(cursor, limit) {
                    Ok(request) => {
                        let answer = self.transport.push(&request).await;
                        self.pushed(&request, answer)
                    }
                    Err(e) => self.local(e),
                },
            };
            self.engine.on(input, now(), random());
        }
    }

    fn pull_request(&self, cursor: u64) -> PullRequest {
        PullRequest {
            device_id: self.replica.borrow().log().device_id().to_string(),
            workspace_id: self.workspace.to_string(),
            cursor,
            limit: Some(self.engine.settings().pull_page),
        }
    }

    /// The outbox's first events, at most `limit` and (but for a first event bigger than
    /// that alone) at most the settings' bytes.
    fn push_request(&self, cursor: u64, limit: usize) -> Result<PushRequest, ReplicaError> {
        let replica = self.replica.borrow();
        let pending = replica.pending(limit.min(self.push_limit))?;
        let budget = self.engine.settings().push_bytes;
        let mut events: Vec<WireEvent> = Vec::with_capacity(pending.len());
        let mut bytes = 0;
        for e in &pending {
            let wire = to_wire(e);
            let size = serde_json::to_vec(&wire)
                .map(|v| v.len())
                .unwrap_or(usize::MAX);
            if !events.is_empty() && bytes + size > budget {
                break;
            }
            bytes = bytes.saturating_add(size);
            events.push(wire);
        }
        Ok(PushRequest {
            device_id: replica.log().device_id().to_string(),
            workspace_id: self.workspace.to_string(),
            cursor,
            events,
        })
    }

    /// Stores a pull's answer (one synchronous step).
    fn pulled(&mut self, answer: Result<PullResponse, TransportError>) -> Input {
        let response = match answer {
            Ok(response) => response,
            Err(e) => {
                // Pages already stored are projected before the failure is reported.
                let projected = self.replica.borrow_mut().project();
                if let Err(local) = projected {
                    return self.local(local);
                }
                return self.refused(e, None);
            }
        };
        self.unreachable = false;
        self.observe_server_time(response.server_time_ms);
        if let Some(stop) = self.check_log(&response.log_id) {
            return stop;
        }
        let (pulled, users) = match decode_logged(&response.events) {
            Ok(decoded) => decoded,
            Err(e) => {
                let _ = self.replica.borrow_mut().project();
                return self.fail(
                    Failure::Refused,
                    format!("the server sent an event this device cannot store: {e}"),
                );
            }
        };
        let mut replica = self.replica.borrow_mut();
        // Names are for showing; failing to note them must not fail the pull.
        let _ = replica.log().remember_people(&name_pairs(&response.people));
        // Pages of a long pull are stored as they come and projected after the last one (one
        // catch-up, in bulk when the backlog is large).
        let stored = replica
            .store_pulled_by(&pulled, &users, !response.has_more)
            .and_then(|_| replica.cursor(self.workspace));
        match stored {
            Ok(cursor) => {
                drop(replica);
                if !response.has_more && response.head <= cursor {
                    self.last_error = None;
                    self.refusal = None;
                }
                Input::Pulled {
                    cursor,
                    head: response.head,
                    has_more: response.has_more,
                }
            }
            Err(e) => {
                let _ = replica.project();
                drop(replica);
                self.local(e)
            }
        }
    }

    /// Stores a live message's events when they continue the cursor exactly (one synchronous
    /// step, between requests), so a change made elsewhere shows without a pull's round trip.
    /// Anything else — a gap, an account whose name this device does not know yet, an event
    /// it cannot decode, a stopped engine, a failure to store — leaves them to a pull: the
    /// message then only announces its head (docs/protocol.md: messages are hints).
    /// Returns the cursor after storing them.
    fn take_live(&mut self, live: Live) -> Option<u64> {
        if self.engine.busy() || self.engine.phase() == Phase::Stopped || self.log_changed.is_some()
        {
            return None;
        }
        // Only from the log this device synced with (a pull checks a new one, rule 9's log_id).
        let known = self.replica.borrow().log().server_log_id(self.workspace);
        if live.log_id.is_empty() || !matches!(known, Ok(Some(known)) if known == live.log_id) {
            return None;
        }
        let cursor = self.engine.cursor();
        let fresh: Vec<&LoggedEvent> = live.events.iter().filter(|e| e.seq > cursor).collect();
        let continues = fresh
            .iter()
            .enumerate()
            .all(|(i, e)| e.seq == cursor + 1 + i as u64);
        if fresh.is_empty() || !continues || cursor + fresh.len() as u64 != live.head {
            return None;
        }
        let (pulled, users) = decode_logged(fresh).ok()?;
        if pulled.iter().any(|(_, e)| e.workspace_id != self.workspace) {
            return None;
        }
        let mut replica = self.replica.borrow_mut();
        // Only the names of the events' pushers; failing to note them leaves the events to a
        // pull.
        let named: Vec<Person> = live
            .people
            .into_iter()
            .filter(|p| users.values().any(|u| *u == p.user_id))
            .collect();
        let _ = replica.log().remember_people(&name_pairs(&named));
        if !matches!(
            replica
                .log()
                .knows_people(users.values().map(String::as_str)),
            Ok(true)
        ) {
            return None;
        }
        match replica
            .store_pulled_by(&pulled, &users, true)
            .and_then(|_| replica.cursor(self.workspace))
        {
            Ok(stored) => Some(stored),
            Err(_) => {
                let _ = replica.project();
                None
            }
        }
    }

    /// Takes a push's answer (one synchronous step).
    fn pushed(
        &mut self,
        request: &PushRequest,
        answer: Result<PushResponse, TransportError>,
    ) -> Input {
        let response = match answer {
            Ok(response) => response,
            Err(e) => return self.refused(e, Some(request)),
        };
        self.unreachable = false;
        self.observe_server_time(response.server_time_ms);
        if let Some(stop) = self.check_log(&response.log_id) {
            return stop;
        }
        let mut own: Vec<(EventId, u64)> = Vec::with_capacity(response.accepted.len());
        for a in &response.accepted {
            if let Ok(id) = a.event_id.parse() {
                own.push((id, a.seq));
            }
        }
        own.sort_by_key(|(_, seq)| *seq);
        // Stored right after our cursor: take the acks. Otherwise (acks of events the server
        // stored earlier, others' events in between) the next pull brings them.
        let contiguous = own
            .iter()
            .enumerate()
            .all(|(i, (_, seq))| *seq == request.cursor + 1 + i as u64);
        self.id_reused = None;
        if contiguous && response.head == request.cursor + own.len() as u64 {
            // Our own events, recorded under our account (and its name noted for History).
            let mut users = std::collections::HashMap::new();
            if let Some(pusher) = &response.pusher {
                let _ = self
                    .replica
                    .borrow()
                    .log()
                    .remember_people(&[(pusher.user_id.clone(), pusher.username.clone())]);
                for (id, _) in &own {
                    users.insert(*id, pusher.user_id.clone());
                }
            }
            let accepted = self.replica.borrow_mut().accept_by(&[], &own, &users);
            if let Err(e) = accepted {
                return self.local(e);
            }
            self.last_error = None;
            self.refusal = None;
            self.push_forbidden = false;
            self.push_limit = self.engine.settings().push_batch.max(1);
            Input::Pushed {
                cursor: response.head,
            }
        } else {
            Input::PushedOutOfOrder {
                head: response.head,
            }
        }
    }

    /// A refusal or a missing answer, as the engine's failure (with the local steps some
    /// refusals call for: correcting the clock, setting an event aside).
    fn refused(&mut self, error: TransportError, request: Option<&PushRequest>) -> Input {
        let e = match error {
            TransportError::Unreachable(_) => {
                self.unreachable = true;
                return Input::Failed(Failure::Transport);
            }
            TransportError::Refused(e) => e,
        };
        self.unreachable = false;
        self.refusal = Some(e.code);
        if e.code == ErrorCode::Forbidden {
            self.push_forbidden = request.is_some();
        }
        if let Some(server_ms) = e.server_time_ms {
            self.observe_server_time(server_ms);
        }
        let in_request = |id: &Option<String>| -> Option<String> {
            let id = id.as_ref()?;
            request?
                .events
                .iter()
                .any(|w| &w.event_id == id)
                .then(|| id.clone())
        };
        match e.code {
            ErrorCode::PullRequired => Input::Failed(Failure::PullRequired),
            ErrorCode::VersionConflict => Input::Failed(Failure::Conflict),
            ErrorCode::Busy => Input::Failed(Failure::Busy {
                retry_after_ms: e.retry_after_ms.map_or(1_000, u64::from),
            }),
            // A bug on the server: retried with backoff like a failure to reach it, but shown
            // as an error with its message, not as "offline".
            ErrorCode::Internal => self.fail(
                Failure::Transport,
                format!("the server failed: {}", e.message),
            ),
            ErrorCode::CursorAhead => {
                self.log_changed = Some(String::new());
                self.fail(
                Failure::LogMismatch,
                format!(
                    "the server holds fewer events than this device ({}): was it restored from an older backup? Sync stopped.",
                    e.message
                ),
            )
            }
            ErrorCode::ClockDrift => self.clock_drift(&e),
            ErrorCode::IdReused => match in_request(&e.event_id) {
                Some(id) if self.id_reused.as_deref() == Some(id.as_str()) => {
                    self.set_aside(&id, &e)
                }
                Some(id) => {
                    // The pull that follows brings the stored copy, which wins (rule 8).
                    self.id_reused = Some(id);
                    Input::Failed(Failure::Conflict)
                }
                None => self.fail(Failure::Refused, e.to_string()),
            },
            ErrorCode::InvalidEvent | ErrorCode::TooLarge => match in_request(&e.event_id) {
                Some(id) => self.set_aside(&id, &e),
                None => match request {
                    Some(r) if e.code == ErrorCode::TooLarge && r.events.len() > 1 => {
                        // The body as a whole was too big: send fewer events at a time.
                        self.push_limit = (r.events.len() / 2).max(1);
                        Input::Failed(Failure::EventSetAside)
                    }
                    Some(r) if e.code == ErrorCode::TooLarge && r.events.len() == 1 => {
                        let id = r.events[0].event_id.clone();
                        self.set_aside(&id, &e)
                    }
                    _ => self.fail(Failure::Refused, e.to_string()),
                },
            },
            // A quota resets with the day; a rate limit says when: both back off.
            ErrorCode::QuotaExceeded | ErrorCode::RateLimited => Input::Failed(Failure::Busy {
                retry_after_ms: e.retry_after_ms.map_or(60_000, u64::from),
            }),
            ErrorCode::Malformed
            | ErrorCode::Unauthenticated
            | ErrorCode::Forbidden
            | ErrorCode::SignUpClosed
            | ErrorCode::UsernameTaken
            | ErrorCode::WeakPassword
            | ErrorCode::LastOwner
            | ErrorCode::InviteGone
            | ErrorCode::NotFound
            | ErrorCode::MisdirectedRequest => self.fail(Failure::Refused, e.to_string()),
        }
    }

    /// CLOCK_DRIFT: corrects the clock (DESIGN.md rule 8) and retries; the engine backs off
    /// when the refusal repeats.
    fn clock_drift(&mut self, e: &SyncError) -> Input {
        let Some(server_ms) = e.server_time_ms.and_then(|t| u64::try_from(t).ok()) else {
            return self.fail(
                Failure::Refused,
                "CLOCK_DRIFT without the server's time: cannot correct the clock".into(),
            );
        };
        // Without the server's limit, re-stamp everything ahead of its time (safe: a stored
        // copy of a re-stamped event wins later, rule 8).
        let max_drift = e.max_drift_ms.map_or(0, u64::from);
        let corrected = self
            .replica
            .borrow_mut()
            .correct_clock(server_ms, max_drift);
        match corrected {
            Ok(touched) => {
                self.notices.push(Notice::ClockCorrected {
                    ahead_ms: e.offset_ms.unwrap_or(0),
                    restamped: touched.len(),
                });
                Input::Failed(Failure::ClockDrift)
            }
            Err(err) => self.local(err),
        }
    }

    fn set_aside(&mut self, event_id: &str, e: &SyncError) -> Input {
        let Ok(id) = event_id.parse::<EventId>() else {
            return self.fail(Failure::Refused, e.to_string());
        };
        let set = self
            .replica
            .borrow_mut()
            .set_aside(id, e.code.as_str(), &e.message);
        match set {
            Ok(_) => {
                self.id_reused = None;
                self.notices.push(Notice::SetAside {
                    event_id: event_id.to_string(),
                    code: e.code,
                    reason: e.message.clone(),
                });
                Input::Failed(Failure::EventSetAside)
            }
            // Not in the outbox any more (taken by a pull meanwhile): just go on.
            Err(ReplicaError::Log(crate::log::LogError::NotInOutbox { .. })) => {
                Input::Failed(Failure::EventSetAside)
            }
            Err(err) => self.local(err),
        }
    }

    /// Never mixes logs: the first `log_id` heard for the workspace is kept; an answer from
    /// another log (the server was restored from a backup, or replaced) stops sync before
    /// anything of it is stored, and says so (recovery: [`Replica::adopt`]).
    fn check_log(&mut self, log_id: &str) -> Option<Input> {
        if log_id.is_empty() {
            return None; // a server from before log ids
        }
        let known = self.replica.borrow().log().server_log_id(self.workspace);
        match known {
            Ok(Some(known)) if known == log_id => None,
            Ok(Some(known)) => {
                self.log_changed = Some(log_id.to_string());
                Some(self.fail(
                    Failure::LogMismatch,
                    format!(
                        "the server's log changed (it was restored from a backup or replaced: {known} is now {log_id}); this device stopped syncing so as not to mix the two, and must recover"
                    ),
                ))
            }
            Ok(None) => {
                let set = self
                    .replica
                    .borrow()
                    .log()
                    .set_server_log_id(self.workspace, log_id);
                set.err().map(|e| self.local(e.into()))
            }
            Err(e) => Some(self.local(e.into())),
        }
    }

    /// Set when sync stopped because the server's log is not the one this device synced
    /// with: the new `log_id`, or an empty string when the server answered CURSOR_AHEAD (it
    /// holds fewer events than this device).
    pub fn log_changed(&self) -> Option<&str> {
        self.log_changed.as_deref()
    }

    fn local(&mut self, e: ReplicaError) -> Input {
        self.fail(
            Failure::Local,
            format!("this device could not store what it got: {e}"),
        )
    }

    fn fail(&mut self, failure: Failure, reason: String) -> Input {
        self.last_error = Some(reason);
        Input::Failed(failure)
    }

    fn observe_server_time(&mut self, server_time_ms: i64) {
        let replica = self.replica.borrow();
        let ours = i64::try_from(replica.log().now_ms()).unwrap_or(i64::MAX);
        self.clock_offset_ms = Some(server_time_ms.saturating_sub(ours));
        if let Ok(server) = u64::try_from(server_time_ms) {
            replica.observe_server_time(server);
        }
    }
}
