//! The server's projector reads the log through its own read-only connection (WAL) while the
//! writer appends. A bulk catch-up must fold exactly the events of the heads it records.

use tandem_events::ids::DeviceId;
use tandem_events::testkit::workload;
use tandem_store::{EventLog, Views};

#[test]
fn the_projection_cache_stays_within_its_bound_and_eviction_changes_no_row() {
    let dir = tempfile::tempdir().unwrap();
    let events = workload(9, 10, 600, 1_500);
    let mut log = EventLog::open(
        dir.path().join("events.db"),
        DeviceId::from_uuid(uuid::Uuid::from_u128(1)),
        std::sync::Arc::new(|| 1_750_000_000_000),
    )
    .unwrap();
    let (mut views, _) = Views::open_current(dir.path().join("views.db"), &log, |_| {}).unwrap();
    views.set_cache_limit(100);
    let mut most = 0;
    for chunk in events.chunks(200) {
        log.append_batch(chunk).unwrap();
        views.catch_up(&log, 50).unwrap();
        most = most.max(views.cached());
    }
    assert!(most <= 100, "the cache held {most} aggregates");
    let (fresh, _) = Views::with_connection(
        tandem_store::rusqlite::Connection::open_in_memory().unwrap(),
        &log,
        |_| {},
    )
    .unwrap();
    assert!(
        views.dump().unwrap() == fresh.dump().unwrap(),
        "evicted states reload equal"
    );
}

#[test]
fn pushes_committed_during_a_bulk_catch_up_are_never_skipped() {
    let seed: u64 = std::env::var("PROJECTOR_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    println!("projector race: seed {seed} (PROJECTOR_SEED replays)");
    let dir = tempfile::tempdir().unwrap();
    let events = workload(seed, 20, 1_500, 6_200);
    let (before, during) = events.split_at(6_000);
    let mut writer = EventLog::open(
        dir.path().join("events.db"),
        DeviceId::from_uuid(uuid::Uuid::from_u128(1)),
        std::sync::Arc::new(|| 1_750_000_000_000),
    )
    .unwrap();
    let reader = EventLog::open_reader(dir.path().join("events.db")).unwrap();
    let (mut views, _) = Views::open_current(dir.path().join("views.db"), &reader, |_| {}).unwrap();
    // A backlog big enough for the bulk path; the writer appends again while it is folded.
    writer.append_batch(before).unwrap();
    let mut pushed = false;
    let mut calls = 0;
    views
        .catch_up_with(&reader, 5_000, |p| {
            calls += 1;
            if !pushed && p.done > 0 {
                writer.append_batch(during).unwrap();
                pushed = true;
            }
        })
        .unwrap();
    let _ = views.catch_up(&reader, 5_000).unwrap();
    assert!(pushed, "the bulk path ran ({calls} progress calls)");
    let head = reader.heads().unwrap()[0].1;
    assert_eq!(head, events.len() as u64);
    assert_eq!(
        views.checkpoint(events[0].workspace_id).unwrap(),
        head,
        "the checkpoint is the head"
    );
    let (fresh, rebuilt) = Views::with_connection(
        tandem_store::rusqlite::Connection::open_in_memory().unwrap(),
        &reader,
        |_| {},
    )
    .unwrap();
    assert!(rebuilt);
    assert!(
        views.dump().unwrap() == fresh.dump().unwrap(),
        "seed {seed}: the views miss events pushed during the bulk catch-up"
    );
}

#[test]
fn pulls_and_heads_read_beside_a_writer_holding_its_lock() {
    use tandem_protocol::sync::PullRequest;
    use tandem_store::{Readers, SyncLimits};
    let dir = tempfile::tempdir().unwrap();
    let events = workload(12, 2, 20, 60);
    let mut writer = EventLog::open(
        dir.path().join("events.db"),
        DeviceId::from_uuid(uuid::Uuid::from_u128(1)),
        std::sync::Arc::new(|| 1_750_000_000_000),
    )
    .unwrap();
    writer.append_batch(&events[..40]).unwrap();
    let readers = Readers::open(dir.path(), 2, SyncLimits::default()).unwrap();
    // The writer is in the middle of a write (it holds SQLite's write lock, as a push does
    // inside the server's writer mutex)...
    writer
        .connection()
        .execute_batch("BEGIN IMMEDIATE; INSERT INTO heads VALUES ('in-flight', 1);")
        .unwrap();
    // ...and pulls and live heads are answered anyway, from the last commit.
    let ws = events[0].workspace_id;
    let request = PullRequest {
        device_id: events[0].device_id.to_string(),
        workspace_id: ws.to_string(),
        cursor: 0,
        limit: Some(100),
    };
    let started = std::time::Instant::now();
    let answer = readers.pull(&request, 0).unwrap();
    assert_eq!(answer.events.len(), 40);
    assert_eq!(answer.head, 40);
    assert_eq!(readers.head(ws, 0).unwrap(), 40);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(1),
        "no waiting on the writer"
    );
    writer.connection().execute_batch("ROLLBACK").unwrap();
}
