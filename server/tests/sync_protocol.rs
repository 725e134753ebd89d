//! The sync protocol against the real server on 127.0.0.1:0, spoken as plain JSON (as any
//! client would): push, pull, idempotency, and every rejection of CONTRACT.md with its code,
//! status and fields — each leaving the log untouched.

mod common;

use common::{start, start_with, Running};
use serde_json::{json, Value};
use server::config::Limits;
use tandem_events::event::StoredEvent;
use tandem_events::testkit::workload;
use tandem_store::wire::to_wire;

struct Peer {
    base: String,
    http: reqwest::Client,
    device: String,
    workspace: String,
}

impl Peer {
    async fn new(server: &Running, events: &[StoredEvent]) -> Self {
        server.claim(&events[0].workspace_id.to_string()).await;
        Self {
            base: server.base.clone(),
            http: server.client(),
            device: events[0].device_id.to_string(),
            workspace: events[0].workspace_id.to_string(),
        }
    }

    async fn post(&self, path: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{status}: not JSON ({e}): {text}"));
        (status, body)
    }

    fn push_body(&self, cursor: u64, events: &[StoredEvent]) -> Value {
        json!({
            "device_id": self.device,
            "workspace_id": self.workspace,
            "cursor": cursor,
            "events": events.iter().map(to_wire).collect::<Vec<_>>(),
        })
    }

    async fn push(&self, cursor: u64, events: &[StoredEvent]) -> (u16, Value) {
        self.post("/api/sync/push", self.push_body(cursor, events).to_string())
            .await
    }

    async fn pull(&self, cursor: u64, limit: Option<u64>) -> (u16, Value) {
        let body = json!({"device_id": self.device, "workspace_id": self.workspace, "cursor": cursor, "limit": limit});
        self.post("/api/sync/pull", body.to_string()).await
    }

    async fn head(&self) -> u64 {
        let (status, body) = self.pull(0, Some(1)).await;
        assert_eq!(status, 200, "{body}");
        body["head"].as_u64().unwrap()
    }
}

fn events(n: usize) -> Vec<StoredEvent> {
    // One device: 2 lists, then todos and edits, versions dense, stamps in the past.
    let all = workload(42, 2, n / 3, n);
    all.into_iter().take(n).collect()
}

fn assert_error(status: u16, body: &Value, code: &str, expected_status: u16) {
    assert_eq!(status, expected_status, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

#[tokio::test]
async fn push_then_pull_round_trips_with_dense_seqs_and_pages() {
    let server = start().await;
    let evs = events(12);
    let peer = Peer::new(&server, &evs).await;
    let (status, body) = peer.push(0, &evs).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["head"], 12);
    let seqs: Vec<u64> = body["accepted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=12).collect::<Vec<_>>());
    assert!(body["server_time_ms"].as_i64().unwrap() > 1_700_000_000_000);

    let (status, page) = peer.pull(0, Some(5)).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["events"].as_array().unwrap().len(), 5);
    assert_eq!(page["has_more"], true);
    assert_eq!(page["head"], 12);
    let (_, rest) = peer.pull(5, None).await;
    let got: Vec<u64> = rest["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(got, (6..=12).collect::<Vec<_>>());
    assert_eq!(rest["has_more"], false);
    // What comes back is what went in.
    let first = &page["events"][0];
    assert_eq!(first["event_id"], evs[0].event_id.to_string());
    assert_eq!(
        first["event_data"],
        serde_json::from_str::<Value>(&evs[0].event_data).unwrap()
    );
    server.stop().await;
}

#[tokio::test]
async fn a_repeated_push_is_acknowledged_not_duplicated_whatever_the_cursor() {
    let server = start().await;
    let evs = events(10);
    let peer = Peer::new(&server, &evs).await;
    let (_, first) = peer.push(0, &evs[..6]).await;
    let (_, _) = peer.push(6, &evs[6..]).await;
    // The first batch again, its ack having been lost: cursor 0 is behind head 10.
    let (status, again) = peer.push(0, &evs[..6]).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["accepted"], first["accepted"]);
    assert_eq!(peer.head().await, 10);
    // Same id, same content but data written with other key order and spacing: still the same.
    let mut body = peer.push_body(0, &evs[..1]);
    let data = body["events"][0]["event_data"].to_string();
    body["events"][0]["event_data"] = serde_json::from_str(&data).unwrap();
    let (status, _) = peer.post("/api/sync/push", body.to_string()).await;
    assert_eq!(status, 200);
    server.stop().await;
}

#[tokio::test]
async fn an_id_reused_with_other_content_is_refused() {
    let server = start().await;
    let evs = events(4);
    let peer = Peer::new(&server, &evs).await;
    peer.push(0, &evs).await;
    let mut changed = evs[1].clone();
    changed.created_at += 1;
    let (status, body) = peer.push(4, &[changed]).await;
    assert_error(status, &body, "ID_REUSED", 409);
    assert_eq!(body["event_id"], evs[1].event_id.to_string());
    assert_eq!(peer.head().await, 4);
    server.stop().await;
}

#[tokio::test]
async fn a_push_behind_the_head_must_pull_first_and_one_ahead_is_refused() {
    let server = start().await;
    let evs = events(8);
    let peer = Peer::new(&server, &evs).await;
    peer.push(0, &evs[..4]).await;
    let (status, body) = peer.push(2, &evs[4..]).await;
    assert_error(status, &body, "PULL_REQUIRED", 409);
    assert_eq!(body["head"], 4);
    let (status, body) = peer.push(9, &evs[4..]).await;
    assert_error(status, &body, "CURSOR_AHEAD", 409);
    assert_eq!(body["head"], 4);
    let (status, body) = peer.pull(5, None).await;
    assert_error(status, &body, "CURSOR_AHEAD", 409);
    assert_eq!(peer.head().await, 4);
    server.stop().await;
}

#[tokio::test]
async fn malformed_bodies_answer_400_with_the_error_shape() {
    let server = start().await;
    let evs = events(2);
    let peer = Peer::new(&server, &evs).await;
    let (device, workspace) = (&peer.device, &peer.workspace);
    for (path, body) in [
        ("push", "not json".to_string()),
        ("push", "{}".to_string()),
        ("push", json!({"device_id": device, "workspace_id": workspace, "cursor": "zero", "events": []}).to_string()),
        ("push", json!({"device_id": device, "workspace_id": workspace, "cursor": 0, "events": [{"event_id": 5}]}).to_string()),
        ("push", json!({"device_id": device, "workspace_id": workspace, "cursor": 0, "events": {}}).to_string()),
        ("push", json!({"device_id": "not-a-uuid", "workspace_id": workspace, "cursor": 0, "events": []}).to_string()),
        ("push", json!({"device_id": device, "workspace_id": workspace, "cursor": -1, "events": []}).to_string()),
        ("pull", "[1, 2".to_string()),
        ("pull", json!({"device_id": device, "cursor": 0}).to_string()),
        ("pull", json!({"device_id": device, "workspace_id": workspace, "cursor": 0, "limit": "all"}).to_string()),
        ("pull", json!({"device_id": device, "workspace_id": "nope", "cursor": 0}).to_string()),
    ] {
        let (status, reply) = peer.post(&format!("/api/sync/{path}"), body.clone()).await;
        assert_error(status, &reply, "MALFORMED", 400);
    }
    assert_eq!(peer.head().await, 0);
    server.stop().await;
}

#[tokio::test]
async fn bodies_and_batches_over_the_limits_are_too_large() {
    let limits = Limits {
        push_body_bytes: 16 * 1024,
        events_per_push: 5,
        ..Limits::default()
    };
    let server = start_with(limits).await;
    let evs = events(6);
    let peer = Peer::new(&server, &evs).await;
    let (status, body) = peer.push(0, &evs).await;
    assert_error(status, &body, "TOO_LARGE", 413);
    let big = "x".repeat(20 * 1024);
    let (status, body) = peer.post("/api/sync/push", big).await;
    assert_error(status, &body, "TOO_LARGE", 413);
    assert_eq!(peer.head().await, 0);
    server.stop().await;
}

#[tokio::test]
async fn invalid_events_are_refused_and_nothing_of_the_batch_is_stored() {
    let limits = Limits {
        event_data_bytes: 200,
        ..Limits::default()
    };
    let server = start_with(limits).await;
    let evs = events(6);
    let peer = Peer::new(&server, &evs).await;
    type Spoil = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Spoil)> = vec![
        (
            "unknown type",
            Box::new(|e| e["event_type"] = json!("TodoExploded")),
        ),
        (
            "unknown schema version",
            Box::new(|e| e["schema_version"] = json!(9)),
        ),
        ("bad event id", Box::new(|e| e["event_id"] = json!("42"))),
        (
            "bad aggregate id",
            Box::new(|e| e["aggregate_id"] = json!("x")),
        ),
        (
            "bad stamp",
            Box::new(|e| e["hlc_timestamp"] = json!("yesterday")),
        ),
        (
            "data not matching its schema",
            Box::new(|e| e["event_data"] = json!({"nonsense": true})),
        ),
        (
            "data not an object",
            Box::new(|e| e["event_data"] = json!([1, 2])),
        ),
        (
            "data too big",
            Box::new(|e| e["event_data"] = json!({"name": "n".repeat(300)})),
        ),
        (
            "other workspace",
            Box::new(|e| e["workspace_id"] = json!("0190f5a2-7c3e-7b4a-9d2e-1234567890ab")),
        ),
        (
            "other device",
            Box::new(|e| e["device_id"] = json!("0190f5a2-7c3e-7b4a-9d2e-1234567890ab")),
        ),
    ];
    for (what, spoil) in cases {
        let mut body = peer.push_body(0, &evs);
        spoil(&mut body["events"][5]);
        let (status, reply) = peer.post("/api/sync/push", body.to_string()).await;
        assert_error(status, &reply, "INVALID_EVENT", 422);
        assert!(
            reply["event_id"].is_string() || what == "bad event id",
            "{what}: {reply}"
        );
        assert_eq!(peer.head().await, 0, "{what}: nothing stored");
    }
    // The same id twice in one push.
    let twice = [evs[0].clone(), evs[0].clone()];
    let (status, reply) = peer.push(0, &twice).await;
    assert_error(status, &reply, "INVALID_EVENT", 422);
    server.stop().await;
}

#[tokio::test]
async fn stamps_too_far_ahead_are_clock_drift_with_the_offset() {
    let server = start().await;
    let mut evs = events(3);
    let now = tandem_server_now();
    evs[2].hlc_timestamp.ms = now + 3_600_000;
    let peer = Peer::new(&server, &evs).await;
    let (status, body) = peer.push(0, &evs).await;
    assert_error(status, &body, "CLOCK_DRIFT", 422);
    let offset = body["offset_ms"].as_u64().unwrap();
    assert!((3_590_000..=3_600_000).contains(&offset), "{body}");
    assert_eq!(body["event_id"], evs[2].event_id.to_string());
    assert!(body["server_time_ms"].as_i64().is_some());
    assert_eq!(peer.head().await, 0);
    // Within the drift: fine.
    evs[2].hlc_timestamp.ms = now + 30_000;
    let (status, body) = peer.push(0, &evs).await;
    assert_eq!(status, 200, "{body}");
    server.stop().await;
}

fn tandem_server_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[tokio::test]
async fn versions_must_continue_densely() {
    let server = start().await;
    let evs = events(6);
    let peer = Peer::new(&server, &evs).await;
    let mut gap = evs.clone();
    gap[4].version += 1;
    let (status, body) = peer.push(0, &gap).await;
    assert_error(status, &body, "VERSION_CONFLICT", 409);
    assert_eq!(body["event_id"], evs[4].event_id.to_string());
    assert_eq!(peer.head().await, 0);
    server.stop().await;
}

#[tokio::test]
async fn an_empty_push_succeeds_and_changes_nothing_and_pull_limits_are_clamped() {
    let limits = Limits {
        pull_limit_max: 3,
        ..Limits::default()
    };
    let server = start_with(limits).await;
    let evs = events(5);
    let peer = Peer::new(&server, &evs).await;
    let (status, body) = peer.push(0, &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["head"], 0);
    assert_eq!(body["accepted"], json!([]));
    peer.push(0, &evs).await;
    let (status, body) = peer.pull(0, Some(1_000_000)).await;
    assert_eq!(status, 200);
    assert_eq!(body["events"].as_array().unwrap().len(), 3);
    assert_eq!(body["has_more"], true);
    let (_, body) = peer.pull(0, Some(0)).await;
    assert_eq!(
        body["events"].as_array().unwrap().len(),
        1,
        "a limit of 0 is clamped to 1"
    );
    server.stop().await;
}

/// A stored event re-addressed: another id, workspace, type, data, version, stamp now.
fn forged(
    of: &StoredEvent,
    workspace: &str,
    event_type: &str,
    data: Value,
    version: u64,
    n: u128,
) -> StoredEvent {
    StoredEvent {
        event_id: uuid::Uuid::from_u128(0xf0f0_0000 + n)
            .to_string()
            .parse()
            .unwrap(),
        workspace_id: workspace.parse().unwrap(),
        event_type: event_type.into(),
        schema_version: if event_type == "TodoCreated" { 2 } else { 1 },
        event_data: data.to_string(),
        version,
        hlc_timestamp: tandem_events::hlc::Stamp {
            ms: tandem_server_now(),
            counter: n as u32,
            node: of.device_id,
        },
        created_at: tandem_server_now() as i64,
        ..of.clone()
    }
}

#[tokio::test]
async fn an_aggregate_belongs_to_the_workspace_of_its_first_event() {
    let server = start().await;
    let evs = events(9);
    let home = Peer::new(&server, &evs).await;
    let (status, body) = home.push(0, &evs).await;
    assert_eq!(status, 200, "{body}");
    let head = home.head().await;
    let mut away = Peer::new(&server, &evs).await;
    away.workspace = uuid::Uuid::from_u128(0xaaaa).to_string();
    server.claim(&away.workspace).await;
    let todo = evs.iter().find(|e| e.event_type == "TodoCreated").unwrap();
    let list = evs.iter().find(|e| e.event_type == "ListCreated").unwrap();
    let next = evs
        .iter()
        .filter(|e| e.aggregate_id == todo.aggregate_id)
        .count() as u64
        + 1;
    // Deleting the home workspace's todo from another workspace.
    let delete = forged(todo, &away.workspace, "TodoDeleted", json!({}), next, 1);
    // A todo of the other workspace in the home workspace's list.
    let mut intruder = forged(
        todo,
        &away.workspace,
        "TodoCreated",
        json!({"list_id": list.aggregate_id.to_string(), "title": "x", "position": "V", "due_date": null}),
        1,
        2,
    );
    intruder.aggregate_id = uuid::Uuid::from_u128(0xbbbb).to_string().parse().unwrap();
    // An event stored in the home workspace, pushed in the other workspace's request.
    let mut replayed = evs[0].clone();
    replayed.workspace_id = away.workspace.parse().unwrap();
    for (what, event) in [
        ("a delete of another workspace's todo", delete),
        ("a todo in another workspace's list", intruder),
        ("an event stored in another workspace", replayed),
    ] {
        let (status, body) = away.push(0, std::slice::from_ref(&event)).await;
        assert_error(status, &body, "INVALID_EVENT", 422);
        assert_eq!(
            body["event_id"],
            event.event_id.to_string(),
            "{what}: {body}"
        );
        assert!(body["server_time_ms"].is_i64(), "{body}");
        assert_eq!(away.head().await, 0, "{what}: nothing stored");
    }
    // A todo in a list that does not exist (yet): refused, so that list's id cannot be made
    // in another workspace later and cross the boundary.
    let mut orphan = forged(
        todo,
        &home.workspace,
        "TodoCreated",
        json!({"list_id": uuid::Uuid::from_u128(0xdead).to_string(), "title": "x", "position": "V", "due_date": null}),
        1,
        3,
    );
    orphan.aggregate_id = uuid::Uuid::from_u128(0xcccc).to_string().parse().unwrap();
    let (status, body) = home.push(head, &[orphan]).await;
    assert_error(status, &body, "INVALID_EVENT", 422);
    assert!(
        body["message"].as_str().unwrap().contains("does not exist"),
        "{body}"
    );
    assert_eq!(home.head().await, head, "the home workspace is untouched");
    // A move to another list is checked the same way: the list must exist here.
    let moved = forged(
        todo,
        &home.workspace,
        "TodoListChanged",
        json!({"list_id": uuid::Uuid::from_u128(0xdead).to_string(), "list_bases": [], "position": "V", "position_bases": []}),
        next,
        4,
    );
    let (status, body) = home.push(head, &[moved]).await;
    assert_error(status, &body, "INVALID_EVENT", 422);
    assert!(
        body["message"].as_str().unwrap().contains("does not exist"),
        "{body}"
    );
    assert_eq!(home.head().await, head, "the home workspace is untouched");
    let (_, data_dir) = server.stop().await;
    common::admin(data_dir.path(), server::admin::verify)
        .await
        .expect("the log keeps rule 21");
}

#[tokio::test]
async fn a_device_names_only_itself() {
    let server = start().await;
    let evs = events(3);
    let peer = Peer::new(&server, &evs).await;
    let list = evs.iter().find(|e| e.event_type == "ListCreated").unwrap();
    let workspace = peer.workspace.parse().unwrap();
    let name = json!({"name": "Laptop", "bases": []});
    // On another device's aggregate, or on an aggregate that is not a device's: refused.
    let someone = tandem_events::ids::DeviceId::from_uuid(uuid::Uuid::from_u128(0x5e));
    for (n, aggregate) in [
        tandem_events::ids::AggregateId::device(workspace, someone),
        list.aggregate_id,
    ]
    .into_iter()
    .enumerate()
    {
        let mut forged_name = forged(
            list,
            &peer.workspace,
            "DeviceNamed",
            name.clone(),
            1,
            20 + n as u128,
        );
        forged_name.aggregate_id = aggregate;
        if aggregate == list.aggregate_id {
            let (status, body) = peer.push(0, std::slice::from_ref(list)).await;
            assert_eq!(status, 200, "{body}");
            forged_name.version = 2;
        }
        let head = peer.head().await;
        let (status, body) = peer.push(head, &[forged_name]).await;
        assert_error(status, &body, "INVALID_EVENT", 422);
        assert!(
            body["message"].as_str().unwrap().contains("DeviceNamed"),
            "{body}"
        );
        assert_eq!(peer.head().await, head, "nothing stored");
    }
    // Taking a device's aggregate first with another event type: refused too.
    let mut squat = forged(
        list,
        &peer.workspace,
        "ListCreated",
        json!({"name": "x"}),
        1,
        25,
    );
    squat.aggregate_id = tandem_events::ids::AggregateId::device(workspace, someone);
    let head = peer.head().await;
    let (status, body) = peer.push(head, &[squat]).await;
    assert_error(status, &body, "INVALID_EVENT", 422);
    assert!(
        body["message"].as_str().unwrap().contains("reserved"),
        "{body}"
    );
    // On its own aggregate: stored.
    let mut own = forged(list, &peer.workspace, "DeviceNamed", name, 1, 30);
    own.aggregate_id = tandem_events::ids::AggregateId::device(workspace, own.device_id);
    let (status, body) = peer.push(1, &[own]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(peer.head().await, 2);
    let (_, data_dir) = server.stop().await;
    common::admin(data_dir.path(), server::admin::verify)
        .await
        .expect("a named device keeps the log's rules");
}

#[tokio::test]
async fn position_keys_are_checked_by_the_server() {
    let server = start().await;
    let evs = events(3);
    let peer = Peer::new(&server, &evs).await;
    let list = evs.iter().find(|e| e.event_type == "ListCreated").unwrap();
    let (status, body) = peer.push(0, std::slice::from_ref(list)).await;
    assert_eq!(status, 200, "{body}");
    for (n, position) in ["a!", "V0", ""].into_iter().enumerate() {
        let mut todo = forged(
            list,
            &peer.workspace,
            "TodoCreated",
            json!({"list_id": list.aggregate_id.to_string(), "title": "x", "position": position, "due_date": null}),
            1,
            10 + n as u128,
        );
        todo.aggregate_id = uuid::Uuid::from_u128(0xc000 + n as u128)
            .to_string()
            .parse()
            .unwrap();
        let (status, body) = peer.push(1, &[todo]).await;
        assert_error(status, &body, "INVALID_EVENT", 422);
        assert!(
            body["message"].as_str().unwrap().contains("position"),
            "{position:?}: {body}"
        );
    }
    assert_eq!(peer.head().await, 1);
    server.stop().await;
}

#[tokio::test]
async fn the_layer_answers_carry_the_server_time_and_say_what_failed() {
    let server = start_with(Limits {
        push_body_bytes: 1_000,
        ..Limits::default()
    })
    .await;
    let evs = events(2);
    let peer = Peer::new(&server, &evs).await;
    let (status, body) = peer.post("/api/sync/push", "not json").await;
    assert_error(status, &body, "MALFORMED", 400);
    assert!(body["server_time_ms"].is_i64(), "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("request") && !message.contains("result"),
        "{message}"
    );
    let (status, body) = peer.post("/api/sync/push", "x".repeat(2_000)).await;
    assert_error(status, &body, "TOO_LARGE", 413);
    assert!(body["server_time_ms"].is_i64(), "{body}");
    for path in ["push", "pull"] {
        let response = peer
            .http
            .get(format!("{}/api/sync/{path}", peer.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], "MALFORMED", "{body}");
        assert!(body["message"].as_str().unwrap().contains("POST"), "{body}");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_pull_answer_is_bounded_by_bytes_and_pages_on() {
    let server = start_with(Limits {
        pull_bytes: 20_000,
        ..Limits::default()
    })
    .await;
    let evs = events(60);
    let peer = Peer::new(&server, &evs).await;
    let (status, body) = peer.push(0, &evs).await;
    assert_eq!(status, 200, "{body}");
    let mut cursor = 0;
    let mut pages = 0;
    loop {
        let (status, body) = peer.pull(cursor, Some(5_000)).await;
        assert_eq!(status, 200, "{body}");
        let page = body["events"].as_array().unwrap();
        let bytes = serde_json::to_vec(page).unwrap().len();
        assert!(bytes <= 20_000 + 2_000, "{bytes} bytes in one answer");
        cursor = page.last().unwrap()["seq"].as_u64().unwrap();
        pages += 1;
        if !body["has_more"].as_bool().unwrap() {
            break;
        }
    }
    assert_eq!(cursor, 60);
    assert!(pages > 1, "one page of everything");
    server.stop().await;
}

#[tokio::test]
async fn pulls_past_the_bound_are_busy_with_retry_after_and_others_are_served() {
    let server = start_with(Limits {
        concurrent_pulls: 1,
        read_connections: 1,
        ..Limits::default()
    })
    .await;
    let evs = events(3_000);
    let peer = Peer::new(&server, &evs).await;
    for (i, chunk) in evs.chunks(1_000).enumerate() {
        let (status, body) = peer.push(i as u64 * 1_000, chunk).await;
        assert_eq!(status, 200, "{body}");
    }
    let body = json!({"device_id": peer.device, "workspace_id": peer.workspace, "cursor": 0, "limit": 5_000}).to_string();
    let answers = futures_util::future::join_all((0..48).map(|_| {
        peer.http
            .post(format!("{}/api/sync/pull", peer.base))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
    }))
    .await;
    let (mut ok, mut busy) = (0, 0);
    for answer in answers {
        let answer = answer.unwrap();
        match answer.status().as_u16() {
            200 => ok += 1,
            503 => {
                assert_eq!(answer.headers()["retry-after"], "1");
                let body: Value = answer.json().await.unwrap();
                assert_eq!(body["code"], "BUSY", "{body}");
                assert!(body["server_time_ms"].is_i64());
                busy += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(ok >= 1 && busy >= 1, "{ok} served, {busy} busy");
    assert_eq!(peer.head().await, 3_000, "the server keeps serving");
    server.stop().await;
}

#[tokio::test]
async fn what_the_protocol_settles_for_odd_requests() {
    let server = start().await;
    let evs = events(3);
    let peer = Peer::new(&server, &evs).await;
    // Unknown top-level keys: ignored (forward compatible), in a push and in a pull.
    let mut body = peer.push_body(0, &evs[..1]);
    body["client_version"] = json!("9.9");
    let (status, reply) = peer.post("/api/sync/push", body.to_string()).await;
    assert_eq!(status, 200, "{reply}");
    let mut body = json!({"device_id": peer.device, "workspace_id": peer.workspace, "cursor": 0});
    body["hint"] = json!(true);
    let (status, reply) = peer.post("/api/sync/pull", body.to_string()).await;
    assert_eq!(status, 200, "{reply}");
    // Unknown keys inside an event: the body does not decode.
    let mut body = peer.push_body(1, &evs[1..2]);
    body["events"][0]["extra"] = json!(1);
    let (status, reply) = peer.post("/api/sync/push", body.to_string()).await;
    assert_error(status, &reply, "MALFORMED", 400);
    // Unknown keys in event_data: INVALID_EVENT.
    let mut body = peer.push_body(1, &evs[1..2]);
    body["events"][0]["event_data"]["extra"] = json!(1);
    let (status, reply) = peer.post("/api/sync/push", body.to_string()).await;
    assert_error(status, &reply, "INVALID_EVENT", 422);
    // version 0: INVALID_EVENT.
    let mut body = peer.push_body(1, &evs[1..2]);
    body["events"][0]["version"] = json!(0);
    let (status, reply) = peer.post("/api/sync/push", body.to_string()).await;
    assert_error(status, &reply, "INVALID_EVENT", 422);
    // An empty push with a stale (or any) cursor: succeeds, changes nothing.
    let (status, reply) = peer.push(0, &[]).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["head"], 1);
    // An already-stored id twice in one push: acknowledged twice with its seq.
    let (status, reply) = peer.push(0, &[evs[0].clone(), evs[0].clone()]).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        reply["accepted"],
        json!([{"event_id": evs[0].event_id.to_string(), "seq": 1}, {"event_id": evs[0].event_id.to_string(), "seq": 1}])
    );
    // A new id twice: INVALID_EVENT.
    let (status, reply) = peer.push(1, &[evs[1].clone(), evs[1].clone()]).await;
    assert_error(status, &reply, "INVALID_EVENT", 422);
    // Negative cursor or limit: MALFORMED.
    for body in [
        json!({"device_id": peer.device, "workspace_id": peer.workspace, "cursor": -1}),
        json!({"device_id": peer.device, "workspace_id": peer.workspace, "cursor": 0, "limit": -5}),
    ] {
        let (status, reply) = peer.post("/api/sync/pull", body.to_string()).await;
        assert_error(status, &reply, "MALFORMED", 400);
    }
    assert_eq!(peer.head().await, 1, "nothing else was stored");
    server.stop().await;
}
