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

use common::{start_with, wall_ms, HttpTransport};
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
    server.claim(&events[0].workspace_id.to_string()).await;
    let http = server.client();
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
        let mut transport = HttpTransport::new(&server);
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
        HttpTransport::new(&server),
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
    access_check_cost(&events);
}

/// The cost of the access check on push ingest, in one run: the same pushes through the sync
/// service (credentials already resolved; membership, the device's account and the quota
/// checked per push) and straight into the central log (no access check), each on a data dir
/// of its own.
fn access_check_cost(events: &[tandem_events::event::StoredEvent]) {
    use app::sync::ssr::{Quotas, SyncService};
    use std::sync::Arc;
    let push = |i: usize, chunk: &[tandem_events::event::StoredEvent]| {
        tandem_protocol::sync::PushRequest {
            device_id: chunk[0].device_id.to_string(),
            workspace_id: chunk[0].workspace_id.to_string(),
            cursor: (i * BATCH) as u64,
            events: chunk.iter().map(to_wire).collect(),
        }
    };
    // Without: the central log alone.
    let plain_dir = tempfile::tempdir().unwrap();
    let plain = server::Databases::open(plain_dir.path(), &Limits::default()).unwrap();
    let t = Instant::now();
    for (i, chunk) in events.chunks(BATCH).enumerate() {
        plain
            .backend
            .push_as(
                &push(i, chunk),
                &tandem_store::Pusher {
                    user: None,
                    quota: None,
                },
            )
            .unwrap();
    }
    let without = t.elapsed();
    // With: the service a push goes through.
    let dir = tempfile::tempdir().unwrap();
    let dbs = server::Databases::open(dir.path(), &Limits::default()).unwrap();
    server::admin::user_add(dir.path(), "bench", "bench password").unwrap();
    let user = dbs.accounts.user_by_name("bench").unwrap().unwrap().user;
    dbs.accounts
        .create_workspace(
            &user.user_id,
            &events[0].workspace_id.to_string(),
            "W",
            false,
            0,
        )
        .unwrap();
    let service = SyncService::new(
        Arc::clone(&dbs.backend),
        4,
        Arc::new(|_| {}),
        Arc::clone(&dbs.accounts),
        Quotas::default(),
    );
    let caller = tandem_accounts::Caller::Signed(tandem_accounts::Principal {
        user,
        is_admin: false,
        credential: tandem_accounts::Credential::Token {
            token_id: "bench".into(),
        },
    });
    let t = Instant::now();
    for (i, chunk) in events.chunks(BATCH).enumerate() {
        service.push(&caller, &push(i, chunk)).unwrap();
    }
    let with = t.elapsed();
    let n = events.len() as f64;
    println!(
        "push ingest in-process, {} events in pushes of {BATCH}: without the access check {:>6.0} ev/s, with it {:>6.0} ev/s, ratio {:.3}x",
        events.len(),
        n / without.as_secs_f64(),
        n / with.as_secs_f64(),
        with.as_secs_f64() / without.as_secs_f64()
    );
}
