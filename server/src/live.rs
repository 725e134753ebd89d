//! Live updates over WebSocket (`GET /api/sync/live?workspace_id=...`): when a workspace's head
//! advances, every subscribed socket is told the new head, with the new events when they are
//! few. One broadcast channel per workspace; no socket polls the database. A socket that falls
//! behind its channel is sent the latest head and pulls: a missed message is healed by a pull,
//! never trusted (docs/protocol.md, "Live").

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tandem_events::ids::WorkspaceId;
use tandem_protocol::sync::{ErrorCode, LiveMessage, LoggedEvent, SyncError};
use tokio::sync::{broadcast, watch};

use crate::sync_layer;

/// At most this many events ride along with a head message; more, and clients pull.
pub const MAX_EVENTS_PER_MESSAGE: usize = 50;
/// Messages a slow socket may fall behind before it is sent a bare head.
const CHANNEL_CAPACITY: usize = 64;

/// One message, serialised once for all its subscribers.
#[derive(Clone)]
struct Frame {
    head: u64,
    text: Arc<str>,
}

/// The broadcast channels, one per workspace, made on first use.
pub struct Hub {
    channels: Mutex<HashMap<WorkspaceId, broadcast::Sender<Frame>>>,
    heads: Mutex<HashMap<WorkspaceId, u64>>,
    stop: watch::Sender<bool>,
    clients: AtomicI64,
}

impl Hub {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            channels: Mutex::new(HashMap::new()),
            heads: Mutex::new(HashMap::new()),
            stop: watch::channel(false).0,
            clients: AtomicI64::new(0),
        })
    }

    /// Connected sockets.
    pub fn clients(&self) -> i64 {
        self.clients.load(Ordering::Relaxed)
    }

    fn channel(&self, workspace: WorkspaceId) -> broadcast::Sender<Frame> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        channels
            .entry(workspace)
            .or_insert_with(|| broadcast::channel(CHANNEL_CAPACITY).0)
            .clone()
    }

    /// Announces a new head (after a push stored events).
    pub fn publish(&self, workspace: WorkspaceId, head: u64, events: &[LoggedEvent]) {
        {
            let mut heads = self.heads.lock().unwrap_or_else(|p| p.into_inner());
            let known = heads.entry(workspace).or_default();
            *known = (*known).max(head);
        }
        let events = if events.len() <= MAX_EVENTS_PER_MESSAGE {
            events.to_vec()
        } else {
            vec![]
        };
        let text = head_message(workspace, head, events);
        // No subscriber is not an error.
        let _ = self.channel(workspace).send(Frame {
            head,
            text: text.into(),
        });
    }

    /// Closes every socket (server shutdown).
    pub fn shutdown(&self) {
        let _ = self.stop.send(true);
    }
}

fn head_message(workspace: WorkspaceId, head: u64, events: Vec<LoggedEvent>) -> String {
    serde_json::to_string(&LiveMessage::Head {
        workspace_id: workspace.to_string(),
        head,
        events,
    })
    .unwrap_or_default()
}

#[derive(Debug, Deserialize)]
pub struct LiveParams {
    workspace_id: Option<String>,
}

/// What the socket handler needs: the hub and a way to read the current head.
#[derive(Clone)]
pub struct LiveState {
    pub hub: Arc<Hub>,
    pub head: Arc<dyn Fn(WorkspaceId) -> u64 + Send + Sync>,
}

pub async fn upgrade(
    State(state): State<LiveState>,
    params: Result<Query<LiveParams>, axum::extract::rejection::QueryRejection>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let workspace = match params.ok().and_then(|Query(p)| p.workspace_id) {
        Some(text) => match text.parse::<WorkspaceId>() {
            Ok(ws) => ws,
            Err(e) => {
                return sync_layer::error(SyncError::new(ErrorCode::Malformed, e.to_string()))
            }
        },
        None => {
            return sync_layer::error(SyncError::new(
                ErrorCode::Malformed,
                "the query must name a workspace_id",
            ))
        }
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(e) => {
            return sync_layer::error(SyncError::new(
                ErrorCode::Malformed,
                format!("not a WebSocket upgrade: {e}"),
            ))
        }
    };
    let head = tokio::task::spawn_blocking({
        let head = Arc::clone(&state.head);
        move || head(workspace)
    })
    .await
    .unwrap_or(0);
    ws.max_message_size(64 * 1024)
        .on_upgrade(move |socket| serve(socket, state.hub, workspace, head))
        .into_response()
}

async fn serve(mut socket: WebSocket, hub: Arc<Hub>, workspace: WorkspaceId, head: u64) {
    hub.clients.fetch_add(1, Ordering::Relaxed);
    let mut frames = hub.channel(workspace).subscribe();
    let mut stop = hub.stop.subscribe();
    let stopping = *stop.borrow_and_update();
    // The head now, so the client knows whether to pull.
    let mut sent_head = head;
    let first = head_message(workspace, head, vec![]);
    if !stopping && socket.send(Message::Text(first.into())).await.is_ok() {
        loop {
            tokio::select! {
                frame = frames.recv() => match frame {
                    Ok(frame) => {
                        if frame.head <= sent_head {
                            continue;
                        }
                        sent_head = frame.head;
                        if socket.send(Message::Text(frame.text.to_string().into())).await.is_err() {
                            break;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let latest = hub.heads.lock().map(|h| h.get(&workspace).copied().unwrap_or(0)).unwrap_or(0);
                        sent_head = sent_head.max(latest);
                        let text = head_message(workspace, sent_head, vec![]);
                        if socket.send(Message::Text(text.into())).await.is_err() {
                            break;
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                incoming = socket.recv() => match incoming {
                    // Clients have nothing to say but pings (answered by axum) and close.
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => {}
                },
                // The flag only ever goes from false to true.
                _ = stop.changed() => {
                    let _ = socket.send(Message::Close(None)).await;
                    break;
                }
            }
        }
    }
    hub.clients.fetch_sub(1, Ordering::Relaxed);
}
