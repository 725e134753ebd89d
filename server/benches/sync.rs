//! Sync benchmarks against the real server on 127.0.0.1:0, compared with raw SQLite in the
//! same run:
//!
//! 1. push ingest: 100,000 events in pushes of 100 through `POST /api/sync/push` (JSON, the
//!    whole stack: HTTP, validation, idempotency check, append with synchronous=FULL, views
//!    catch-up, live broadcast) vs raw rusqlite INSERTs of the same rows in transactions of 100
//!    (goal: >= 20k events/s);
//! 2. a fresh native client pulling all 100,000 events (pages of 5,000; stored in its log and
//!    projected into its views) (goal: < 3 s).
//!
//! Run: `cargo bench -p server --bench sync`. Record results in docs/benchmarks.md.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{client, start_with, wall_ms, HttpTransport};
use serde_json::json;
use server::config::Limits;
use tandem_events::engine::{Action, Settings};
use tandem_events::testkit::workload;
use tandem_store::baseline::{raw_insert, raw_table};
use tandem_store::driver::SyncClient;
use tandem_store::wire::to_wire;
use tandem_store::{open, Durability};

const EVENTS: usize = 100_000;
const BATCH: usize = 100;

#[tokio::main]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("sync benchmarks: run with `cargo bench -p server --bench sync`");
        return;
    }
    let events = workload(7, 20, EVENTS / 5, EVENTS - EVENTS / 5 - 20);
    let server = start_with(Limits::default()).await;
    let http = client();
    let url = format!("{}/api/sync/push", server.base);

    // 1. Push ingest, interleaved with the raw baseline batch by batch.
    let raw_dir = tempfile::tempdir().unwrap();
    let mut raw = open(raw_dir.path().join("raw.db"), Durability::Full).unwrap();
    raw_table(&raw).unwrap();
    let (mut ours, mut theirs) = (Duration::ZERO, Duration::ZERO);
    for (i, chunk) in events.chunks(BATCH).enumerate() {
        let body = json!({
            "device_id": chunk[0].device_id.to_string(),
            "workspace_id": chunk[0].workspace_id.to_string(),
            "cursor": (i * BATCH) as u64,
            "events": chunk.iter().map(to_wire).collect::<Vec<_>>(),
        })
        .to_string();
        let t = Instant::now();
        let response = http
            .post(&url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert_eq!(status, 200, "{text}");
        ours += t.elapsed();
        let t = Instant::now();
        raw_insert(&mut raw, chunk, i * BATCH).unwrap();
        theirs += t.elapsed();
    }
    let n = events.len() as f64;
    println!(
        "push ingest, {} events in pushes of {BATCH}: tandem {:>6.0} ev/s ({:.1} s), raw SQLite {:>6.0} ev/s, ratio {:.2}x",
        events.len(),
        n / ours.as_secs_f64(),
        ours.as_secs_f64(),
        n / theirs.as_secs_f64(),
        theirs.as_secs_f64() / ours.as_secs_f64()
    );

    // 2a. The pulls alone (HTTP + JSON, nothing stored), for comparison.
    {
        use tandem_store::driver::Transport;
        let mut transport = HttpTransport::new(&server.base);
        let t = Instant::now();
        let mut cursor = 0;
        loop {
            let page = transport
                .pull(&tandem_protocol::sync::PullRequest {
                    device_id: uuid::Uuid::from_u128(78).to_string(),
                    workspace_id: events[0].workspace_id.to_string(),
                    cursor,
                    limit: Some(5_000),
                })
                .await
                .unwrap();
            cursor = page.events.last().map_or(cursor, |e| e.seq);
            if !page.has_more {
                break;
            }
        }
        assert_eq!(cursor, events.len() as u64);
        println!(
            "pulling {cursor} events over HTTP without storing them: {:.2} s",
            t.elapsed().as_secs_f64()
        );
    }

    // 2. A fresh client pulls everything.
    let dir = tempfile::tempdir().unwrap();
    let replica = common::open_replica(dir.path(), 77);
    let settings = Settings::default();
    let mut sync = SyncClient::new(
        std::rc::Rc::new(std::cell::RefCell::new(replica)),
        HttpTransport::new(&server.base),
        events[0].workspace_id,
        settings,
    )
    .unwrap();
    let t = Instant::now();
    match sync.run(wall_ms, || 1).await {
        Action::Idle => {}
        other => panic!("the pull did not finish: {other:?} {:?}", sync.last_error),
    }
    let took = t.elapsed();
    let held = sync.replica().log().len().unwrap();
    assert_eq!(held, events.len() as u64);
    println!(
        "fresh client pulls {held} events (pages of {}; stored in its log and projected): {:.2} s, {:.0} ev/s",
        settings.pull_page,
        took.as_secs_f64(),
        held as f64 / took.as_secs_f64()
    );
    server.stop().await;
}
