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
