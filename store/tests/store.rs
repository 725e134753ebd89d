//! The store on real SQLite files in temp dirs: optimistic concurrency, atomic batches,
//! immutability, the persisted clock and its SQL functions, and the projection engine
//! (incremental == rebuild, any order gives equal views, checkpoints across reopen, versioned
//! rebuild with progress, upcasting).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tandem_events::event::StoredEvent;
use tandem_events::hlc::Stamp;
use tandem_events::ids::{AggregateId, DeviceId};
use tandem_events::testkit::{as_v1, renumber, simulate, Rng, Simulation};
use tandem_store::{EventLog, LogError, PhysicalClock, Progress, Views};

struct Fixture {
    dir: tempfile::TempDir,
    time: Arc<AtomicU64>,
}

impl Fixture {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            time: Arc::new(AtomicU64::new(1_750_000_000_000)),
        }
    }
    fn physical(&self) -> PhysicalClock {
        let t = Arc::clone(&self.time);
        Arc::new(move || t.load(Ordering::SeqCst))
    }
    fn log(&self) -> EventLog {
        EventLog::open(
            self.dir.path().join("events.db"),
            device(1),
            self.physical(),
        )
        .unwrap()
    }
    fn views(&self, log: &EventLog) -> (Views, bool) {
        Views::open_current(self.dir.path().join("views.db"), log, |_| {}).unwrap()
    }
}

fn device(n: u8) -> DeviceId {
    DeviceId::from_uuid(uuid::Uuid::from_bytes([n; 16]))
}

fn sim(seed: u64) -> Vec<StoredEvent> {
    let mut events = simulate(Simulation {
        seed,
        devices: 3,
        steps: 300,
        gossip_percent: 25,
    });
    renumber(&mut events);
    events
}

fn count(log: &EventLog) -> i64 {
    log.connection()
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn append_refuses_a_stale_expected_version_naming_everything() {
    let f = Fixture::new();
    let mut log = f.log();
    let events = sim(1);
    let aggregate = events[0].aggregate_id;
    let first: Vec<StoredEvent> = events
        .iter()
        .filter(|e| e.aggregate_id == aggregate)
        .take(1)
        .cloned()
        .collect();
    log.append(aggregate, 0, &first).unwrap();
    let err = log.append(aggregate, 0, &first).unwrap_err();
    match err {
        LogError::VersionConflict {
            aggregate: a,
            expected,
            actual,
        } => {
            assert_eq!((a, expected, actual), (aggregate, 0, 1));
        }
        other => panic!("expected a version conflict, got {other:?}"),
    }
    assert!(err_text(&log, aggregate).contains(&aggregate.to_string()));
    assert_eq!(count(&log), 1);
}

fn err_text(log: &EventLog, aggregate: AggregateId) -> String {
    LogError::VersionConflict {
        aggregate,
        expected: 0,
        actual: log.version(aggregate).unwrap(),
    }
    .to_string()
}

#[test]
fn a_failed_batch_leaves_the_log_and_clock_untouched() {
    let f = Fixture::new();
    let mut log = f.log();
    let events = sim(2);
    log.append_batch(&events[..10]).unwrap();
    let before = (count(&log), log.heads().unwrap(), log.clock_state());
    // A batch whose 5th event reuses an id already stored.
    let mut bad: Vec<StoredEvent> = events[10..20].to_vec();
    bad[4].event_id = events[0].event_id;
    assert!(matches!(
        log.append_batch(&bad),
        Err(LogError::DuplicateEvent { .. })
    ));
    // A batch with a version gap in its 7th event.
    let mut gap: Vec<StoredEvent> = events[10..20].to_vec();
    gap[6].version += 5;
    assert!(matches!(
        log.append_batch(&gap),
        Err(LogError::VersionConflict { .. })
    ));
    assert_eq!(
        (count(&log), log.heads().unwrap(), log.clock_state()),
        before
    );
    drop(log);
    // Still so after reopening, and the good batch goes in.
    let mut log = f.log();
    assert_eq!(count(&log), 10);
    let appended = log.append_batch(&events[10..20]).unwrap();
    assert_eq!(
        appended.iter().map(|a| a.seq).collect::<Vec<_>>(),
        (11..=20).collect::<Vec<_>>()
    );
}

#[test]
fn the_log_is_immutable() {
    let f = Fixture::new();
    let mut log = f.log();
    log.append_batch(&sim(3)[..5]).unwrap();
    for sql in [
        "UPDATE events SET event_data = '{}'",
        "DELETE FROM events",
        "UPDATE events SET seq = seq + 100",
    ] {
        let err = log.connection().execute(sql, []).unwrap_err();
        assert!(err.to_string().contains("immutable"), "{sql}: {err}");
    }
    assert_eq!(count(&log), 5);
}

#[test]
fn hlc_sql_functions_share_the_persisted_clock() {
    let f = Fixture::new();
    let log = f.log();
    let conn = log.connection();
    let a: String = conn
        .query_row("SELECT hlc_now()", [], |r| r.get(0))
        .unwrap();
    let b: String = conn
        .query_row("SELECT hlc_now()", [], |r| r.get(0))
        .unwrap();
    assert!(a < b);
    let a: Stamp = a.parse().unwrap();
    assert_eq!(a.node, device(1));
    let cmp: (i64, i64, i64) = conn
        .query_row(
            "SELECT hlc_compare(?1, ?2), hlc_compare(?2, ?1), hlc_compare(?1, ?1)",
            [a.encode(), b.clone()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(cmp, (-1, 1, 0));
    let err = conn
        .query_row("SELECT hlc_compare('junk', ?1)", [&b], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap_err();
    assert!(err.to_string().contains("malformed HLC stamp"), "{err}");
    // The SQL clock and the Rust one are the same clock.
    let c = log.stamp().unwrap();
    assert!(c.encode() > b);
}

#[test]
fn the_clock_never_goes_back_across_restarts() {
    let f = Fixture::new();
    let mut log = f.log();
    let events = sim(4);
    log.append_batch(&events).unwrap();
    let greatest = events.iter().map(|e| e.hlc_timestamp).max().unwrap();
    let issued = log.stamp().unwrap();
    assert!(issued > greatest);
    drop(log);
    // The physical clock jumps back a day.
    f.time.fetch_sub(86_400_000, Ordering::SeqCst);
    let log = f.log();
    assert!(
        log.stamp().unwrap() > greatest,
        "restored from the log and hlc_state"
    );
    assert_eq!(log.device_id(), device(1));
}

#[test]
fn any_order_of_the_same_events_gives_equal_views_and_rebuild_equals_incremental() {
    for seed in 0..6 {
        let events = sim(100 + seed);
        let mut hashes = vec![];
        let mut rng = Rng::new(seed);
        for round in 0..3 {
            let f = Fixture::new();
            let mut log = f.log();
            let mut order = events.clone();
            if round > 0 {
                rng.shuffle(&mut order);
                renumber(&mut order);
            }
            let (mut views, rebuilt) = f.views(&log);
            assert!(rebuilt, "a new views.db is built");
            // Incremental: batches of random size, catching up after each.
            let mut at = 0;
            while at < order.len() {
                let n = 1 + rng.below(40);
                let end = (at + n).min(order.len());
                log.append_batch(&order[at..end]).unwrap();
                views.catch_up(&log, 1 + rng.below(16)).unwrap();
                at = end;
            }
            let incremental = views.dump().unwrap();
            views.rebuild(&log, |_| {}).unwrap();
            assert_eq!(
                incremental,
                views.dump().unwrap(),
                "seed {seed} round {round}: rebuild == incremental"
            );
            hashes.push(views.hash().unwrap());
        }
        assert!(
            hashes.windows(2).all(|w| w[0] == w[1]),
            "seed {seed}: {hashes:?}"
        );
    }
}

#[test]
fn outbox_events_apply_once_and_a_rebuild_replays_log_then_outbox() {
    let f = Fixture::new();
    let mut log = f.log();
    let events = sim(7);
    let (server_part, mine) = events.split_at(events.len() / 2);
    log.append_batch(server_part).unwrap();
    let (mut views, _) = f.views(&log);
    views.catch_up(&log, 100).unwrap();
    // This device records some events of its own (in the outbox, one aggregate at a time).
    let mut recorded = vec![];
    for e in mine {
        if recorded.len() == 20 {
            break;
        }
        if log.version(e.aggregate_id).unwrap() + 1 != e.version {
            continue;
        }
        log.record(e.aggregate_id, e.version - 1, std::slice::from_ref(e))
            .unwrap();
        views.apply_outbox(&log, std::slice::from_ref(e)).unwrap();
        recorded.push(e.clone());
    }
    assert!(!recorded.is_empty());
    assert_eq!(log.outbox().unwrap(), recorded);
    let before = views.dump().unwrap();
    // Applying them again changes nothing (idempotent by event id).
    views.apply_outbox(&log, &recorded).unwrap();
    assert_eq!(views.dump().unwrap(), before);
    // A rebuild (log, then outbox) gives the same views.
    views.rebuild(&log, |_| {}).unwrap();
    assert_eq!(views.dump().unwrap(), before);
}

#[test]
fn reopening_continues_from_the_checkpoint() {
    let f = Fixture::new();
    let events = sim(8);
    let half = events.len() / 2;
    let ws = events[0].workspace_id;
    {
        let mut log = f.log();
        let (mut views, _) = f.views(&log);
        log.append_batch(&events[..half]).unwrap();
        assert_eq!(views.catch_up(&log, 7).unwrap(), half as u64);
        assert_eq!(views.checkpoint(ws).unwrap(), half as u64);
    }
    let mut log = f.log();
    log.append_batch(&events[half..]).unwrap();
    let (mut views, rebuilt) = f.views(&log);
    assert!(!rebuilt, "same projection version: no rebuild");
    assert_eq!(views.checkpoint(ws).unwrap(), half as u64);
    let processed = views.catch_up(&log, 50).unwrap();
    assert_eq!(
        processed,
        (events.len() - half) as u64,
        "only the rest is applied"
    );
    assert_eq!(views.catch_up(&log, 50).unwrap(), 0);
    let incremental = views.dump().unwrap();
    views.rebuild(&log, |_| {}).unwrap();
    assert_eq!(incremental, views.dump().unwrap());
}

#[test]
fn a_changed_projection_version_rebuilds_with_progress() {
    let f = Fixture::new();
    let mut log = f.log();
    let events = sim(9);
    log.append_batch(&events).unwrap();
    let (mut views, _) = f.views(&log);
    views.catch_up(&log, 64).unwrap();
    let expected = views.dump().unwrap();
    // Pretend the stored views were made by an older projection, with stale rows.
    views
        .connection()
        .execute("UPDATE projection_meta SET version = 0", [])
        .unwrap();
    views
        .connection()
        .execute("UPDATE todos SET title = 'stale'", [])
        .unwrap();
    drop(views);
    let mut reports: Vec<Progress> = vec![];
    let (views, rebuilt) =
        Views::open_current(f.dir.path().join("views.db"), &log, |p| reports.push(p)).unwrap();
    assert!(rebuilt);
    assert_eq!(views.dump().unwrap(), expected);
    assert_eq!(reports.first().map(|p| p.done), Some(0));
    assert_eq!(
        reports.last(),
        Some(&Progress {
            done: events.len() as u64,
            total: events.len() as u64
        })
    );
}

#[test]
fn old_event_shapes_are_upcast_not_rewritten() {
    let f = Fixture::new();
    let mut log = f.log();
    let events = sim(10);
    let old = as_v1(&events);
    assert!(old
        .iter()
        .any(|e| e.schema_version == 1 && e.event_type == "TodoCreated"));
    log.append_batch(&old).unwrap();
    let (mut views, _) = f.views(&log);
    views.catch_up(&log, 100).unwrap();
    // The log still holds v1 data.
    let v1: i64 = log
        .connection()
        .query_row(
            "SELECT count(*) FROM events WHERE event_type = 'TodoCreated' AND schema_version = 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(v1 > 0);
    // The views equal those of the v2 events.
    let g = Fixture::new();
    let mut log2 = g.log();
    log2.append_batch(&events).unwrap();
    let (mut views2, _) = g.views(&log2);
    views2.catch_up(&log2, 100).unwrap();
    assert_eq!(views.dump().unwrap(), views2.dump().unwrap());
}

#[test]
fn a_large_backlog_takes_the_bulk_path_with_the_same_result() {
    let events = tandem_events::testkit::workload(21, 3, 1_500, 5_000);
    assert!(events.len() >= 6_000);
    // Caught up in one go: the backlog is the whole log, so catch_up rebuilds.
    let f = Fixture::new();
    let mut log = f.log();
    let (mut bulk, _) = f.views(&log);
    log.append_batch(&events).unwrap();
    assert_eq!(bulk.catch_up(&log, 1_000).unwrap(), events.len() as u64);
    // Caught up a thousand events at a time: event by event.
    let g = Fixture::new();
    let mut log2 = g.log();
    let (mut step, _) = g.views(&log2);
    for chunk in events.chunks(1_000) {
        log2.append_batch(chunk).unwrap();
        assert_eq!(step.catch_up(&log2, 250).unwrap(), chunk.len() as u64);
    }
    assert_eq!(bulk.dump().unwrap(), step.dump().unwrap());
    let ws = events[0].workspace_id;
    assert_eq!(bulk.checkpoint(ws).unwrap(), step.checkpoint(ws).unwrap());
}
