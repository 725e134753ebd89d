//! Accounts and access on the real server (CONTRACT.md "Accounts, workspaces, access"; DESIGN.md
//! rule 23): isolation of accounts and workspaces on every path, credentials that end, invites,
//! roles, the browser's attacks (Origin, Host, form posts), rate limits, the command line while
//! serving, and nothing secret in the log.

mod common;

use std::time::{Duration, Instant};

use common::{client, sign_up, start_open, Running};
use futures_util::StreamExt;
use serde_json::{json, Value};
use tandem_events::testkit::workload;
use tandem_store::wire::to_wire;

/// A signed-in person on `server`: their session cookie and their first workspace.
struct Person {
    cookie: String,
    user_id: String,
    workspace: String,
}

async fn person(server: &Running, name: &str) -> Person {
    let cookie = sign_up(&server.base, name).await;
    let me = get(server, "/api/auth/me", &cookie).await;
    assert_eq!(me.0, 200, "{}", me.1);
    Person {
        cookie,
        user_id: me.1["user"]["user_id"].as_str().unwrap().to_string(),
        workspace: me.1["workspaces"][0]["workspace_id"]
            .as_str()
            .unwrap()
            .to_string(),
    }
}

async fn answer(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn get(server: &Running, path: &str, cookie: &str) -> (u16, Value) {
    answer(
        client()
            .get(format!("{}{path}", server.base))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn post(server: &Running, path: &str, cookie: &str, body: Value) -> (u16, Value) {
    answer(
        client()
            .post(format!("{}{path}", server.base))
            .header("cookie", cookie)
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn send(
    server: &Running,
    method: reqwest::Method,
    path: &str,
    cookie: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = client()
        .request(method, format!("{}{path}", server.base))
        .header("cookie", cookie);
    if let Some(body) = body {
        request = request.json(&body);
    }
    answer(request.send().await.unwrap()).await
}

/// A push of `n` new events into `workspace` by device `device`.
fn push_body(workspace: &str, device: u128, seed: u64, cursor: u64) -> Value {
    let events: Vec<_> = workload(seed, 1, 1, 1)
        .into_iter()
        .map(|mut e| {
            e.workspace_id = workspace.parse().unwrap();
            e.device_id = tandem_events::ids::DeviceId::from_uuid(uuid::Uuid::from_u128(device));
            e.hlc_timestamp.node = e.device_id;
            e
        })
        .collect();
    json!({
        "device_id": uuid::Uuid::from_u128(device).to_string(),
        "workspace_id": workspace,
        "cursor": cursor,
        "events": events.iter().map(to_wire).collect::<Vec<_>>(),
    })
}

fn pull_body(workspace: &str, device: u128) -> Value {
    json!({"device_id": uuid::Uuid::from_u128(device).to_string(), "workspace_id": workspace, "cursor": 0})
}

fn live(
    server: &Running,
    workspace: &str,
    cookie: &str,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!(
        "{}/api/sync/live?workspace_id={workspace}",
        server.base.replace("http", "ws")
    )
    .into_client_request()
    .unwrap();
    request
        .headers_mut()
        .insert("cookie", cookie.parse().unwrap());
    request
}

/// Waits (at most `within`) for the socket to be closed by the server; returns the close code.
async fn closed_within(
    socket: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    within: Duration,
) -> Option<u16> {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, socket.next()).await {
            Err(_) => panic!("the socket was not closed within {within:?}"),
            Ok(None) | Ok(Some(Err(_))) => return None,
            Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Close(frame)))) => {
                return frame.map(|f| f.code.into())
            }
            Ok(Some(Ok(_))) => {}
        }
    }
}

#[tokio::test]
async fn accounts_and_workspaces_are_isolated_on_every_path() {
    let server = start_open().await;
    let ann = person(&server, "ann").await;
    let bob = person(&server, "bob").await;
    // Ann writes in her workspace.
    let (status, body) = post(
        &server,
        "/api/sync/push",
        &ann.cookie,
        push_body(&ann.workspace, 1, 1, 1),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, pulled) = post(
        &server,
        "/api/sync/pull",
        &ann.cookie,
        pull_body(&ann.workspace, 1),
    )
    .await;
    assert_eq!(status, 200);
    // Events record the pushing account; the server's "Inbox" too (made for Ann).
    let events = pulled["events"].as_array().unwrap();
    assert!(events.len() >= 2);
    assert!(
        events.iter().all(|e| e["user_id"] == ann.user_id.as_str()),
        "{pulled}"
    );

    // Bob, on Ann's workspace, and on one that does not exist: the same 403 everywhere.
    let absent = uuid::Uuid::from_u128(0xabcd).to_string();
    let mut answers = Vec::new();
    for ws in [&ann.workspace, &absent] {
        let push = post(
            &server,
            "/api/sync/push",
            &bob.cookie,
            push_body(ws, 2, 2, 0),
        )
        .await;
        let pull = post(&server, "/api/sync/pull", &bob.cookie, pull_body(ws, 2)).await;
        let snapshot = post(
            &server,
            "/api/snapshot",
            &bob.cookie,
            json!({"workspace_id": ws, "list_id": null}),
        )
        .await;
        let members = get(
            &server,
            &format!("/api/workspaces/{ws}/members"),
            &bob.cookie,
        )
        .await;
        let invite = post(
            &server,
            &format!("/api/workspaces/{ws}/invites"),
            &bob.cookie,
            json!({}),
        )
        .await;
        let rename = send(
            &server,
            reqwest::Method::PATCH,
            &format!("/api/workspaces/{ws}"),
            &bob.cookie,
            Some(json!({"name": "mine"})),
        )
        .await;
        for (what, (status, body)) in [
            ("push", &push),
            ("pull", &pull),
            ("snapshot", &snapshot),
            ("members", &members),
            ("invite", &invite),
            ("rename", &rename),
        ] {
            assert_eq!(*status, 403, "{what} {ws}: {body}");
            assert_eq!(body["code"], "FORBIDDEN", "{what}");
        }
        let strip = |v: &Value| {
            let mut v = v.clone();
            v.as_object_mut().map(|o| o.remove("server_time_ms"));
            v
        };
        answers.push([
            strip(&push.1),
            strip(&pull.1),
            strip(&snapshot.1),
            strip(&members.1),
        ]);
    }
    assert_eq!(
        answers[0], answers[1],
        "absent and foreign workspaces answer alike"
    );
    // The live socket.
    match tokio_tungstenite::connect_async(live(&server, &ann.workspace, &bob.cookie)).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 403),
        other => panic!("expected 403, got {:?}", other.map(|(_, r)| r.status())),
    }
    // Bob's page of Ann's list: his own workspace, the list "not here".
    let ann_page = client()
        .get(&server.base)
        .header("cookie", &ann.cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let list = ann_page
        .split("href=\"/lists/")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_string();
    let bob_page = client()
        .get(format!("{}/lists/{list}", server.base))
        .header("cookie", &bob.cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(bob_page.contains("This list is not here yet"), "{bob_page}");
    assert!(
        !bob_page.contains(&ann.workspace),
        "nothing of Ann's workspace"
    );
    // No credentials: 401 on every path.
    for (path, body) in [
        ("/api/sync/push", push_body(&ann.workspace, 1, 1, 0)),
        ("/api/sync/pull", pull_body(&ann.workspace, 1)),
        (
            "/api/snapshot",
            json!({"workspace_id": null, "list_id": null}),
        ),
        ("/api/workspaces", json!({"name": "x"})),
    ] {
        let (status, body) = post(&server, path, "", body).await;
        assert_eq!(status, 401, "{path}: {body}");
        assert_eq!(body["code"], "UNAUTHENTICATED");
    }
    assert_eq!(get(&server, "/api/auth/me", "").await.0, 401);
    server.stop().await;
}

#[tokio::test]
async fn forged_replayed_and_revoked_credentials_are_refused_and_sign_in_mints_a_fresh_session() {
    let server = start_open().await;
    let ann = person(&server, "ann").await;
    // A forged cookie (well formed, never issued).
    let forged = format!("tandem_session={}", "A".repeat(43));
    assert_eq!(get(&server, "/api/auth/me", &forged).await.0, 401);
    // Session fixation: signing in again with a cookie in hand ends that session and mints a
    // new one.
    let response = client()
        .post(format!("{}/api/auth/sign-in", server.base))
        .header("cookie", &ann.cookie)
        .json(&json!({"username": "ann", "password": "ann password!"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let fresh = common::session_cookie(&response);
    assert_ne!(fresh, ann.cookie);
    assert_eq!(
        get(&server, "/api/auth/me", &ann.cookie).await.0,
        401,
        "the old one ended"
    );
    assert_eq!(get(&server, "/api/auth/me", &fresh).await.0, 200);
    // Signed out: the cookie replayed is refused.
    assert_eq!(
        post(&server, "/api/auth/sign-out", &fresh, json!({}))
            .await
            .0,
        204
    );
    assert_eq!(get(&server, "/api/auth/me", &fresh).await.0, 401);
    // Sign out everywhere ends every session, and their sockets.
    let one = common::session_cookie(
        &client()
            .post(format!("{}/api/auth/sign-in", server.base))
            .json(&json!({"username": "ann", "password": "ann password!"}))
            .send()
            .await
            .unwrap(),
    );
    let two = common::session_cookie(
        &client()
            .post(format!("{}/api/auth/sign-in", server.base))
            .json(&json!({"username": "ann", "password": "ann password!"}))
            .send()
            .await
            .unwrap(),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(live(&server, &ann.workspace, &two))
        .await
        .unwrap();
    assert_eq!(
        post(&server, "/api/auth/sign-out-everywhere", &one, json!({}))
            .await
            .0,
        204
    );
    assert_eq!(
        closed_within(&mut socket, Duration::from_secs(1)).await,
        Some(4401)
    );
    assert_eq!(get(&server, "/api/auth/me", &two).await.0, 401);
    server.stop().await;
}

#[tokio::test]
async fn tokens_are_shown_once_end_when_deleted_or_expired_and_cannot_make_tokens() {
    let server = start_open().await;
    let ann = person(&server, "ann").await;
    let (status, made) = post(
        &server,
        "/api/auth/tokens",
        &ann.cookie,
        json!({"name": "script"}),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    let token = made["token"].as_str().unwrap().to_string();
    let bearer = common::authorized(&token);
    let me = bearer
        .get(format!("{}/api/auth/me", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    // A token cannot make tokens.
    let r = bearer
        .post(format!("{}/api/auth/tokens", server.base))
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Listed without its secret.
    let (_, list) = get(&server, "/api/auth/tokens", &ann.cookie).await;
    assert!(!list.to_string().contains(&token), "{list}");
    // A bad bearer is refused even with a good cookie beside it.
    let r = client()
        .get(format!("{}/api/auth/me", server.base))
        .header("cookie", &ann.cookie)
        .bearer_auth("tdm_not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Deleted: refused, and its socket closes.
    let token_id = made["token_id"].as_str().unwrap();
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!(
        "{}/api/sync/live?workspace_id={}",
        server.base.replace("http", "ws"),
        ann.workspace
    )
    .into_client_request()
    .unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let (status, _) = send(
        &server,
        reqwest::Method::DELETE,
        &format!("/api/auth/tokens/{token_id}"),
        &ann.cookie,
        None,
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(
        closed_within(&mut socket, Duration::from_secs(1)).await,
        Some(4401)
    );
    assert_eq!(
        bearer
            .get(format!("{}/api/auth/me", server.base))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    // Expired: a token of one second works, then not.
    let (_, short) = post(
        &server,
        "/api/auth/tokens",
        &ann.cookie,
        json!({"name": "short", "expires_in_s": 1}),
    )
    .await;
    let short = common::authorized(short["token"].as_str().unwrap());
    assert_eq!(
        short
            .get(format!("{}/api/auth/me", server.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let status = short
            .get(format!("{}/api/auth/me", server.base))
            .send()
            .await
            .unwrap()
            .status();
        if status == 401 {
            break;
        }
        assert!(Instant::now() < deadline, "the token never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.stop().await;
}

#[tokio::test]
async fn invites_roles_removal_and_the_last_owner() {
    let server = start_open().await;
    let ann = person(&server, "ann").await;
    let bob = person(&server, "bob").await;
    let cy = person(&server, "cy").await;
    let ws = &ann.workspace;
    // A one-use invite for a member, one for a reader.
    let (status, invite) = post(
        &server,
        &format!("/api/workspaces/{ws}/invites"),
        &ann.cookie,
        json!({"role": "member", "max_uses": 1, "expires_in_s": 3600}),
    )
    .await;
    assert_eq!(status, 201, "{invite}");
    let token = invite["token"].as_str().unwrap().to_string();
    assert!(invite["url"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/invite/{token}")));
    // Opening the invite (GET) joins nobody.
    let (status, shown) = get(&server, &format!("/api/invites/{token}"), &bob.cookie).await;
    assert_eq!(status, 200);
    assert_eq!(shown["invited_by"], "ann");
    assert_eq!(
        get(
            &server,
            &format!("/api/workspaces/{ws}/members"),
            &bob.cookie
        )
        .await
        .0,
        403
    );
    // Joining happens on the POST.
    let (status, joined) = post(
        &server,
        &format!("/api/invites/{token}/accept"),
        &bob.cookie,
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{joined}");
    assert_eq!(joined["role"], "member");
    let (_, members) = get(
        &server,
        &format!("/api/workspaces/{ws}/members"),
        &bob.cookie,
    )
    .await;
    assert_eq!(members.as_array().unwrap().len(), 2);
    // Used up: Cy cannot use it.
    let (status, body) = post(
        &server,
        &format!("/api/invites/{token}/accept"),
        &cy.cookie,
        json!({}),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (410, Some("INVITE_GONE")));
    // A revoked one.
    let (_, revoked) = post(
        &server,
        &format!("/api/workspaces/{ws}/invites"),
        &ann.cookie,
        json!({"role": "reader"}),
    )
    .await;
    let revoked_token = revoked["token"].as_str().unwrap().to_string();
    let (_, pending) = get(
        &server,
        &format!("/api/workspaces/{ws}/invites"),
        &ann.cookie,
    )
    .await;
    assert_eq!(pending.as_array().unwrap().len(), 1);
    assert!(
        !pending.to_string().contains(&revoked_token),
        "no tokens in the list"
    );
    let (status, _) = send(
        &server,
        reqwest::Method::DELETE,
        &format!(
            "/api/workspaces/{ws}/invites/{}",
            revoked["invite_id"].as_str().unwrap()
        ),
        &ann.cookie,
        None,
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(
        post(
            &server,
            &format!("/api/invites/{revoked_token}/accept"),
            &cy.cookie,
            json!({})
        )
        .await
        .0,
        410
    );
    // A reader: reads, and its push is refused.
    let (_, reader_invite) = post(
        &server,
        &format!("/api/workspaces/{ws}/invites"),
        &ann.cookie,
        json!({"role": "reader"}),
    )
    .await;
    post(
        &server,
        &format!(
            "/api/invites/{}/accept",
            reader_invite["token"].as_str().unwrap()
        ),
        &cy.cookie,
        json!({}),
    )
    .await;
    assert_eq!(
        post(&server, "/api/sync/pull", &cy.cookie, pull_body(ws, 30))
            .await
            .0,
        200
    );
    let (status, body) = post(
        &server,
        "/api/sync/push",
        &cy.cookie,
        push_body(ws, 30, 3, 1),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("FORBIDDEN")),
        "{body}"
    );
    // Bob writes; then he is removed while his socket is open: it closes at once (4403) and
    // his next request is refused.
    let (status, body) = post(
        &server,
        "/api/sync/push",
        &bob.cookie,
        push_body(ws, 20, 4, 1),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (mut socket, _) = tokio_tungstenite::connect_async(live(&server, ws, &bob.cookie))
        .await
        .unwrap();
    let (status, _) = send(
        &server,
        reqwest::Method::DELETE,
        &format!("/api/workspaces/{ws}/members/{}", bob.user_id),
        &ann.cookie,
        None,
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(
        closed_within(&mut socket, Duration::from_secs(1)).await,
        Some(4403)
    );
    assert_eq!(
        post(&server, "/api/sync/pull", &bob.cookie, pull_body(ws, 20))
            .await
            .0,
        403
    );
    // A device id is its account's.
    let (status, body) = post(
        &server,
        "/api/sync/push",
        &ann.cookie,
        push_body(ws, 20, 5, 2),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("FORBIDDEN")),
        "{body}"
    );
    // The last owner cannot leave or be demoted; after making Cy an owner, Ann can leave.
    let (status, body) = send(
        &server,
        reqwest::Method::DELETE,
        &format!("/api/workspaces/{ws}/members/{}", ann.user_id),
        &ann.cookie,
        None,
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (409, Some("LAST_OWNER")));
    let (status, _) = send(
        &server,
        reqwest::Method::PATCH,
        &format!("/api/workspaces/{ws}/members/{}", cy.user_id),
        &ann.cookie,
        Some(json!({"role": "owner"})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        send(
            &server,
            reqwest::Method::DELETE,
            &format!("/api/workspaces/{ws}/members/{}", ann.user_id),
            &ann.cookie,
            None
        )
        .await
        .0,
        204
    );
    assert_eq!(
        post(&server, "/api/sync/pull", &ann.cookie, pull_body(ws, 1))
            .await
            .0,
        403
    );
    server.stop().await;
}

#[tokio::test]
async fn workspaces_can_be_made_with_a_device_minted_id_renamed_and_deleted() {
    let server = start_open().await;
    let ann = person(&server, "ann").await;
    let bob = person(&server, "bob").await;
    let id = uuid::Uuid::from_u128(0x5eed).to_string();
    let (status, made) = post(
        &server,
        "/api/workspaces",
        &ann.cookie,
        json!({"name": "Home", "workspace_id": id}),
    )
    .await;
    assert_eq!(
        (status, made["role"].as_str()),
        (201, Some("owner")),
        "{made}"
    );
    assert_eq!(
        post(
            &server,
            "/api/workspaces",
            &ann.cookie,
            json!({"name": "Home", "workspace_id": id})
        )
        .await
        .0,
        200
    );
    assert_eq!(
        post(
            &server,
            "/api/workspaces",
            &bob.cookie,
            json!({"name": "Mine", "workspace_id": id})
        )
        .await
        .0,
        403
    );
    let (status, renamed) = send(
        &server,
        reqwest::Method::PATCH,
        &format!("/api/workspaces/{id}"),
        &ann.cookie,
        Some(json!({"name": "House"})),
    )
    .await;
    assert_eq!((status, renamed["name"].as_str()), (200, Some("House")));
    let (_, me) = get(&server, "/api/auth/me", &ann.cookie).await;
    assert!(me["workspaces"].to_string().contains("House"));
    assert_eq!(
        send(
            &server,
            reqwest::Method::DELETE,
            &format!("/api/workspaces/{id}"),
            &ann.cookie,
            None
        )
        .await
        .0,
        204
    );
    assert_eq!(
        post(&server, "/api/sync/pull", &ann.cookie, pull_body(&id, 1))
            .await
            .0,
        403
    );
    // A deleted workspace's id is nobody's to take again.
    assert_eq!(
        post(
            &server,
            "/api/workspaces",
            &bob.cookie,
            json!({"name": "Again", "workspace_id": id})
        )
        .await
        .0,
        403
    );
    server.stop().await;
}

#[tokio::test]
async fn the_browser_cannot_be_used_against_the_server() {
    let server = start_open().await;
    let ann = person(&server, "ann").await;
    // A push from another site's page.
    let r = client()
        .post(format!("{}/api/sync/push", server.base))
        .header("cookie", &ann.cookie)
        .header("origin", "http://evil.example")
        .json(&push_body(&ann.workspace, 1, 1, 1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Sign-in from another site (login CSRF), and from `null`.
    for origin in ["http://evil.example", "null"] {
        let r = client()
            .post(format!("{}/api/auth/sign-in", server.base))
            .header("origin", origin)
            .json(&json!({"username": "ann", "password": "ann password!"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{origin}");
    }
    // The site's own origin passes.
    let r = client()
        .post(format!("{}/api/auth/sign-in", server.base))
        .header("origin", &server.base)
        .json(&json!({"username": "ann", "password": "ann password!"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // A socket opened by another site's page.
    let mut request = live(&server, &ann.workspace, &ann.cookie);
    request
        .headers_mut()
        .insert("origin", "http://evil.example".parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 403),
        other => panic!("expected 403, got {:?}", other.map(|(_, r)| r.status())),
    }
    // DNS rebinding: a foreign Host is 421.
    let r = client()
        .get(format!("{}/api/auth/me", server.base))
        .header("host", "evil.example")
        .header("cookie", &ann.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 421);
    // A form post to a server function (what a cross-site form can send without preflight).
    let r = client()
        .post(format!("{}/api/sync/push", server.base))
        .header("cookie", &ann.cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("device_id=x&workspace_id=y&cursor=0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "MALFORMED");
    let r = client()
        .post(format!("{}/api/snapshot", server.base))
        .header("cookie", &ann.cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("list_id=x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Cookies: HttpOnly, SameSite=Lax, Path=/ (Secure only behind https).
    let r = client()
        .post(format!("{}/api/auth/sign-in", server.base))
        .json(&json!({"username": "ann", "password": "ann password!"}))
        .send()
        .await
        .unwrap();
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    for part in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(part), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "{cookie}");
    server.stop().await;
}

#[tokio::test]
async fn failed_sign_ins_are_limited_per_account_and_address() {
    let server = start_open().await;
    person(&server, "ann").await;
    for i in 0..10 {
        let (status, body) = post(
            &server,
            "/api/auth/sign-in",
            "",
            json!({"username": "ann", "password": format!("wrong {i}")}),
        )
        .await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["message"], "wrong username or password");
    }
    let r = client()
        .post(format!("{}/api/auth/sign-in", server.base))
        .json(&json!({"username": "ann", "password": "ann password!"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429, "even the right password, for now");
    assert!(r.headers().contains_key("retry-after"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "RATE_LIMITED");
    // Another account from the same address is not locked out by Ann's failures.
    person(&server, "bob").await;
    let (status, _) = post(
        &server,
        "/api/auth/sign-in",
        "",
        json!({"username": "bob", "password": "bob password!"}),
    )
    .await;
    assert_eq!(status, 200);
    // An unknown name answers exactly like a wrong password.
    let (status, body) = post(
        &server,
        "/api/auth/sign-in",
        "",
        json!({"username": "nobody", "password": "whatever it is"}),
    )
    .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (401, Some("wrong username or password"))
    );
    server.stop().await;
}

#[tokio::test]
async fn sign_up_policies_and_their_answers() {
    // The default policy: invite only.
    let server = common::start().await;
    let (status, body) = post(
        &server,
        "/api/auth/sign-up",
        "",
        json!({"username": "zed", "password": "zed password!"}),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("SIGN_UP_CLOSED")),
        "{body}"
    );
    server.stop().await;
    let server = start_open().await;
    let (status, body) = post(
        &server,
        "/api/auth/sign-up",
        "",
        json!({"username": "zed", "password": "short"}),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("WEAK_PASSWORD")),
        "{body}"
    );
    sign_up(&server.base, "zed").await;
    let (status, body) = post(
        &server,
        "/api/auth/sign-up",
        "",
        json!({"username": "ZED", "password": "zed password!"}),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("USERNAME_TAKEN")),
        "{body}"
    );
    server.stop().await;
}

/// A server with open sign-up where an account may push `events_per_day` events a day.
async fn start_with_quota(events_per_day: u64) -> Running {
    common::start_full(
        "127.0.0.1:0".parse().unwrap(),
        tempfile::tempdir().unwrap(),
        quota(events_per_day),
        open_sign_up(),
    )
    .await
}

fn quota(events_per_day: u64) -> server::config::Limits {
    server::config::Limits {
        quota_events_per_day: events_per_day,
        ..Default::default()
    }
}

fn open_sign_up() -> server::config::Access {
    server::config::Access {
        sign_up: server::config::SignUp::Open,
        ..Default::default()
    }
}

#[tokio::test]
async fn quotas_refuse_new_events_after_the_idempotency_check() {
    let server = start_with_quota(3).await;
    let ann = person(&server, "ann").await;
    // The Inbox counts nothing (the server made it); three events pass.
    let first = push_body(&ann.workspace, 1, 1, 1);
    assert_eq!(
        post(&server, "/api/sync/push", &ann.cookie, first.clone())
            .await
            .0,
        200
    );
    // The same events again are acknowledged (idempotency comes first).
    let (status, body) = post(&server, "/api/sync/push", &ann.cookie, first).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post(
        &server,
        "/api/sync/push",
        &ann.cookie,
        push_body(&ann.workspace, 1, 2, 4),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (429, Some("QUOTA_EXCEEDED")),
        "{body}"
    );
    server.stop().await;
}

/// Two pushes of one account at the same moment (two workspaces, so neither waits for the
/// other's cursor) cannot both pass the quota on the same usage: exactly one is stored. On
/// PostgreSQL the second push goes through a second process on the same database.
#[tokio::test]
async fn concurrent_pushes_of_one_account_share_one_quota() {
    let server = start_with_quota(4).await;
    let second_process = common::beside(&server, quota(4), open_sign_up()).await;
    let other = second_process.as_ref().unwrap_or(&server);
    for round in 0..12u128 {
        let p = person(&server, &format!("racer{round}")).await;
        let second = uuid::Uuid::from_u128(0x5eed_0000 + round).to_string();
        let (status, body) = post(
            &server,
            "/api/workspaces",
            &p.cookie,
            json!({"name": "Second", "workspace_id": second}),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        let (head, _) = pull_head(&server, &p, 100 + round * 2).await;
        // Three events each: one push fits the quota of four, both together do not.
        let a = post(
            &server,
            "/api/sync/push",
            &p.cookie,
            push_body(&p.workspace, 100 + round * 2, 1000 + round as u64 * 2, head),
        );
        let b = post(
            other,
            "/api/sync/push",
            &p.cookie,
            push_body(&second, 101 + round * 2, 1001 + round as u64 * 2, 0),
        );
        let ((sa, ba), (sb, bb)) = tokio::join!(a, b);
        let mut statuses = [sa, sb];
        statuses.sort();
        assert_eq!(statuses, [200, 429], "round {round}: {ba} / {bb}");
    }
    if let Some(second_process) = second_process {
        second_process.stop().await;
    }
    server.stop().await;
}

async fn pull_head(server: &Running, p: &Person, device: u128) -> (u64, Value) {
    let (status, body) = post(
        server,
        "/api/sync/pull",
        &p.cookie,
        pull_body(&p.workspace, device),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    (body["head"].as_u64().unwrap(), body)
}

#[tokio::test]
async fn metrics_need_the_token_when_loopback_says_nothing() {
    let access = server::config::Access {
        sign_up: server::config::SignUp::Open,
        metrics_token: Some("metrics-secret-123".into()),
        site: server::site::Site {
            public_url: None,
            // Loopback is a proxy here: being on loopback proves nothing.
            trusted_proxies: vec!["127.0.0.1/32".parse().unwrap()],
        },
    };
    let server = common::start_full(
        "127.0.0.1:0".parse().unwrap(),
        tempfile::tempdir().unwrap(),
        Default::default(),
        access,
    )
    .await;
    let url = format!("{}/metrics", server.base);
    assert_eq!(client().get(&url).send().await.unwrap().status(), 401);
    let r = client()
        .get(&url)
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = client()
        .get(&url)
        .bearer_auth("metrics-secret-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    server.stop().await;
}

#[tokio::test]
async fn sign_ups_from_one_address_are_limited_past_a_hundred_an_hour() {
    let server = start_open().await;
    for i in 0..120 {
        let (status, body) = post(
            &server,
            "/api/auth/sign-up",
            "",
            json!({"username": format!("u{i}"), "password": "a password of length"}),
        )
        .await;
        assert_eq!(status, 201, "sign-up {i}: {body}");
    }
    let (status, body) = post(
        &server,
        "/api/auth/sign-up",
        "",
        json!({"username": "one-more", "password": "a password of length"}),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (429, Some("RATE_LIMITED")),
        "{body}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_password_change_ends_the_other_sessions_and_a_deleted_account_keeps_its_name() {
    let server = start_open().await;
    let ann = person(&server, "ann").await;
    let bob = person(&server, "bob").await;
    let other = common::session_cookie(
        &client()
            .post(format!("{}/api/auth/sign-in", server.base))
            .json(&json!({"username": "ann", "password": "ann password!"}))
            .send()
            .await
            .unwrap(),
    );
    let (status, _) = post(
        &server,
        "/api/auth/password",
        &ann.cookie,
        json!({"old": "wrong one!!", "new": "a brand new password"}),
    )
    .await;
    assert_eq!(status, 403);
    let (status, body) = post(
        &server,
        "/api/auth/password",
        &ann.cookie,
        json!({"old": "ann password!", "new": "short"}),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("WEAK_PASSWORD"))
    );
    let (status, _) = post(
        &server,
        "/api/auth/password",
        &ann.cookie,
        json!({"old": "ann password!", "new": "a brand new password"}),
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(
        get(&server, "/api/auth/me", &ann.cookie).await.0,
        200,
        "this session stays"
    );
    assert_eq!(
        get(&server, "/api/auth/me", &other).await.0,
        401,
        "the other one ended"
    );
    // Bob joins Ann's workspace and writes; then deletes his account.
    let (_, invite) = post(
        &server,
        &format!("/api/workspaces/{}/invites", ann.workspace),
        &ann.cookie,
        json!({}),
    )
    .await;
    post(
        &server,
        &format!("/api/invites/{}/accept", invite["token"].as_str().unwrap()),
        &bob.cookie,
        json!({}),
    )
    .await;
    assert_eq!(
        post(
            &server,
            "/api/sync/push",
            &bob.cookie,
            push_body(&ann.workspace, 40, 9, 1)
        )
        .await
        .0,
        200
    );
    let (status, _) = send(
        &server,
        reqwest::Method::DELETE,
        "/api/auth/me",
        &bob.cookie,
        Some(json!({"password": "wrong"})),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = send(
        &server,
        reqwest::Method::DELETE,
        "/api/auth/me",
        &bob.cookie,
        Some(json!({"password": "bob password!"})),
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(get(&server, "/api/auth/me", &bob.cookie).await.0, 401);
    let (_, members) = get(
        &server,
        &format!("/api/workspaces/{}/members", ann.workspace),
        &ann.cookie,
    )
    .await;
    assert!(!members.to_string().contains("bob"), "{members}");
    // His events keep his name in pulls; his name is not free for another.
    let (_, pulled) = post(
        &server,
        "/api/sync/pull",
        &ann.cookie,
        pull_body(&ann.workspace, 1),
    )
    .await;
    assert!(pulled["people"].to_string().contains("\"bob\""), "{pulled}");
    let (status, _) = post(
        &server,
        "/api/auth/sign-up",
        "",
        json!({"username": "bob", "password": "another password"}),
    )
    .await;
    assert_eq!(status, 409);
    server.stop().await;
}

#[tokio::test]
async fn ids_of_other_workspaces_and_accounts_are_refused() {
    let server = start_open().await;
    let ann = person(&server, "ann").await;
    let bob = person(&server, "bob").await;
    let (_, invite) = post(
        &server,
        &format!("/api/workspaces/{}/invites", bob.workspace),
        &bob.cookie,
        json!({}),
    )
    .await;
    let id = invite["invite_id"].as_str().unwrap();
    let token = invite["token"].as_str().unwrap();
    // Ann cannot revoke Bob's invite through her own workspace, by id or by token.
    for key in [id, token] {
        let (status, _) = send(
            &server,
            reqwest::Method::DELETE,
            &format!("/api/workspaces/{}/invites/{key}", ann.workspace),
            &ann.cookie,
            None,
        )
        .await;
        assert_eq!(status, 404);
    }
    // Nor change a role in her workspace for someone who is not in it.
    let (status, _) = send(
        &server,
        reqwest::Method::PATCH,
        &format!("/api/workspaces/{}/members/{}", ann.workspace, bob.user_id),
        &ann.cookie,
        Some(json!({"role": "owner"})),
    )
    .await;
    assert_eq!(status, 404);
    // Nor delete Bob's token or session.
    let (_, made) = post(
        &server,
        "/api/auth/tokens",
        &bob.cookie,
        json!({"name": "b"}),
    )
    .await;
    let (status, _) = send(
        &server,
        reqwest::Method::DELETE,
        &format!("/api/auth/tokens/{}", made["token_id"].as_str().unwrap()),
        &ann.cookie,
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (_, sessions) = get(&server, "/api/auth/sessions", &bob.cookie).await;
    let session = sessions["sessions"][0]["session_id"].as_str().unwrap();
    let (status, _) = send(
        &server,
        reqwest::Method::DELETE,
        &format!("/api/auth/sessions/{session}"),
        &ann.cookie,
        None,
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(get(&server, "/api/auth/me", &bob.cookie).await.0, 200);
    // Bob's invite still works.
    assert_eq!(
        post(
            &server,
            &format!("/api/invites/{token}/accept"),
            &ann.cookie,
            json!({})
        )
        .await
        .0,
        200
    );
    server.stop().await;
}

#[tokio::test]
async fn an_owner_removed_cannot_come_back_on_an_invite_of_their_own() {
    let server = start_open().await;
    let ann = person(&server, "ann").await;
    let olga = person(&server, "olga").await;
    let ws = &ann.workspace;
    let (_, invite) = post(
        &server,
        &format!("/api/workspaces/{ws}/invites"),
        &ann.cookie,
        json!({"role": "owner"}),
    )
    .await;
    post(
        &server,
        &format!("/api/invites/{}/accept", invite["token"].as_str().unwrap()),
        &olga.cookie,
        json!({}),
    )
    .await;
    // Olga, an owner, keeps an invite of her own; then Ann removes her.
    let (status, kept) = post(
        &server,
        &format!("/api/workspaces/{ws}/invites"),
        &olga.cookie,
        json!({"role": "owner", "max_uses": 1000, "expires_in_s": 7_776_000}),
    )
    .await;
    assert_eq!(status, 201);
    let kept = kept["token"].as_str().unwrap().to_string();
    assert_eq!(
        send(
            &server,
            reqwest::Method::DELETE,
            &format!("/api/workspaces/{ws}/members/{}", olga.user_id),
            &ann.cookie,
            None
        )
        .await
        .0,
        204
    );
    let (status, body) = post(
        &server,
        &format!("/api/invites/{kept}/accept"),
        &olga.cookie,
        json!({}),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (410, Some("INVITE_GONE")),
        "{body}"
    );
    assert_eq!(
        get(
            &server,
            &format!("/api/workspaces/{ws}/members"),
            &olga.cookie
        )
        .await
        .0,
        403
    );
    server.stop().await;
}

#[tokio::test]
async fn a_sign_out_with_a_made_up_cookie_writes_nothing() {
    let server = start_open().await;
    person(&server, "ann").await;
    let revocations = || {
        common::admin(server.data_dir.path(), |at| {
            server::admin::with_accounts(at, |a| Ok(a.revocations()?))
        })
    };
    let before = revocations().await.unwrap();
    for cookie in [
        "tandem_session=x",
        &format!("tandem_session={}", "B".repeat(43)),
    ] {
        assert_eq!(
            post(&server, "/api/auth/sign-out", cookie, json!({}))
                .await
                .0,
            204
        );
    }
    assert_eq!(
        revocations().await.unwrap(),
        before,
        "no socket re-check was caused"
    );
    server.stop().await;
}
