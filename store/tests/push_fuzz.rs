//! No input makes the central log panic or answer with an internal error, and a refused push
//! leaves the log as it was (DESIGN.md rules 11 and 13; CONTRACT.md: a 5xx means a bug).

use std::sync::Arc;

use proptest::prelude::*;
use serde_json::{json, Value};
use tandem_events::ids::DeviceId;
use tandem_events::testkit::workload;
use tandem_protocol::sync::{ErrorCode, PullRequest, PushRequest, WireEvent};
use tandem_store::rusqlite::Connection;
use tandem_store::wire::to_wire;
use tandem_store::{Central, EventLog, SyncLimits};

fn central() -> Central {
    let log = EventLog::with_connection(
        Connection::open_in_memory().unwrap(),
        DeviceId::from_uuid(uuid::Uuid::from_u128(1)),
        Arc::new(|| 1_800_000_000_000),
    )
    .unwrap();
    Central::assemble(
        log,
        SyncLimits {
            events_per_push: 8,
            event_data_bytes: 512,
            ..SyncLimits::default()
        },
    )
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-z0-9-]{0,40}",
        Just("0190f5a2-7c3e-7b4a-9d2e-1234567890ab".to_string()),
        Just("001800000000000-0000000000-0190f5a2-7c3e-7b4a-9d2e-1234567890ab".to_string()),
        Just("TodoTitleEdited".to_string()),
        Just("TodoCreated".to_string()),
        ".{0,20}",
    ]
}

fn data() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!({})),
        Just(json!({"title": "x", "bases": []})),
        Just(json!({"title": 5, "bases": "no"})),
        Just(
            json!({"list_id": "0190f5a2-7c3e-7b4a-9d2e-1234567890ab", "title": "t", "position": "V", "due_date": null})
        ),
        Just(json!([1, 2, 3])),
        Just(json!(null)),
        "[a-z]{0,600}".prop_map(|s| json!({"name": s})),
    ]
}

fn wire() -> impl Strategy<Value = WireEvent> {
    (
        text(),
        text(),
        text(),
        text(),
        0u32..4,
        data(),
        text(),
        text(),
        0u64..4,
        any::<i64>(),
    )
        .prop_map(
            |(
                event_id,
                workspace_id,
                aggregate_id,
                event_type,
                schema_version,
                event_data,
                hlc_timestamp,
                device_id,
                version,
                created_at,
            )| {
                WireEvent {
                    event_id,
                    workspace_id,
                    aggregate_id,
                    event_type,
                    schema_version,
                    event_data,
                    hlc_timestamp,
                    device_id,
                    version,
                    created_at,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn any_push_is_answered_without_a_bug_and_refusals_store_nothing(
        device in text(),
        workspace in text(),
        cursor in 0u64..4,
        events in proptest::collection::vec(wire(), 0..10),
        valid_prefix in 0usize..4,
    ) {
        let mut c = central();
        // Some real events first, so idempotency, cursors and versions have something to meet.
        let real = workload(3, 1, 1, 2);
        let real_ws = real[0].workspace_id.to_string();
        let real_device = real[0].device_id.to_string();
        let prefix: Vec<WireEvent> = real.iter().take(valid_prefix).map(to_wire).collect();
        if !prefix.is_empty() {
            c.push(&PushRequest { device_id: real_device.clone(), workspace_id: real_ws.clone(), cursor: 0, events: prefix.clone() }).unwrap();
        }
        let before = c.log().len().unwrap();
        let mut all = prefix;
        all.extend(events);
        for request in [
            PushRequest { device_id: device.clone(), workspace_id: workspace.clone(), cursor, events: all.clone() },
            PushRequest { device_id: real_device.clone(), workspace_id: real_ws.clone(), cursor, events: all.clone() },
        ] {
            match c.push(&request) {
                Ok(outcome) => prop_assert_eq!(c.log().len().unwrap(), before + outcome.appended.len() as u64),
                Err(e) => {
                    prop_assert_ne!(e.code, ErrorCode::Internal, "{:?}", e);
                    prop_assert_eq!(c.log().len().unwrap(), before, "a refused push stored something: {:?}", e);
                }
            }
        }
        let pulled = c.pull(&PullRequest { device_id: device, workspace_id: workspace, cursor, limit: Some(cursor) });
        if let Err(e) = pulled {
            prop_assert_ne!(e.code, ErrorCode::Internal, "{:?}", e);
        }
        prop_assert!(c.log().verify().is_ok());
    }
}

/// The log as `(seq, event id)` pairs, for comparing before and after a request.
fn snapshot(c: &Central) -> Vec<(u64, String)> {
    let mut out = vec![];
    for (ws, head) in c.log().heads().unwrap() {
        for (seq, e) in c.log().events_after(ws, 0, head as usize).unwrap() {
            out.push((seq, e.event_id.to_string()));
        }
    }
    out
}

/// Mostly valid pushes, then mutated (cursor, version, stamp, ids, workspace, order), so that
/// appends, idempotent acks, PULL_REQUIRED, VERSION_CONFLICT, CLOCK_DRIFT, ID_REUSED and
/// INVALID_EVENT are all reached; each answer is checked against the log just before it.
#[test]
fn mutated_valid_pushes_reach_every_outcome_and_change_the_log_only_by_what_they_append() {
    use std::collections::HashMap;
    use tandem_events::testkit::Rng;
    let seed: u64 = std::env::var("PUSH_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(77);
    println!("push fuzz: seed {seed} (PUSH_FUZZ_SEED replays)");
    let mut rng = Rng::new(seed);
    let log = EventLog::with_connection(
        Connection::open_in_memory().unwrap(),
        DeviceId::from_uuid(uuid::Uuid::from_u128(1)),
        Arc::new(|| 1_750_000_100_000),
    )
    .unwrap();
    let mut c = Central::assemble(log, SyncLimits::default());
    let events = workload(seed, 3, 40, 200);
    let device = events[0].device_id.to_string();
    let workspace = events[0].workspace_id.to_string();
    let mut outcomes: HashMap<String, u32> = HashMap::new();
    for _ in 0..1_500 {
        let head = c.log().head(events[0].workspace_id).unwrap();
        let at = head as usize;
        if at >= events.len() {
            break;
        }
        let n = 1 + rng.below(3);
        let mut batch: Vec<WireEvent> = events[at..(at + n).min(events.len())]
            .iter()
            .map(to_wire)
            .collect();
        let mut cursor = head;
        match rng.below(12) {
            0 => cursor = cursor.saturating_sub(1 + rng.below(2) as u64),
            1 => cursor += 1,
            2 => batch[0].version += 1,
            3 => batch[0].version = batch[0].version.saturating_sub(1).max(1),
            4 => {
                // Stamped far ahead of the server's clock.
                batch[0].hlc_timestamp = format!(
                    "{:015}{}",
                    1_750_000_100_000u64 + 3_600_000,
                    &batch[0].hlc_timestamp[15..]
                );
            }
            5 if at > 0 => {
                // An id already stored, with other content.
                batch[0].event_id = to_wire(&events[rng.below(at)]).event_id;
            }
            6 if at > 0 => {
                // Stored events again: acknowledged whatever the cursor.
                batch = events[at.saturating_sub(2)..at]
                    .iter()
                    .map(to_wire)
                    .collect();
                cursor = rng.below(at) as u64;
            }
            7 => batch[0].workspace_id = uuid::Uuid::from_u128(9).to_string(),
            8 if batch.len() > 1 => batch.swap(0, 1),
            _ => {}
        }
        let request = PushRequest {
            device_id: device.clone(),
            workspace_id: workspace.clone(),
            cursor,
            events: batch,
        };
        let before = snapshot(&c);
        let answer = c.push(&request);
        let after = snapshot(&c);
        match answer {
            Ok(outcome) => {
                let kind = if outcome.appended.is_empty() {
                    "acked"
                } else {
                    "appended"
                };
                *outcomes.entry(kind.into()).or_default() += 1;
                let mut expected = before.clone();
                expected.extend(
                    outcome
                        .appended
                        .iter()
                        .map(|l| (l.seq, l.event.event_id.clone())),
                );
                assert_eq!(
                    after, expected,
                    "an accepted push changes the log by what it appended"
                );
                for (a, e) in outcome.response.accepted.iter().zip(&request.events) {
                    assert_eq!(a.event_id, e.event_id);
                }
            }
            Err(e) => {
                assert_ne!(e.code, ErrorCode::Internal, "{e:?}");
                *outcomes.entry(e.code.as_str().into()).or_default() += 1;
                assert_eq!(
                    after, before,
                    "a refused push ({:?}) changed the log",
                    e.code
                );
            }
        }
    }
    println!("push fuzz outcomes: {outcomes:?}");
    for kind in [
        "appended",
        "acked",
        "PULL_REQUIRED",
        "CURSOR_AHEAD",
        "VERSION_CONFLICT",
        "CLOCK_DRIFT",
        "ID_REUSED",
        "INVALID_EVENT",
    ] {
        assert!(
            outcomes.get(kind).is_some_and(|n| *n > 0),
            "never reached {kind}: {outcomes:?}"
        );
    }
    c.log().verify().unwrap();
}
