//! HTTP fuzz of the sync endpoints and the live socket: random and mutated valid requests
//! against the real server. No 5xx and no panic; every refusal is a 4xx in the contract's
//! error shape; and a refused request leaves the log as it was. `FUZZ_SEED` (default fixed,
//! printed) picks another run or replays one, `FUZZ_CASES` sets the number of requests
//! (default 400); `make fuzz` runs 5,000 from a drawn seed.

mod common;

use common::start;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tandem_events::testkit::{workload, Rng};
use tandem_store::wire::to_wire;

async fn appended(base: &str) -> i64 {
    common::metric(base, "tandem_events_appended_total").await
}

/// A mutation of a JSON value at a random place.
fn mutate(rng: &mut Rng, value: &mut Value, depth: u32) {
    let weird = |rng: &mut Rng| -> Value {
        match rng.below(12) {
            0 => Value::Null,
            1 => json!(-1),
            2 => json!(u64::MAX),
            3 => json!(1.5),
            4 => json!(""),
            5 => json!("x".repeat(rng.below(5_000))),
            6 => json!([]),
            7 => json!({}),
            8 => json!(true),
            9 => json!("00000000-0000-0000-0000-000000000000"),
            10 => json!("\u{0}\u{202e}é"),
            _ => json!({"nested": {"deeper": [1, {"x": null}]}}),
        }
    };
    match value {
        Value::Object(map) if !map.is_empty() && depth < 4 => {
            let keys: Vec<String> = map.keys().cloned().collect();
            let key = keys[rng.below(keys.len())].clone();
            match rng.below(5) {
                0 => {
                    map.remove(&key);
                }
                1 => {
                    map.insert(format!("extra_{}", rng.below(9)), weird(rng));
                }
                2 => {
                    map.insert(key, weird(rng));
                }
                _ => mutate(rng, map.get_mut(&key).unwrap(), depth + 1),
            }
        }
        Value::Array(items) if !items.is_empty() && depth < 4 => match rng.below(4) {
            0 => {
                let i = rng.below(items.len());
                let copy = items[i].clone();
                items.push(copy);
            }
            1 => {
                items.remove(rng.below(items.len()));
            }
            _ => {
                let i = rng.below(items.len());
                mutate(rng, &mut items[i], depth + 1);
            }
        },
        other => *other = weird(rng),
    }
}

#[tokio::test]
async fn mutated_requests_never_5xx_and_refusals_store_nothing() {
    let seed = common::seed_from_env("FUZZ_SEED", 20_261_125);
    let cases: usize = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(400);
    println!("http fuzz: {cases} requests from seed {seed} (FUZZ_SEED replays)");
    let mut rng = Rng::new(seed);
    let server = start().await;
    let events = workload(seed, 2, 10, 30);
    let device = events[0].device_id.to_string();
    let workspace = events[0].workspace_id.to_string();
    server.claim(&workspace).await;
    let http = server.client();
    let mut head = 0u64;
    let (mut accepted, mut refused) = (0, 0);
    for case in 0..cases {
        let before = appended(&server.base).await;
        let (path, body) = if rng.chance(70) {
            // A valid push of the next events (or of stored ones), then maybe mutated.
            let from = (head as usize).min(events.len());
            let n = 1 + rng.below(4);
            let slice = &events[from.saturating_sub(rng.below(2))..(from + n).min(events.len())];
            let mut body = json!({
                "device_id": device,
                "workspace_id": workspace,
                "cursor": head,
                "events": slice.iter().map(to_wire).collect::<Vec<_>>(),
            });
            for _ in 0..rng.below(3) {
                mutate(&mut rng, &mut body, 0);
            }
            ("push", body.to_string())
        } else if rng.chance(70) {
            let mut body =
                json!({"device_id": device, "workspace_id": workspace, "cursor": head, "limit": 5});
            mutate(&mut rng, &mut body, 0);
            ("pull", body.to_string())
        } else {
            // Not JSON at all, or JSON cut short.
            let text = json!({"device_id": device, "events": [to_wire(&events[0])]}).to_string();
            let cut = rng.below(text.len());
            ("push", text[..cut].to_string())
        };
        let response = http
            .post(format!("{}/api/sync/{path}", server.base))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        assert!(
            status < 500,
            "seed {seed}, case {case}: {status} for {path} {body}: {text}"
        );
        let reply: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("seed {seed}, case {case}: not JSON ({e}): {text}"));
        if status == 200 {
            accepted += 1;
            if path == "push" {
                if let Some(h) = reply["head"].as_u64() {
                    if reply["accepted"].as_array().is_some_and(|a| !a.is_empty())
                        && body.contains(&workspace)
                    {
                        head = head.max(h);
                    }
                }
            }
        } else {
            refused += 1;
            assert!((400..500).contains(&status), "{status}");
            assert!(
                reply["code"].as_str().is_some_and(|c| !c.is_empty())
                    && reply["message"].as_str().is_some_and(|m| !m.is_empty()),
                "seed {seed}, case {case}: not the error shape: {text}"
            );
            assert_eq!(
                appended(&server.base).await,
                before,
                "seed {seed}, case {case}: a refused request stored events: {body}"
            );
        }
    }
    println!("{accepted} accepted, {refused} refused");
    assert!(
        accepted > 0 && refused > 0,
        "{accepted} accepted, {refused} refused"
    );
    // The live socket: bad queries are 4xx; junk from a client does not hurt the server.
    for query in [
        "",
        "?workspace_id=",
        "?workspace_id=%00",
        "?x=1&workspace_id=nope",
    ] {
        let r = http
            .get(format!("{}/api/sync/live{query}", server.base))
            .send()
            .await
            .unwrap();
        assert!((400..500).contains(&r.status().as_u16()), "{query}");
    }
    for _ in 0..10 {
        let url = common::live_request(&server.base, &server.token, &workspace);
        let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let junk: Vec<u8> = (0..rng.below(70_000))
            .map(|_| rng.below(256) as u8)
            .collect();
        let message = if rng.chance(50) {
            tokio_tungstenite::tungstenite::Message::Binary(junk.into())
        } else {
            tokio_tungstenite::tungstenite::Message::Text(
                String::from_utf8_lossy(&junk).into_owned().into(),
            )
        };
        let _ = socket.send(message).await;
        let _ = socket.next().await;
    }
    let health = http
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200, "still serving");
    server.stop().await;
}
