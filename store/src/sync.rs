//! The sync driver: performs what the pure engine (`tandem_events::sync`) asks, against a
//! [`Transport`] (HTTP natively, `fetch` in the browser worker), storing what it pulls in the
//! device's [`Replica`]. It never sleeps itself: when the engine wants to wait it returns, and
//! the caller waits (tokio natively, a timer in the worker), so the same code runs everywhere.

use tandem_events::ids::{EventId, WorkspaceId};
use tandem_events::sync::{Action, Engine, Failure, Input, Phase, Settings};
use tandem_protocol::sync::{
    ErrorCode, PullRequest, PullResponse, PushRequest, PushResponse, SyncError,
};

use crate::replica::{Replica, ReplicaError};
use crate::wire::{from_wire, to_wire, WireError};

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
}

#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error(transparent)]
    Replica(#[from] ReplicaError),
    #[error("the server sent an event this device cannot store: {0}")]
    Wire(#[from] WireError),
}

/// What the user sees of sync (CONTRACT.md `data-sync-state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncState {
    Online,
    Syncing,
    Offline,
    Error,
}

/// A device's replica, its engine and a transport, for one workspace.
pub struct SyncClient<T: Transport> {
    replica: Replica,
    engine: Engine,
    transport: T,
    workspace: WorkspaceId,
    pull_page: u64,
    /// The last refusal that stopped sync, for the user.
    pub last_error: Option<SyncError>,
    /// The server's clock minus ours at the last answer (ms), to warn about a wrong clock.
    pub clock_offset_ms: Option<i64>,
}

impl<T: Transport> SyncClient<T> {
    pub fn new(
        replica: Replica,
        transport: T,
        workspace: WorkspaceId,
        settings: Settings,
    ) -> Result<Self, ReplicaError> {
        let cursor = replica.cursor(workspace)?;
        let pending = replica.pending_len()?;
        Ok(Self {
            replica,
            engine: Engine::new(settings, cursor, pending),
            pull_page: settings.pull_page,
            transport,
            workspace,
            last_error: None,
            clock_offset_ms: None,
        })
    }

    pub fn replica(&self) -> &Replica {
        &self.replica
    }

    pub fn replica_mut(&mut self) -> &mut Replica {
        &mut self.replica
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    pub fn state(&self) -> SyncState {
        match self.engine.phase() {
            Phase::Stopped => SyncState::Error,
            _ if self.engine.failures() > 0 => SyncState::Offline,
            Phase::Idle => SyncState::Online,
            _ => SyncState::Syncing,
        }
    }

    /// Feeds an input to the engine (a local change, a live head, a timer tick).
    pub fn notify(&mut self, input: Input, now_ms: u64, random: u64) -> Result<(), ReplicaError> {
        self.engine.set_pending(self.replica.pending_len()?);
        self.engine.on(input, now_ms, random);
        Ok(())
    }

    /// Performs the engine's actions until it is idle or must wait; returns that action
    /// (`Idle` or `Wait`). `now` and `random` are injected.
    pub async fn run(
        &mut self,
        mut now: impl FnMut() -> u64,
        mut random: impl FnMut() -> u64,
    ) -> Result<Action, DriverError> {
        loop {
            self.engine.set_pending(self.replica.pending_len()?);
            let action = self.engine.next(now());
            let input = match action {
                Action::Idle | Action::Wait { .. } => return Ok(action),
                Action::Pull { cursor } => self.pull(cursor).await?,
                Action::Push { cursor, limit } => self.push(cursor, limit).await?,
                Action::CorrectClock { server_time_ms } => {
                    let server = u64::try_from(server_time_ms).unwrap_or(0);
                    self.replica.correct_clock(server)?;
                    Input::ClockCorrected
                }
            };
            self.engine.on(input, now(), random());
        }
    }

    async fn pull(&mut self, cursor: u64) -> Result<Input, DriverError> {
        let request = PullRequest {
            device_id: self.replica.log().device_id().to_string(),
            workspace_id: self.workspace.to_string(),
            cursor,
            limit: Some(self.pull_page),
        };
        match self.transport.pull(&request).await {
            Ok(response) => {
                self.observe_server_time(response.server_time_ms);
                let mut pulled = Vec::with_capacity(response.events.len());
                for logged in &response.events {
                    pulled.push((logged.seq, from_wire(&logged.event)?));
                }
                // Pages of a long pull are stored as they come and projected after the last one
                // (one catch-up, in bulk when the backlog is large).
                self.replica.store_pulled(&pulled, !response.has_more)?;
                let cursor = self.replica.cursor(self.workspace)?;
                Ok(Input::Pulled {
                    cursor,
                    head: response.head,
                    has_more: response.has_more,
                })
            }
            Err(e) => Ok(Input::Failed(self.failure(e))),
        }
    }

    async fn push(&mut self, cursor: u64, limit: usize) -> Result<Input, DriverError> {
        let events = self.replica.pending(limit)?;
        let request = PushRequest {
            device_id: self.replica.log().device_id().to_string(),
            workspace_id: self.workspace.to_string(),
            cursor,
            events: events.iter().map(to_wire).collect(),
        };
        match self.transport.push(&request).await {
            Ok(response) => {
                self.observe_server_time(response.server_time_ms);
                let mut own: Vec<(EventId, u64)> = Vec::with_capacity(response.accepted.len());
                for a in &response.accepted {
                    if let Ok(id) = a.event_id.parse() {
                        own.push((id, a.seq));
                    }
                }
                own.sort_by_key(|(_, seq)| *seq);
                // Stored right after our cursor: take the acks. Otherwise (acks of events the
                // server stored earlier, others' events in between) the next pull brings them.
                let contiguous = own
                    .iter()
                    .enumerate()
                    .all(|(i, (_, seq))| *seq == cursor + 1 + i as u64);
                if contiguous && response.head == cursor + own.len() as u64 {
                    self.replica.accept(&[], &own)?;
                    Ok(Input::Pushed {
                        cursor: response.head,
                    })
                } else {
                    self.engine.on(Input::Pushed { cursor }, 0, 0);
                    Ok(Input::HeadAnnounced {
                        head: response.head.max(cursor + 1),
                    })
                }
            }
            Err(e) => Ok(Input::Failed(self.failure(e))),
        }
    }

    fn observe_server_time(&mut self, server_time_ms: i64) {
        let ours = i64::try_from(self.replica.log().now_ms()).unwrap_or(i64::MAX);
        self.clock_offset_ms = Some(server_time_ms - ours);
    }

    fn failure(&mut self, error: TransportError) -> Failure {
        match error {
            TransportError::Unreachable(_) => Failure::Transport,
            TransportError::Refused(e) => {
                let failure = match e.code {
                    ErrorCode::PullRequired => Failure::PullRequired,
                    ErrorCode::ClockDrift => Failure::ClockDrift {
                        server_time_ms: e.server_time_ms.unwrap_or(0),
                    },
                    ErrorCode::VersionConflict => Failure::VersionConflict,
                    ErrorCode::Internal => Failure::Transport,
                    _ => Failure::Rejected,
                };
                if failure == Failure::Rejected {
                    self.last_error = Some(e);
                }
                failure
            }
        }
    }
}
