//! Live updates over WebSocket (`GET /api/sync/live?workspace_id=...`): when a workspace's head
//! advances, every subscribed socket is told the new head, with the new events when they are
//! few. One broadcast channel per workspace with sockets; no socket polls the database. A
//! socket that falls behind its channel is sent the latest head and dropped; one that is slow
//! to take a message or silent past the keepalive is dropped: a missed message is healed by a
//! pull, never trusted (docs/protocol.md, "Live").

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde::Deserialize;
use tandem_accounts::{AccountStore, Caller, Principal};
use tandem_events::ids::WorkspaceId;
use tandem_protocol::sync::{ErrorCode, LiveMessage, LoggedEvent, Person, SyncError};
use tokio::sync::{broadcast, watch};

use crate::errors;

/// At most this many events ride along with a head message; more, and clients pull.
pub const MAX_EVENTS_PER_MESSAGE: usize = 50;
/// Bytes a socket reads at a time (clients send only pings, pongs and close).
const LIVE_READ_BUFFER: usize = 4 * 1024;
/// Messages a slow socket may fall behind before it is told to pull and dropped.
const CHANNEL_CAPACITY: usize = 64;

/// How the hub treats slow and silent sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// A send that takes longer drops the socket (its client reconnects and pulls).
    pub send_timeout: Duration,
    /// A ping this often keeps proxies from cutting an idle socket (they do at ~60 s)...
    pub ping_every: Duration,
    /// ...and a socket silent (no pong, nothing) longer than this at a ping is dropped.
    pub silent_limit: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            send_timeout: Duration::from_secs(5),
            ping_every: Duration::from_secs(25),
            silent_limit: Duration::from_secs(60),
        }
    }
}

/// One message, serialised once and shared by every subscriber (a reference count, no copy).
#[derive(Clone)]
struct Frame {
    head: u64,
    text: Utf8Bytes,
}

/// The close code of a socket whose credentials ended (sign-out, token deleted, account
/// disabled): the client asks to sign in again.
pub const CLOSE_UNAUTHENTICATED: u16 = 4401;
/// The close code of a socket whose account lost the workspace (removed, workspace deleted):
/// the client stops syncing it and says why (DESIGN.md rule 23).
pub const CLOSE_FORBIDDEN: u16 = 4403;

/// Whose a socket is: checked again whenever access is taken away.
#[derive(Debug, Clone)]
pub struct SocketOwner {
    pub principal: Principal,
    pub workspace: WorkspaceId,
}

/// Why a socket is closed (its close code and reason), once it is.
type Kick = Option<(u16, String)>;
type Kicked = watch::Receiver<Kick>;

struct Registered {
    owner: Arc<SocketOwner>,
    kick: watch::Sender<Kick>,
}

/// A workspace's broadcast channel, and the greatest head published on it.
struct Channel {
    sender: broadcast::Sender<Frame>,
    announced: u64,
}

/// The broadcast channels, one per workspace with sockets, removed when its last socket
/// leaves (DESIGN.md rule 22: naming a workspace makes nothing that outlives the socket), and
/// the open sockets with their owners, so access taken away closes them at once.
pub struct Hub {
    channels: Mutex<HashMap<WorkspaceId, Channel>>,
    sockets: Mutex<HashMap<u64, Registered>>,
    next_socket: AtomicU64,
    stop: watch::Sender<bool>,
    clients: AtomicI64,
    max_clients: i64,
    timing: Timing,
}

impl Hub {
    pub fn new(max_clients: usize) -> Arc<Self> {
        Self::with_timing(max_clients, Timing::default())
    }

    pub fn with_timing(max_clients: usize, timing: Timing) -> Arc<Self> {
        Arc::new(Self {
            channels: Mutex::new(HashMap::new()),
            sockets: Mutex::new(HashMap::new()),
            next_socket: AtomicU64::new(1),
            stop: watch::channel(false).0,
            clients: AtomicI64::new(0),
            max_clients: i64::try_from(max_clients).unwrap_or(i64::MAX),
            timing,
        })
    }

    /// Connected sockets.
    pub fn clients(&self) -> i64 {
        self.clients.load(Ordering::Relaxed)
    }

    /// Whether a socket here follows `workspace`.
    pub fn follows(&self, workspace: WorkspaceId) -> bool {
        self.channels
            .lock()
            .map(|c| c.contains_key(&workspace))
            .unwrap_or(false)
    }

    /// The greatest head announced to `workspace`'s sockets since the first of them came
    /// (None: no socket here follows it).
    pub fn announced(&self, workspace: WorkspaceId) -> Option<u64> {
        self.channels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&workspace)
            .map(|c| c.announced)
    }

    /// Live channels (workspaces with at least one socket).
    pub fn channels(&self) -> usize {
        self.channels.lock().map(|c| c.len()).unwrap_or(0)
    }

    fn subscribe(&self, workspace: WorkspaceId) -> broadcast::Receiver<Frame> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        channels
            .entry(workspace)
            .or_insert_with(|| Channel {
                sender: broadcast::channel(CHANNEL_CAPACITY).0,
                announced: 0,
            })
            .sender
            .subscribe()
    }

    /// Called when a socket's receiver is gone: removes the channel if it was the last.
    fn leave(&self, workspace: WorkspaceId) {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if channels
            .get(&workspace)
            .is_some_and(|c| c.sender.receiver_count() == 0)
        {
            channels.remove(&workspace);
        }
    }

    /// Announces a new head (after a push stored events) to the workspace's sockets, if any.
    /// `people`: the names of the accounts the events name.
    pub fn publish(
        &self,
        workspace: WorkspaceId,
        head: u64,
        events: &[LoggedEvent],
        people: &[Person],
    ) {
        let sender = {
            let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
            match channels.get_mut(&workspace) {
                Some(c) => {
                    c.announced = c.announced.max(head);
                    c.sender.clone()
                }
                None => return,
            }
        };
        let (events, people) = if events.len() <= MAX_EVENTS_PER_MESSAGE {
            (events.to_vec(), people.to_vec())
        } else {
            (vec![], vec![])
        };
        let text = head_message(workspace, head, events, people);
        // A socket that left meanwhile is not an error.
        let _ = sender.send(Frame {
            head,
            text: text.into(),
        });
    }

    /// Closes every socket (server shutdown).
    pub fn shutdown(&self) {
        let _ = self.stop.send(true);
    }

    /// Closes the sockets whose owner matches, with `code` and `reason` (before the caller
    /// answers: nothing more reaches them).
    pub fn close_where(&self, matches: impl Fn(&SocketOwner) -> bool, code: u16, reason: &str) {
        let sockets = self.sockets.lock().unwrap_or_else(|p| p.into_inner());
        for entry in sockets.values() {
            if matches(&entry.owner) {
                let _ = entry.kick.send(Some((code, reason.to_string())));
            }
        }
    }

    /// Re-checks every open socket against accounts.db (after access was taken away, here or
    /// by the command line, and now and then for credentials that expired): a socket whose
    /// credentials ended or whose account is no longer a member is closed.
    pub fn revalidate(&self, accounts: &dyn AccountStore, now: i64) {
        let owners: Vec<(u64, Arc<SocketOwner>)> = {
            let sockets = self.sockets.lock().unwrap_or_else(|p| p.into_inner());
            sockets
                .iter()
                .map(|(id, r)| (*id, Arc::clone(&r.owner)))
                .collect()
        };
        for (id, owner) in owners {
            let verdict = match accounts.still_valid(&owner.principal, now) {
                Ok(false) => Some((CLOSE_UNAUTHENTICATED, "your session or token has ended")),
                Ok(true) => match accounts
                    .role(&owner.principal.user.user_id, &owner.workspace.to_string())
                {
                    Ok(_) => None,
                    Err(tandem_accounts::AccountsError::Forbidden(_)) => Some((
                        CLOSE_FORBIDDEN,
                        "you are no longer a member of this workspace",
                    )),
                    Err(_) => None,
                },
                Err(_) => None,
            };
            if let Some((code, reason)) = verdict {
                let sockets = self.sockets.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(entry) = sockets.get(&id) {
                    let _ = entry.kick.send(Some((code, reason.to_string())));
                }
            }
        }
    }

    /// Registers a socket, unless its account holds `per_account` already (counted and
    /// inserted under one lock: concurrent upgrades cannot all pass).
    fn register(&self, owner: SocketOwner, per_account: usize) -> Option<(u64, Kicked)> {
        let mut sockets = self.sockets.lock().unwrap_or_else(|p| p.into_inner());
        let held = sockets
            .values()
            .filter(|r| r.owner.principal.user.user_id == owner.principal.user.user_id)
            .count();
        if held >= per_account {
            return None;
        }
        let id = self.next_socket.fetch_add(1, Ordering::Relaxed);
        let (kick, kicked) = watch::channel(None);
        sockets.insert(
            id,
            Registered {
                owner: Arc::new(owner),
                kick,
            },
        );
        Some((id, kicked))
    }

    fn unregister(&self, id: u64) {
        let mut sockets = self.sockets.lock().unwrap_or_else(|p| p.into_inner());
        sockets.remove(&id);
    }
}

fn head_message(
    workspace: WorkspaceId,
    head: u64,
    events: Vec<LoggedEvent>,
    people: Vec<Person>,
) -> String {
    encode(LiveMessage::Head {
        workspace_id: workspace.to_string(),
        head,
        log_id: None,
        events,
        people,
    })
}

fn encode(message: LiveMessage) -> String {
    serde_json::to_string(&message).unwrap_or_default()
}

#[derive(Debug, Deserialize)]
pub struct LiveParams {
    workspace_id: Option<String>,
}

/// Reads a workspace's head and the log's identity (through a read-only connection; BUSY when
/// none is free).
pub type HeadReader = Arc<dyn Fn(WorkspaceId) -> Result<(u64, String), SyncError> + Send + Sync>;

/// What the socket handler needs: the hub, a way to read the current head, and the accounts
/// (who may follow which workspace).
#[derive(Clone)]
pub struct LiveState {
    pub hub: Arc<Hub>,
    pub head: HeadReader,
    pub accounts: Arc<dyn AccountStore>,
    /// Sockets one account may hold at once.
    pub per_account: usize,
}

pub async fn upgrade(
    State(state): State<LiveState>,
    Extension(caller): Extension<Caller>,
    params: Result<Query<LiveParams>, axum::extract::rejection::QueryRejection>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let workspace = match params.ok().and_then(|Query(p)| p.workspace_id) {
        Some(text) => match text.parse::<WorkspaceId>() {
            Ok(ws) => ws,
            Err(e) => return errors::error(SyncError::new(ErrorCode::Malformed, e.to_string())),
        },
        None => {
            return errors::error(SyncError::new(
                ErrorCode::Malformed,
                "the query must name a workspace_id",
            ))
        }
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(e) => {
            return errors::error(SyncError::new(
                ErrorCode::Malformed,
                format!("not a WebSocket upgrade: {e}"),
            ))
        }
    };
    // Access (DESIGN.md rule 23), before anything is read.
    let accounts = Arc::clone(&state.accounts);
    let checked = tokio::task::spawn_blocking(move || {
        tandem_accounts::access::member(&*accounts, &caller, &workspace.to_string())
    })
    .await;
    let principal = match checked {
        Ok(Ok((principal, _))) => principal,
        Ok(Err(e)) => return errors::error(e),
        Err(e) => {
            return errors::error(SyncError::new(
                ErrorCode::Internal,
                format!("the access check failed: {e}"),
            ))
        }
    };
    let hub = state.hub;
    // Counted from here, so the bound holds for sockets being set up too.
    if hub.clients.fetch_add(1, Ordering::SeqCst) >= hub.max_clients {
        hub.clients.fetch_sub(1, Ordering::SeqCst);
        return busy_response("too many live sockets; retry later");
    }
    let user = principal.user.user_id.clone();
    let Some((socket_id, kicked)) = hub.register(
        SocketOwner {
            principal,
            workspace,
        },
        state.per_account,
    ) else {
        hub.clients.fetch_sub(1, Ordering::SeqCst);
        let mut e = SyncError::new(
            ErrorCode::RateLimited,
            "this account has too many live sockets open",
        );
        e.retry_after_ms = Some(5_000);
        return errors::error(e);
    };
    let seat = Seat {
        hub: Arc::clone(&hub),
        workspace,
        socket_id,
    };
    // Access again, now that the socket is registered: access taken away between the first
    // check and the registration would otherwise be missed by the close that came with it.
    let accounts = Arc::clone(&state.accounts);
    let still =
        tokio::task::spawn_blocking(move || accounts.role(&user, &workspace.to_string())).await;
    if !matches!(still, Ok(Ok(_))) {
        drop(seat);
        return errors::error(tandem_accounts::access::not_a_member());
    }
    // Subscribe first, then read the head: a push between the two is then either in the
    // head read or delivered on the channel, never lost.
    let frames = hub.subscribe(workspace);
    let read = tokio::task::spawn_blocking({
        let head = Arc::clone(&state.head);
        move || head(workspace)
    })
    .await;
    let (head, log_id) = match read {
        Ok(Ok(read)) => read,
        Ok(Err(e)) => {
            drop(frames);
            drop(seat);
            return errors::error(e);
        }
        Err(e) => {
            drop(frames);
            drop(seat);
            return errors::error(SyncError::new(
                ErrorCode::Internal,
                format!("reading the head failed: {e}"),
            ));
        }
    };
    // Small buffers: tungstenite's defaults (128 KiB to read and 128 KiB to gather writes)
    // cost ~140 KB per socket, 1.4 GB for 10,000 idle ones (docs/benchmarks.md, "Scale").
    // Messages here are small; a write goes out at once.
    ws.max_message_size(64 * 1024)
        .read_buffer_size(LIVE_READ_BUFFER)
        .write_buffer_size(0)
        .on_upgrade(move |socket| serve(socket, seat, frames, kicked, head, log_id))
        .into_response()
}

/// Closes a socket with a code and the reason (the client says it to the person).
async fn close(socket: &mut WebSocket, code: u16, reason: &str, limit: Duration) {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    let _ = send(socket, Message::Close(Some(frame)), limit).await;
}

fn busy_response(message: &str) -> Response {
    let now = i64::try_from(crate::databases::now_ms()).unwrap_or(i64::MAX);
    errors::error(tandem_store::central::busy(message, now))
}

/// A socket's place: counted while it lives; its channel goes when the last one leaves.
struct Seat {
    hub: Arc<Hub>,
    workspace: WorkspaceId,
    socket_id: u64,
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.hub.unregister(self.socket_id);
        self.hub.leave(self.workspace);
        self.hub.clients.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Sends with a deadline; false when the socket is gone or too slow.
async fn send(socket: &mut WebSocket, message: Message, timeout: Duration) -> bool {
    matches!(
        tokio::time::timeout(timeout, socket.send(message)).await,
        Ok(Ok(()))
    )
}

async fn serve(
    mut socket: WebSocket,
    seat: Seat,
    mut frames: broadcast::Receiver<Frame>,
    mut kicked: Kicked,
    head: u64,
    log_id: String,
) {
    let workspace = seat.workspace;
    let mut stop = seat.hub.stop.subscribe();
    let stopping = *stop.borrow_and_update();
    // The head now, so the client knows whether to pull.
    let mut sent_head = head;
    let first = encode(LiveMessage::Head {
        workspace_id: workspace.to_string(),
        head,
        log_id: Some(log_id),
        events: vec![],
        people: vec![],
    });
    let timing = seat.hub.timing;
    let limit = timing.send_timeout;
    let mut ping = tokio::time::interval(timing.ping_every);
    ping.tick().await;
    let mut heard = tokio::time::Instant::now();
    let kicked_already = kicked.borrow_and_update().clone();
    if let Some((code, reason)) = kicked_already {
        close(&mut socket, code, &reason, limit).await;
    } else if !stopping && send(&mut socket, Message::Text(first.into()), limit).await {
        loop {
            tokio::select! {
                // Access taken away comes first: nothing more reaches a removed member.
                biased;
                _ = kicked.changed() => {
                    let kick = kicked.borrow_and_update().clone();
                    if let Some((code, reason)) = kick {
                        close(&mut socket, code, &reason, limit).await;
                        break;
                    }
                }
                frame = frames.recv() => match frame {
                    Ok(frame) => {
                        if frame.head <= sent_head {
                            continue;
                        }
                        sent_head = frame.head;
                        if !send(&mut socket, Message::Text(frame.text.clone()), limit).await {
                            break;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        // Too slow to follow: told the newest head (so it pulls), then dropped
                        // (it reconnects).
                        let mut latest = sent_head;
                        while let Ok(frame) = frames.try_recv() {
                            latest = latest.max(frame.head);
                        }
                        let text = head_message(workspace, latest, vec![], vec![]);
                        let _ = send(&mut socket, Message::Text(text.into()), limit).await;
                        let _ = send(&mut socket, Message::Close(None), limit).await;
                        break;
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                incoming = socket.recv() => match incoming {
                    // Clients have nothing to say but pings, pongs and close.
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => heard = tokio::time::Instant::now(),
                },
                _ = ping.tick() => {
                    if heard.elapsed() > timing.silent_limit {
                        break;
                    }
                    if !send(&mut socket, Message::Ping(Default::default()), limit).await {
                        break;
                    }
                }
                // The flag only ever goes from false to true.
                _ = stop.changed() => {
                    let _ = send(&mut socket, Message::Close(None), limit).await;
                    break;
                }
            }
        }
    }
    drop(frames);
    drop(seat);
}
