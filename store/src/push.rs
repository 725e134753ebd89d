//! A push's checks and append, in the order of DESIGN.md rule 13, over any central log: the
//! SQLite one ([`crate::EventLog`], under the server's writer mutex) or PostgreSQL's (crate
//! `tandem-pg`, inside a transaction holding the workspace's lock). Either way nothing else
//! appends to the workspace between the reads and the append, so what the checks see is what
//! the append builds on, and seqs come out dense.
//!
//! The checks are apart from the log ([`begin`] → [`Push::check`] → [`Appending::finish`]):
//! the log is read once, by batch (all of a push's aggregates at once, all its event ids at
//! once), so a log across a network answers a push in a few round trips, not one per event,
//! and each backend reads and writes in its own way (this thread's SQLite through
//! [`push_into`], PostgreSQL asynchronously).

use std::collections::{HashMap, HashSet};

use tandem_events::domain::DomainEvent;
use tandem_events::event::StoredEvent;
use tandem_events::hlc::check_drift;
use tandem_events::ids::{AggregateId, DeviceId, EventId, WorkspaceId};
use tandem_protocol::sync::{
    Accepted, ErrorCode, LoggedEvent, PushRequest, PushResponse, SyncError,
};

use crate::central::{PushOutcome, Pusher, SyncLimits};
use crate::log::{EventLog, LogError};
use crate::wire::{from_wire, logged_by};

/// A read or write of the log that failed (a bug or an outage: answered INTERNAL).
pub type Failure = Box<dyn std::error::Error + Send + Sync>;

/// Why an append stored nothing.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("aggregate {aggregate} is at version {actual}; the event proposes version {}", expected + 1)]
    VersionConflict {
        aggregate: AggregateId,
        /// The version the event builds on (its own minus one).
        expected: u64,
        actual: u64,
    },
    #[error("event {event_id} is already stored")]
    Duplicate { event_id: EventId },
    #[error(transparent)]
    Failed(Failure),
}

/// What a push reads and writes of a central log.
pub trait PushTarget {
    /// The workspace each of `ids` was made in (its version 1), for those that exist.
    fn homes(&mut self, ids: &[AggregateId]) -> Result<HashMap<AggregateId, WorkspaceId>, Failure>;
    /// The stored events among `ids`, with their seqs.
    fn stored(&mut self, ids: &[EventId]) -> Result<HashMap<EventId, (u64, StoredEvent)>, Failure>;
    /// The workspace's head (0 when it has no events).
    fn head(&mut self, workspace: WorkspaceId) -> Result<u64, Failure>;
    /// Appends new, checked events of one workspace, recorded as pushed by `user`, each
    /// after its aggregate's current version; their seqs, in order. Nothing is stored on an
    /// error.
    fn append(
        &mut self,
        events: &[StoredEvent],
        user: Option<&str>,
    ) -> Result<Vec<u64>, AppendError>;
}

/// Handles a push by an account (its access already checked) at `now` (the server's clock,
/// ms) on a log answered in this thread: [`begin`], the reads, [`Push::check`], the append,
/// [`Appending::finish`].
pub fn push_into(
    target: &mut impl PushTarget,
    limits: &SyncLimits,
    log_id: &str,
    now: i64,
    request: &PushRequest,
    pusher: &Pusher<'_>,
) -> Result<PushOutcome, SyncError> {
    let push = begin(request, limits, log_id, now)?;
    let failed = |e: Failure| push.internal(&e);
    let read = Read {
        homes: target.homes(&push.named()).map_err(failed)?,
        stored: target.stored(&push.event_ids()).map_err(failed)?,
        head: target.head(push.workspace()).map_err(failed)?,
    };
    match push.check(read, pusher)? {
        Checked::Stored(outcome) => Ok(outcome),
        Checked::Append(appending) => {
            let result = target.append(appending.events(), pusher.user);
            appending.finish(result)
        }
    }
}

/// A push being handled (DESIGN.md rule 13), apart from the log: its transport checks passed
/// and its events decoded. Next: read what [`Push::named`], [`Push::event_ids`] and
/// [`Push::workspace`] ask for, then [`Push::check`].
pub struct Push<'a> {
    request: &'a PushRequest,
    limits: SyncLimits,
    log_id: String,
    now: i64,
    workspace: WorkspaceId,
    device: DeviceId,
    decoded: Vec<Result<StoredEvent, String>>,
}

/// What the log holds that a push's checks depend on, read in one consistent state (the
/// workspace locked against other appends).
pub struct Read {
    /// The homes of [`Push::named`] that exist.
    pub homes: HashMap<AggregateId, WorkspaceId>,
    /// The stored events among [`Push::event_ids`], with their seqs.
    pub stored: HashMap<EventId, (u64, StoredEvent)>,
    /// The workspace's head.
    pub head: u64,
}

/// What a push comes to once checked.
pub enum Checked<'a> {
    /// Every event was stored already: the answer.
    Stored(PushOutcome),
    /// New events to append.
    Append(Appending<'a>),
}

/// A checked push's new events, waiting for their append.
pub struct Appending<'a> {
    push: Push<'a>,
    seqs: Vec<Option<u64>>,
    head: u64,
    fresh: Vec<StoredEvent>,
    user: Option<String>,
}

/// The transport checks (malformed ids, too many events) and every event decoded.
pub fn begin<'a>(
    request: &'a PushRequest,
    limits: &SyncLimits,
    log_id: &str,
    now: i64,
) -> Result<Push<'a>, SyncError> {
    let fail = |code: ErrorCode, message: String| SyncError::new(code, message).at(now);
    let workspace: WorkspaceId = request
        .workspace_id
        .parse()
        .map_err(|e| fail(ErrorCode::Malformed, format!("workspace_id: {e}")))?;
    let device: DeviceId = request
        .device_id
        .parse()
        .map_err(|e| fail(ErrorCode::Malformed, format!("device_id: {e}")))?;
    if request.events.len() > limits.events_per_push {
        return Err(fail(
            ErrorCode::TooLarge,
            format!(
                "{} events in one push; at most {} are accepted",
                request.events.len(),
                limits.events_per_push
            ),
        ));
    }
    Ok(Push {
        request,
        limits: *limits,
        log_id: log_id.to_string(),
        now,
        workspace,
        device,
        decoded: request
            .events
            .iter()
            .map(|wire| from_wire(wire).map_err(|e| e.to_string()))
            .collect(),
    })
}

impl<'a> Push<'a> {
    pub fn workspace(&self) -> WorkspaceId {
        self.workspace
    }

    /// Times the answer `now` (a log that waited for its lock answers at the time it handled
    /// the push).
    pub fn retime(&mut self, now: i64) {
        self.now = now;
    }

    /// The aggregates whose homes the checks need: each event's, and the list a todo names
    /// (up to the first event that does not decode: the checks stop there).
    pub fn named(&self) -> Vec<AggregateId> {
        self.decoded
            .iter()
            .map_while(|e| e.as_ref().ok())
            .flat_map(|e| {
                let list = names_a_list(e).then(|| list_id_of(&e.event_data)).flatten();
                std::iter::once(e.aggregate_id).chain(list)
            })
            .collect::<HashSet<_>>()
            .into_iter()
            .collect()
    }

    /// The events' ids (those that decode).
    pub fn event_ids(&self) -> Vec<EventId> {
        self.decoded
            .iter()
            .filter_map(|e| e.as_ref().ok())
            .map(|e| e.event_id)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect()
    }

    /// INTERNAL: the log failed.
    pub fn internal(&self, e: &dyn std::fmt::Display) -> SyncError {
        SyncError::new(ErrorCode::Internal, e.to_string()).at(self.now)
    }

    fn fail(&self, code: ErrorCode, message: String) -> SyncError {
        SyncError::new(code, message).at(self.now)
    }

    /// Every check of rule 13 after the transport's, in its order, against what the log
    /// holds; asks `pusher.quota` about the new events after the idempotency check.
    pub fn check(mut self, read: Read, pusher: &Pusher<'_>) -> Result<Checked<'a>, SyncError> {
        let workspace = self.workspace;
        let device = self.device;
        let Read {
            homes,
            stored,
            head,
        } = read;
        // Envelope (rule 13): every event parses, is the push's workspace's and device's, and
        // its aggregate (and a todo's list) is not another workspace's (rule 21).
        let mut parsed: Vec<StoredEvent> = Vec::with_capacity(self.decoded.len());
        let mut lists_made: HashSet<AggregateId> = HashSet::new();
        let decoded = std::mem::take(&mut self.decoded);
        for (wire, decoded) in self.request.events.iter().zip(decoded) {
            let invalid = |message: String| {
                self.fail(ErrorCode::InvalidEvent, message)
                    .with_event(wire.event_id.clone())
            };
            let event = decoded.map_err(invalid)?;
            if event.workspace_id != workspace {
                return Err(invalid(format!(
                    "workspace_id {} differs from the push's {workspace}",
                    event.workspace_id
                )));
            }
            if event.device_id != device {
                return Err(invalid(format!(
                    "device_id {} differs from the push's {device}",
                    event.device_id
                )));
            }
            if event.hlc_timestamp.node != device {
                return Err(invalid(format!(
                    "hlc_timestamp {} was not stamped by device {device}",
                    event.hlc_timestamp
                )));
            }
            let mut checked = vec![("aggregate", event.aggregate_id)];
            if names_a_list(&event) {
                if let Some(list) = list_id_of(&event.event_data) {
                    // The list must live here already, or be made earlier in this push: a
                    // todo in a list that does not exist yet would let that list's id be made
                    // in another workspace later.
                    if !lists_made.contains(&list) && !homes.contains_key(&list) {
                        return Err(invalid(format!(
                            "list {list} does not exist in workspace {workspace}"
                        )));
                    }
                    checked.push(("list", list));
                }
            }
            if event.event_type == "ListCreated" {
                lists_made.insert(event.aggregate_id);
            }
            for (what, id) in checked {
                if let Some(home) = homes.get(&id).filter(|home| **home != workspace) {
                    return Err(invalid(format!(
                        "{what} {id} belongs to workspace {home}, not {workspace}"
                    )));
                }
            }
            parsed.push(event);
        }
        // Idempotency (rule 12): events already stored with the same content are
        // acknowledged; an id stored with different content is ID_REUSED.
        let mut seqs: Vec<Option<u64>> = Vec::with_capacity(parsed.len());
        for candidate in &parsed {
            let id = candidate.event_id;
            match stored.get(&id) {
                None => seqs.push(None),
                Some((seq, stored)) => {
                    if stored.workspace_id != workspace {
                        return Err(self
                            .fail(
                                ErrorCode::InvalidEvent,
                                format!(
                                    "event {id} is stored in workspace {}, not {workspace}",
                                    stored.workspace_id
                                ),
                            )
                            .with_event(id.to_string()));
                    }
                    if !candidate.same_content(stored) {
                        return Err(self
                            .fail(
                                ErrorCode::IdReused,
                                format!("event {id} is already stored with different content"),
                            )
                            .with_event(id.to_string()));
                    }
                    seqs.push(Some(*seq));
                }
            }
        }
        if seqs.iter().all(Option::is_some) {
            return Ok(Checked::Stored(self.answer(&seqs, head, vec![])));
        }
        // Quotas (CONTRACT.md: after the idempotency check): only new events count.
        if let Some(quota) = pusher.quota {
            let (count, bytes) = parsed
                .iter()
                .zip(&seqs)
                .filter(|(_, seq)| seq.is_none())
                .fold((0usize, 0usize), |(n, b), (e, _)| {
                    (n + 1, b + e.event_data.len())
                });
            quota(count, bytes).map_err(|e| e.at(self.now))?;
        }
        // Then the cursor (rule 13).
        let cursor = self.request.cursor;
        if cursor < head {
            return Err(self
                .fail(
                    ErrorCode::PullRequired,
                    format!("the workspace is at seq {head}; pull the events after {cursor} first"),
                )
                .with_head(head));
        }
        if cursor > head {
            return Err(self
                .fail(
                    ErrorCode::CursorAhead,
                    format!("cursor {cursor} is beyond the workspace head {head}"),
                )
                .with_head(head));
        }
        // Then each new event: INVALID_EVENT, then CLOCK_DRIFT, then VERSION_CONFLICT.
        let mut fresh: Vec<StoredEvent> = Vec::new();
        let mut ids: HashSet<EventId> = HashSet::new();
        for (event, seq) in parsed.into_iter().zip(&seqs) {
            if seq.is_some() {
                continue;
            }
            let invalid = |message: String| {
                self.fail(ErrorCode::InvalidEvent, message)
                    .with_event(event.event_id.to_string())
            };
            if event.event_data.len() > self.limits.event_data_bytes {
                return Err(invalid(format!(
                    "event_data has {} bytes; at most {} are accepted",
                    event.event_data.len(),
                    self.limits.event_data_bytes
                )));
            }
            let body =
                DomainEvent::decode(&event.event_type, event.schema_version, &event.event_data)
                    .map_err(|e| invalid(e.to_string()))?;
            let position = match &body {
                DomainEvent::TodoCreated(e) => Some(&e.position),
                DomainEvent::TodoMoved(e) => Some(&e.position),
                DomainEvent::TodoListChanged(e) => Some(&e.position),
                _ => None,
            };
            if let Some(position) = position {
                tandem_events::position::validate(position)
                    .map_err(|e| invalid(format!("position: {e}")))?;
            }
            // A device names only itself; device profiles' ids are nobody else's.
            event.check_aggregate_kind().map_err(invalid)?;
            if !ids.insert(event.event_id) {
                return Err(invalid(format!(
                    "event {} appears twice in the push",
                    event.event_id
                )));
            }
            fresh.push(event);
        }
        let server_now = u64::try_from(self.now).unwrap_or(0);
        for event in &fresh {
            let max = self.limits.max_clock_drift_ms;
            if let Err(e) = check_drift(&event.hlc_timestamp, server_now, max) {
                let offset = event.hlc_timestamp.ms.saturating_sub(server_now);
                let mut err = self
                    .fail(ErrorCode::ClockDrift, e.to_string())
                    .with_offset(offset);
                err.max_drift_ms = Some(u32::try_from(max).unwrap_or(u32::MAX));
                return Err(err.with_event(event.event_id.to_string()));
            }
        }
        Ok(Checked::Append(Appending {
            push: self,
            seqs,
            head,
            fresh,
            user: pusher.user.map(str::to_string),
        }))
    }

    fn answer(&self, seqs: &[Option<u64>], head: u64, appended: Vec<LoggedEvent>) -> PushOutcome {
        PushOutcome {
            response: PushResponse {
                accepted: accepted(self.request, seqs),
                head,
                server_time_ms: self.now,
                log_id: self.log_id.clone(),
                pusher: None,
            },
            workspace: self.workspace,
            appended,
        }
    }
}

impl Appending<'_> {
    /// The new events, in the push's order: append them after their aggregates' current
    /// versions, recorded as pushed by [`Pusher::user`].
    pub fn events(&self) -> &[StoredEvent] {
        &self.fresh
    }

    /// The answer once the append is done (`Ok`: the seqs it gave, in order) or refused.
    pub fn finish(self, result: Result<Vec<u64>, AppendError>) -> Result<PushOutcome, SyncError> {
        let push = &self.push;
        let appended = match result {
            Ok(appended) => appended,
            Err(AppendError::VersionConflict {
                aggregate,
                expected,
                actual,
            }) => {
                let event = self
                    .fresh
                    .iter()
                    .find(|e| e.aggregate_id == aggregate && e.version == expected + 1)
                    .map(|e| e.event_id.to_string());
                let mut err = push.fail(
                    ErrorCode::VersionConflict,
                    format!(
                        "aggregate {aggregate} is at version {actual}; the event proposes version {}",
                        expected + 1
                    ),
                );
                err.event_id = event;
                return Err(err);
            }
            Err(AppendError::Duplicate { event_id }) => {
                return Err(push
                    .fail(
                        ErrorCode::IdReused,
                        format!("event {event_id} is already stored"),
                    )
                    .with_event(event_id.to_string()))
            }
            Err(AppendError::Failed(e)) => return Err(push.internal(&e)),
        };
        if appended.len() != self.fresh.len() {
            return Err(push.internal(&format!(
                "{} events appended of {}",
                appended.len(),
                self.fresh.len()
            )));
        }
        // Seqs are dense: the last new one is the head.
        let head = appended.last().copied().unwrap_or(self.head).max(self.head);
        let mut new_seqs = appended.iter().copied();
        let seqs: Vec<Option<u64>> = self
            .seqs
            .iter()
            .map(|s| s.or_else(|| new_seqs.next()))
            .collect();
        let appended_events: Vec<LoggedEvent> = self
            .fresh
            .iter()
            .zip(&appended)
            .map(|(e, seq)| logged_by(*seq, e, self.user.clone()))
            .collect();
        Ok(push.answer(&seqs, head, appended_events))
    }
}

/// Whether the event's data names the list its todo is in.
fn names_a_list(event: &StoredEvent) -> bool {
    event.event_type == "TodoCreated" || event.event_type == "TodoListChanged"
}

/// The `list_id` a TodoCreated's or TodoListChanged's data names, if it names a well-formed one.
fn list_id_of(data: &str) -> Option<AggregateId> {
    serde_json::from_str::<serde_json::Value>(data)
        .ok()?
        .get("list_id")?
        .as_str()?
        .parse()
        .ok()
}

fn accepted(request: &PushRequest, seqs: &[Option<u64>]) -> Vec<Accepted> {
    request
        .events
        .iter()
        .zip(seqs)
        .filter_map(|(e, seq)| {
            seq.map(|seq| Accepted {
                event_id: e.event_id.clone(),
                seq,
            })
        })
        .collect()
}

/// The SQLite log, read event by event (an index probe in this process costs microseconds;
/// batching would only build longer statements).
impl PushTarget for EventLog {
    fn homes(&mut self, ids: &[AggregateId]) -> Result<HashMap<AggregateId, WorkspaceId>, Failure> {
        let mut homes = HashMap::new();
        for id in ids {
            if let Some(home) = self.home(*id)? {
                homes.insert(*id, home);
            }
        }
        Ok(homes)
    }

    fn stored(&mut self, ids: &[EventId]) -> Result<HashMap<EventId, (u64, StoredEvent)>, Failure> {
        let mut stored = HashMap::new();
        for id in ids {
            if let Some(found) = self.find(*id)? {
                stored.insert(*id, found);
            }
        }
        Ok(stored)
    }

    fn head(&mut self, workspace: WorkspaceId) -> Result<u64, Failure> {
        Ok(EventLog::head(self, workspace)?)
    }

    fn append(
        &mut self,
        events: &[StoredEvent],
        user: Option<&str>,
    ) -> Result<Vec<u64>, AppendError> {
        match self.append_batch_by(events, user) {
            Ok(appended) => Ok(appended.iter().map(|a| a.seq).collect()),
            Err(LogError::VersionConflict {
                aggregate,
                expected,
                actual,
            }) => Err(AppendError::VersionConflict {
                aggregate,
                expected,
                actual,
            }),
            Err(LogError::DuplicateEvent { event_id }) => Err(AppendError::Duplicate { event_id }),
            Err(e) => Err(AppendError::Failed(Box::new(e))),
        }
    }
}
