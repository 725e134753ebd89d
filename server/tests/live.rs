//! The live WebSocket: a subscriber hears about new heads (with the events when few), bad
//! requests get the error shape, and shutdown closes open sockets promptly.

mod common;

use std::time::Duration;
use tandem_accounts::AccountStore as _;

use common::{client, start, sync_until_idle, wall_ms, HttpTransport};
use futures_util::StreamExt;
use serde_json::{json, Value};
use tandem_events::testkit::workload;
use tandem_store::wire::to_wire;
use tokio_tungstenite::tungstenite::Message;

async fn next_json(
    socket: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Value {
    let deadline = Duration::from_secs(5);
    loop {
        let message = tokio::time::timeout(deadline, socket.next())
            .await
            .expect("a message within 5 s")
            .expect("the socket stays open")
            .unwrap();
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

#[tokio::test]
async fn subscribers_hear_new_heads_with_the_events() {
    let server = start().await;
    let events = workload(5, 1, 1, 1);
    let ws = events[0].workspace_id.to_string();
    server.claim(&ws).await;
    let url = || common::live_request(&server.base, &server.token, &ws);
    let (mut socket, _) = tokio_tungstenite::connect_async(url()).await.unwrap();
    let hello = next_json(&mut socket).await;
    assert_eq!(
        (&hello["type"], &hello["workspace_id"], &hello["head"]),
        (&json!("head"), &json!(ws), &json!(0)),
        "{hello}"
    );
    assert!(
        hello["log_id"].as_str().is_some_and(|id| id.len() == 36),
        "the first message names the log: {hello}"
    );

    let body = json!({
        "device_id": events[0].device_id.to_string(),
        "workspace_id": ws,
        "cursor": 0,
        "events": events.iter().map(to_wire).collect::<Vec<_>>(),
    });
    let response = server
        .client()
        .post(format!("{}/api/sync/push", server.base))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let news = next_json(&mut socket).await;
    assert_eq!(news["type"], "head");
    assert_eq!(news["head"], 3);
    let seqs: Vec<u64> = news["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [1, 2, 3]);
    assert_eq!(
        news["events"][0]["event_id"],
        events[0].event_id.to_string()
    );
    // With the pusher's name, so a client stores them without pulling (docs/protocol.md).
    let pusher = news["events"][0]["user_id"].as_str().unwrap();
    assert_eq!(
        news["people"],
        json!([{"user_id": pusher, "username": common::TESTER}]),
        "{news}"
    );

    // A second subscriber joining later is told the head right away.
    let (mut late, _) = tokio_tungstenite::connect_async(url()).await.unwrap();
    assert_eq!(next_json(&mut late).await["head"], 3);
    let started = std::time::Instant::now();
    let (took, _) = server.stop().await;
    assert!(
        took < Duration::from_secs(5),
        "open sockets do not hold the shutdown: {took:?}"
    );
    // The sockets are closed by the server.
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(m)) = socket.next().await {
            if m.is_close() {
                break;
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "closed within {:?}", started.elapsed());
}

/// A path that stores events without a push's answer — a new account's "Inbox", written at
/// its first request — still announces its head to a socket already following the workspace
/// (a client holding a token made on the command line). On PostgreSQL a process's own pushes
/// are not announced again by their notices: the path announces it.
#[tokio::test]
async fn a_new_accounts_inbox_is_announced_to_a_socket_already_there() {
    let server = start().await;
    let (token, ws) = common::admin(server.data_dir.path(), |at| {
        server::admin::user_add(at.clone(), "newbie", "newbie's password")?;
        let (_, token) = server::admin::token_create(at.clone(), "newbie", "phone", None)?;
        let workspaces = server::admin::with_accounts(at, |a| {
            let user = a.user_by_name("newbie")?.expect("just made");
            Ok(a.workspaces_of(&user.user.user_id)?)
        })?;
        Ok((token, workspaces[0].workspace_id.clone()))
    })
    .await
    .unwrap();
    let (mut socket, _) =
        tokio_tungstenite::connect_async(common::live_request(&server.base, &token, &ws))
            .await
            .unwrap();
    assert_eq!(next_json(&mut socket).await["head"], 0, "no Inbox yet");
    let me = common::authorized(&token)
        .get(format!("{}/api/auth/me", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let news = next_json(&mut socket).await;
    assert_eq!(
        (&news["type"], &news["head"]),
        (&json!("head"), &json!(1)),
        "{news}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_bad_live_request_gets_the_error_shape() {
    let server = start().await;
    for query in ["", "?workspace_id=nope"] {
        let response = client()
            .get(format!("{}/api/sync/live{query}", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{query}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], "MALFORMED", "{query}");
    }
    // A valid workspace without the WebSocket handshake.
    let response = client()
        .get(format!(
            "{}/api/sync/live?workspace_id=0190f5a2-7c3e-7b4a-9d2e-1234567890ab",
            server.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    server.stop().await;
}

#[tokio::test]
async fn a_native_client_pulls_when_the_live_socket_announces_a_head() {
    use tandem_events::decide::{ListCommand, TodoCommand};
    use tandem_events::engine::{Input, Settings};
    use tandem_events::ids::{AggregateId, WorkspaceId};
    use tandem_store::driver::SyncClient;

    let server = start().await;
    let ws = WorkspaceId::DEFAULT;
    let make = |n: u128, dir: &tempfile::TempDir| {
        let replica = common::open_replica(dir.path(), n);
        SyncClient::new(
            std::rc::Rc::new(std::cell::RefCell::new(replica)),
            HttpTransport::new(&server),
            ws,
            Settings::default(),
        )
        .unwrap()
    };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut a, mut b) = (make(1, &dir_a), make(2, &dir_b));
    let mut jitter = 99;
    sync_until_idle(&mut b, &mut jitter).await;
    let (mut socket, _) = tokio_tungstenite::connect_async(common::live_request(
        &server.base,
        &server.token,
        &ws.to_string(),
    ))
    .await
    .unwrap();
    // Nothing in the workspace yet (no list is made on first run any more).
    assert_eq!(next_json(&mut socket).await["head"], 0);
    assert_eq!(b.engine().cursor(), 0);

    let list = AggregateId::from_uuid(uuid::Uuid::from_u128(7));
    a.replica_mut()
        .execute_list(
            ws,
            list,
            ListCommand::Create {
                name: "Live".into(),
            },
        )
        .unwrap();
    let todo = AggregateId::from_uuid(uuid::Uuid::from_u128(8));
    a.replica_mut()
        .execute_todo(
            ws,
            todo,
            TodoCommand::Create {
                list_id: list,
                title: "hello".into(),
                position: "V".into(),
                due_date: None,
            },
        )
        .unwrap();
    a.notify(Input::LocalChange, wall_ms(), 0);
    sync_until_idle(&mut a, &mut jitter).await;

    // B does nothing but listen: the announcement makes it pull.
    let news = next_json(&mut socket).await;
    b.notify(
        Input::HeadAnnounced {
            head: news["head"].as_u64().unwrap(),
        },
        wall_ms(),
        0,
    );
    sync_until_idle(&mut b, &mut jitter).await;
    assert_eq!(b.replica().summary().unwrap().todos, 1);
    assert_eq!(b.engine().cursor(), 2);
    server.stop().await;
}

#[tokio::test]
async fn metrics_count_appends_pushes_by_result_sockets_and_latency() {
    let server = start().await;
    let events = workload(6, 1, 1, 1);
    let ws = events[0].workspace_id.to_string();
    server.claim(&ws).await;
    let (mut socket, _) =
        tokio_tungstenite::connect_async(common::live_request(&server.base, &server.token, &ws))
            .await
            .unwrap();
    next_json(&mut socket).await;
    let push = |cursor: u64, evs: &[tandem_events::event::StoredEvent]| {
        json!({
            "device_id": events[0].device_id.to_string(),
            "workspace_id": ws,
            "cursor": cursor,
            "events": evs.iter().map(to_wire).collect::<Vec<_>>(),
        })
    };
    let http = server.client();
    let url_push = format!("{}/api/sync/push", server.base);
    assert_eq!(
        http.post(&url_push)
            .json(&push(0, &events[..2]))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        http.post(&url_push)
            .json(&push(0, &events[2..]))
            .send()
            .await
            .unwrap()
            .status(),
        409
    );
    let text = http
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "tandem_events_appended_total 2",
        "tandem_pushes_total{result=\"accepted\"} 1",
        "tandem_pushes_total{result=\"PULL_REQUIRED\"} 1",
        "tandem_websocket_clients 1",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    assert!(
        text.lines().any(
            |l| l.starts_with("tandem_http_request_duration_seconds_count{")
                && l.contains("route=\"/api/sync/push\"")
                && l.ends_with(" 2")
        ),
        "{text}"
    );
    server.stop().await;
}

#[tokio::test]
async fn the_live_client_reconnects_after_a_server_restart() {
    let server = start().await;
    let addr: std::net::SocketAddr = server.base.trim_start_matches("http://").parse().unwrap();
    let ws = tandem_events::ids::WorkspaceId::DEFAULT.to_string();
    let mut live = common::follow(&server, &ws);
    let deadline = Duration::from_secs(10);
    let first = tokio::time::timeout(deadline, live.heads.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first, 0, "an empty workspace");

    // The server goes away and comes back on the same address and data dir.
    let (_, data_dir) = server.stop().await;
    let server = common::start_on(addr, data_dir, server::config::Limits::default()).await;
    // Someone adds a list meanwhile.
    let list = tandem_events::ids::AggregateId::from_uuid(uuid::Uuid::from_u128(0x77));
    let dir = tempfile::tempdir().unwrap();
    let d = common::open_replica(dir.path(), 4);
    let mut client = tandem_store::driver::SyncClient::new(
        std::rc::Rc::new(std::cell::RefCell::new(d)),
        HttpTransport::new(&server),
        tandem_events::ids::WorkspaceId::DEFAULT,
        tandem_events::engine::Settings::default(),
    )
    .unwrap();
    let mut jitter = 3;
    sync_until_idle(&mut client, &mut jitter).await;
    client
        .replica_mut()
        .execute_list(
            tandem_events::ids::WorkspaceId::DEFAULT,
            list,
            tandem_events::decide::ListCommand::Create {
                name: "Back".into(),
            },
        )
        .unwrap();
    client.notify(tandem_events::engine::Input::LocalChange, wall_ms(), 0);
    sync_until_idle(&mut client, &mut jitter).await;

    // The follower reconnected (backing off; its token was made before the restart and still
    // holds) and hears head 1, either as the greeting of the new connection or as the
    // announcement.
    let reached = tokio::time::timeout(deadline, async {
        while let Some(head) = live.heads.recv().await {
            if head >= 1 {
                return head;
            }
        }
        0
    })
    .await
    .expect("the follower reconnects within 10 s");
    assert_eq!(reached, 1);
    server.stop().await;
}

fn live_url(
    server: &common::Running,
    ws: &str,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    common::live_request(&server.base, &server.token, ws)
}

async fn metric(server: &common::Running, name: &str) -> i64 {
    common::metric(&server.base, name).await
}

/// Waits (with a deadline) until `f` holds.
async fn eventually<F: std::future::Future<Output = bool>>(what: &str, mut f: impl FnMut() -> F) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !f().await {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn live_channels_go_with_their_last_socket() {
    let server = start().await;
    let mut sockets = vec![];
    for n in 0..40u128 {
        let ws = uuid::Uuid::from_u128(0x1000 + n).to_string();
        server.claim(&ws).await;
        let (mut socket, _) = tokio_tungstenite::connect_async(live_url(&server, &ws))
            .await
            .unwrap();
        next_json(&mut socket).await;
        sockets.push(socket);
    }
    assert_eq!(metric(&server, "tandem_live_channels").await, 40);
    for mut socket in sockets {
        socket.close(None).await.unwrap();
    }
    eventually("every channel removed", || async {
        metric(&server, "tandem_live_channels").await == 0
            && metric(&server, "tandem_websocket_clients").await == 0
    })
    .await;
    server.stop().await;
}

#[tokio::test]
async fn sockets_past_the_bound_are_busy_with_retry_after() {
    let server = common::start_with(server::config::Limits {
        live_sockets: 2,
        ..server::config::Limits::default()
    })
    .await;
    let ws = uuid::Uuid::from_u128(0x77).to_string();
    server.claim(&ws).await;
    let mut open = vec![];
    for _ in 0..2 {
        let (mut socket, _) = tokio_tungstenite::connect_async(live_url(&server, &ws))
            .await
            .unwrap();
        next_json(&mut socket).await;
        open.push(socket);
    }
    match tokio_tungstenite::connect_async(live_url(&server, &ws)).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 503);
            assert_eq!(response.headers()["retry-after"], "1");
            let body: Value = serde_json::from_slice(response.body().as_deref().unwrap()).unwrap();
            assert_eq!(body["code"], "BUSY");
        }
        other => panic!(
            "expected 503 BUSY, got {:?}",
            other.map(|(_, r)| r.status())
        ),
    }
    // Everyone else is still served: a socket that leaves frees its place.
    drop(open.pop());
    eventually("a place comes free", || async {
        tokio_tungstenite::connect_async(live_url(&server, &ws))
            .await
            .is_ok()
    })
    .await;
    server.stop().await;
}

#[tokio::test]
async fn a_push_while_a_socket_connects_is_never_missed() {
    // The socket must subscribe before it reads the head it sends first. Here the head read
    // itself lets a push land (head 2) right after its snapshot (head 1): the socket must
    // still hear of head 2.
    use server::live::{self, Hub, LiveState};
    let hub = Hub::new(10);
    let ws: tandem_events::ids::WorkspaceId =
        uuid::Uuid::from_u128(0x42).to_string().parse().unwrap();
    let announcer = std::sync::Arc::clone(&hub);
    let (accounts, caller, _dir) = member_of(ws);
    let state = LiveState {
        hub: std::sync::Arc::clone(&hub),
        head: std::sync::Arc::new(move |workspace| {
            announcer.publish(workspace, 2, &[], &[]);
            Ok((1, "log".to_string()))
        }),
        accounts,
        per_account: 10,
    };
    let app = axum::Router::new()
        .route("/live", axum::routing::get(live::upgrade))
        .layer(axum::Extension(caller))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move { axum::serve(listener, app).await });
    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("ws://{addr}/live?workspace_id={ws}"))
            .await
            .unwrap();
    assert_eq!(next_json(&mut socket).await["head"], 1);
    assert_eq!(
        next_json(&mut socket).await["head"],
        2,
        "the push during the connect was announced"
    );
    hub.shutdown();
    task.abort();
}

/// Accounts (in a temp dir) where one account owns `ws`, and that account as the caller.
fn member_of(
    ws: tandem_events::ids::WorkspaceId,
) -> (
    std::sync::Arc<tandem_accounts::Accounts>,
    tandem_accounts::Caller,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().unwrap();
    let accounts = tandem_accounts::Accounts::open(dir.path().join("accounts.db")).unwrap();
    let user = accounts
        .create_account(&tandem_accounts::NewAccount {
            user_id: "u1",
            username: "ann",
            password_hash: "-",
            must_be_first: false,
            invite: None,
            workspace_id: &ws.to_string(),
            workspace_name: "W",
            adopt: &[],
            now: 0,
        })
        .unwrap();
    let caller = tandem_accounts::Caller::Signed(tandem_accounts::Principal {
        user: user.user,
        is_admin: false,
        credential: tandem_accounts::Credential::Token {
            token_id: "t".into(),
        },
    });
    (std::sync::Arc::new(accounts), caller, dir)
}

/// A hub with fast timing behind a bare router on 127.0.0.1:0 (heads read as 0).
async fn bare_hub(timing: server::live::Timing) -> (std::sync::Arc<server::live::Hub>, String) {
    use server::live::{self, Hub, LiveState};
    let hub = Hub::with_timing(10, timing);
    let ws: tandem_events::ids::WorkspaceId =
        uuid::Uuid::from_u128(0x51).to_string().parse().unwrap();
    let (accounts, caller, dir) = member_of(ws);
    std::mem::forget(dir);
    let state = LiveState {
        hub: std::sync::Arc::clone(&hub),
        head: std::sync::Arc::new(|_| Ok((0, "log".to_string()))),
        accounts,
        per_account: 10,
    };
    let app = axum::Router::new()
        .route("/live", axum::routing::get(live::upgrade))
        .layer(axum::Extension(caller))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (
        hub,
        format!(
            "ws://{addr}/live?workspace_id={}",
            uuid::Uuid::from_u128(0x51)
        ),
    )
}

async fn gone(hub: &server::live::Hub, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while hub.clients() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: still connected"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(hub.channels(), 0, "{what}: its channel went with it");
}

#[tokio::test]
async fn sockets_are_pinged_and_a_silent_one_is_dropped() {
    let (hub, url) = bare_hub(server::live::Timing {
        send_timeout: Duration::from_secs(5),
        ping_every: Duration::from_millis(100),
        silent_limit: Duration::from_millis(300),
    })
    .await;
    // A client that answers (tungstenite replies to pings while it is read) stays, and sees
    // the pings.
    let (mut alive, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let mut pings = 0;
    let until = std::time::Instant::now() + Duration::from_millis(800);
    while std::time::Instant::now() < until {
        if let Ok(Some(Ok(Message::Ping(_)))) =
            tokio::time::timeout(Duration::from_millis(200), alive.next()).await
        {
            pings += 1;
        }
    }
    assert!(pings >= 3, "{pings} pings in 800 ms");
    assert_eq!(hub.clients(), 1, "a socket that answers is kept");
    // A client that goes silent (never read: no pongs) is dropped.
    let (mut silent, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    next_json(&mut silent).await;
    drop(alive);
    gone(&hub, "the silent socket").await;
}

#[tokio::test]
async fn a_socket_too_slow_to_take_its_messages_is_dropped() {
    let (hub, url) = bare_hub(server::live::Timing {
        send_timeout: Duration::from_millis(200),
        ping_every: Duration::from_secs(60),
        silent_limit: Duration::from_secs(120),
    })
    .await;
    let (mut slow, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    next_json(&mut slow).await;
    // Then it stops reading while big announcements keep coming: once the network buffers
    // are full a send waits, and past the send timeout (or 64 messages behind) it is dropped.
    let ws: tandem_events::ids::WorkspaceId =
        uuid::Uuid::from_u128(0x51).to_string().parse().unwrap();
    let events: Vec<tandem_protocol::sync::LoggedEvent> = workload(4, 1, 10, 39)
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let mut e = e.clone();
            e.event_data = json!({"name": "x".repeat(20_000)}).to_string();
            tandem_store::wire::logged(i as u64 + 1, &e)
        })
        .collect();
    let mut head = 1;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while hub.clients() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the slow socket was never dropped"
        );
        head += 1;
        hub.publish(ws, head, &events, &[]);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    gone(&hub, "the slow socket").await;
    drop(slow);
}
