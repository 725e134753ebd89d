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
    assert_eq!(
        err.to_string(),
        format!("version conflict on aggregate {aggregate}: expected version 0, actual 1"),
        "the message names the aggregate and both versions"
    );
    assert_eq!(count(&log), 1);
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
    // Only the bulk path reports progress: count it to know which path ran.
    let mut reports = 0;
    assert_eq!(
        bulk.catch_up_with(&log, 1_000, |_| reports += 1).unwrap(),
        events.len() as u64
    );
    assert!(reports > 0, "the whole-log backlog took the bulk path");
    // Caught up a thousand events at a time: event by event.
    let g = Fixture::new();
    let mut log2 = g.log();
    let (mut step, _) = g.views(&log2);
    for chunk in events.chunks(1_000) {
        log2.append_batch(chunk).unwrap();
        let mut reports = 0;
        assert_eq!(
            step.catch_up_with(&log2, 250, |_| reports += 1).unwrap(),
            chunk.len() as u64
        );
        assert_eq!(reports, 0, "1,000 new events take the incremental path");
    }
    assert_eq!(bulk.dump().unwrap(), step.dump().unwrap());
    let ws = events[0].workspace_id;
    assert_eq!(bulk.checkpoint(ws).unwrap(), step.checkpoint(ws).unwrap());
}

mod correction {
    //! The clock correction (DESIGN.md rule 8), `bases` rewriting, refresh and the outbox
    //! rebase, each on its own.

    use super::*;
    use tandem_events::decide::ListCommand;
    use tandem_events::ids::WorkspaceId;
    use tandem_store::Replica;

    const T: u64 = 1_750_000_000_000;

    fn replica(f: &Fixture) -> Replica {
        let mut n = 0u128;
        Replica::open(
            f.dir.path().join("events.db"),
            f.dir.path().join("views.db"),
            device(1),
            f.physical(),
            Box::new(move || {
                n += 1;
                uuid::Uuid::from_u128(n)
            }),
            |_| {},
        )
        .unwrap()
    }

    fn rename(r: &mut Replica, list: AggregateId, name: &str) -> StoredEvent {
        r.execute_list(
            WorkspaceId::DEFAULT,
            list,
            ListCommand::Rename {
                name: name.into(),
                resolving: false,
                shown: None,
            },
        )
        .unwrap()
        .remove(0)
    }

    fn bases(e: &StoredEvent) -> Vec<String> {
        let v: serde_json::Value = serde_json::from_str(&e.event_data).unwrap();
        serde_json::from_value(v["bases"].clone()).unwrap()
    }

    #[test]
    fn the_correction_retires_only_stamps_beyond_the_limit_and_edits_keep_the_old_bases() {
        let f = Fixture::new();
        f.time.store(T, Ordering::SeqCst);
        let mut r = replica(&f);
        let list = AggregateId::from_uuid(uuid::Uuid::from_u128(0x11));
        let a = r
            .execute_list(
                WorkspaceId::DEFAULT,
                list,
                ListCommand::Create { name: "A".into() },
            )
            .unwrap()
            .remove(0);
        // The device clock jumps 5 minutes ahead; X and Y are typed.
        f.time.store(T + 300_000, Ordering::SeqCst);
        let x = rename(&mut r, list, "X");
        let y = rename(&mut r, list, "Y");
        assert_eq!(bases(&y), vec![x.hlc_timestamp.encode()]);
        // The server (at T + 1 s, drift limit 60 s) refused: X and Y are beyond T + 61 s.
        let touched = r.correct_clock(T + 1_000, 60_000).unwrap();
        assert_eq!(touched, vec![list]);
        let out = r.pending(10).unwrap();
        let (a2, x2, y2) = (&out[0], &out[1], &out[2]);
        assert_eq!(
            a2.hlc_timestamp, a.hlc_timestamp,
            "A is within the limit: kept"
        );
        assert!(x2.hlc_timestamp > a.hlc_timestamp && x2.hlc_timestamp.ms < T + 61_000);
        assert!(y2.hlc_timestamp > x2.hlc_timestamp, "re-stamped in order");
        assert_eq!(
            bases(y2),
            vec![x.hlc_timestamp.encode(), x2.hlc_timestamp.encode()],
            "Y keeps X's old stamp and gains the new one"
        );
        assert_eq!(
            bases(x2),
            vec![a.hlc_timestamp.encode()],
            "A was not renamed"
        );
        assert_eq!(
            r.log().retired().unwrap(),
            vec![x.hlc_timestamp, y.hlc_timestamp],
            "the old stamps are retired"
        );
        // Refreshed views: the value, and history under the new stamps only.
        assert_eq!(r.lists(WorkspaceId::DEFAULT).unwrap()[0].name, "Y");
        let stamps: Vec<String> = r
            .views()
            .connection()
            .prepare("SELECT hlc FROM history ORDER BY hlc")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            stamps,
            vec![
                a.hlc_timestamp.encode(),
                x2.hlc_timestamp.encode(),
                y2.hlc_timestamp.encode()
            ]
        );
        // Retired stamps survive a restart, and the clock skips them when it gets there.
        drop(r);
        let r = replica(&f);
        assert_eq!(r.log().retired().unwrap().len(), 2);
        f.time.store(x.hlc_timestamp.ms, Ordering::SeqCst);
        for _ in 0..5 {
            let s = r.log().stamp().unwrap();
            assert!(s != x.hlc_timestamp && s != y.hlc_timestamp, "{s}");
        }
    }

    #[test]
    fn a_stamp_dropped_for_a_stored_copy_is_never_issued_again() {
        let f = Fixture::new();
        f.time.store(T + 300_000, Ordering::SeqCst);
        let mut r = replica(&f);
        let list = AggregateId::from_uuid(uuid::Uuid::from_u128(0x33));
        let x = r
            .execute_list(
                WorkspaceId::DEFAULT,
                list,
                ListCommand::Create { name: "X".into() },
            )
            .unwrap()
            .remove(0);
        let dropped = x.hlc_timestamp;
        // A delayed copy of X was stored under another stamp: the stored copy wins, and X's
        // outbox stamp is retired.
        let stored = StoredEvent {
            hlc_timestamp: Stamp {
                ms: T + 1_000,
                counter: 0,
                node: device(1),
            },
            ..x.clone()
        };
        r.accept(&[(1, stored)], &[]).unwrap();
        assert_eq!(r.pending_len().unwrap(), 0);
        let z = rename(&mut r, list, "Z");
        // Refused: the clock is set back half a second behind the dropped stamp...
        r.correct_clock(T + 299_500, 0).unwrap();
        // ...and the physical clock reaches it again: the dropped stamp must be skipped.
        f.time.store(T + 300_500, Ordering::SeqCst);
        for _ in 0..3 {
            let s = r.log().stamp().unwrap();
            assert!(
                s != dropped && s != z.hlc_timestamp,
                "{s} was issued before"
            );
        }
    }

    #[test]
    fn a_log_no_build_of_this_version_opened_reads_without_the_new_tables() {
        let f = Fixture::new();
        {
            let mut log = f.log();
            log.append_batch(&sim(5)).unwrap();
            log.connection()
                .execute_batch("DROP TABLE heads; DROP TABLE log_meta;")
                .unwrap();
        }
        let reader = EventLog::open_reader(f.dir.path().join("events.db")).unwrap();
        let heads = reader.heads().unwrap();
        assert!(!heads.is_empty());
        for (ws, head) in heads {
            assert_eq!(reader.head(ws).unwrap(), head);
        }
        assert_eq!(reader.log_id().unwrap(), None);
        reader.verify().expect("verify reads an older file");
    }

    #[test]
    fn rebase_changes_only_versions_in_recording_order() {
        let f = Fixture::new();
        f.time.store(T, Ordering::SeqCst);
        let mut r = replica(&f);
        let list = AggregateId::from_uuid(uuid::Uuid::from_u128(0x22));
        // Another device created the list; this one renamed it twice before hearing of that.
        let theirs = Stamp {
            ms: T - 10,
            counter: 0,
            node: device(2),
        };
        let created = StoredEvent {
            event_id: tandem_events::ids::EventId::from_uuid(uuid::Uuid::from_u128(0x99)),
            workspace_id: WorkspaceId::DEFAULT,
            aggregate_id: list,
            event_type: "ListCreated".into(),
            schema_version: 1,
            event_data: r#"{"name":"theirs"}"#.into(),
            hlc_timestamp: theirs,
            device_id: device(2),
            version: 1,
            created_at: 0,
        };
        r.accept(&[(1, created.clone())], &[]).unwrap();
        let one = rename(&mut r, list, "one");
        let two = rename(&mut r, list, "two");
        assert_eq!((one.version, two.version), (2, 3));
        // A second pulled event of the list from the other device: ours move after it.
        let renamed = StoredEvent {
            event_id: tandem_events::ids::EventId::from_uuid(uuid::Uuid::from_u128(0x98)),
            event_type: "ListRenamed".into(),
            event_data: format!(r#"{{"bases":["{}"],"name":"theirs 2"}}"#, theirs.encode()),
            hlc_timestamp: Stamp {
                ms: T - 5,
                ..theirs
            },
            version: 2,
            ..created
        };
        r.accept(&[(2, renamed)], &[]).unwrap();
        let out = r.pending(10).unwrap();
        assert_eq!(out.len(), 2);
        for (before, after, version) in [(&one, &out[0], 3), (&two, &out[1], 4)] {
            assert_eq!(after.version, version);
            assert_eq!(
                StoredEvent {
                    version: before.version,
                    ..after.clone()
                },
                *before,
                "only the version changed"
            );
        }
    }
}

#[test]
fn an_events_db_of_an_older_build_is_migrated_at_open() {
    let f = Fixture::new();
    {
        let conn =
            tandem_store::rusqlite::Connection::open(f.dir.path().join("events.db")).unwrap();
        // The outbox as an older build made it: its recording order was called `position`.
        conn.execute_batch(
            "CREATE TABLE outbox (position INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL UNIQUE, \
             workspace_id TEXT NOT NULL, aggregate_id TEXT NOT NULL, version INTEGER NOT NULL, \
             event_type TEXT NOT NULL, schema_version INTEGER NOT NULL, event_data TEXT NOT NULL, \
             hlc_timestamp TEXT NOT NULL, device_id TEXT NOT NULL, created_at INTEGER NOT NULL, \
             UNIQUE (aggregate_id, version));",
        )
        .unwrap();
    }
    let log = f.log();
    let columns: Vec<String> = log
        .connection()
        .prepare("SELECT name FROM pragma_table_info('outbox')")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(columns.contains(&"recorded".to_string()), "{columns:?}");
    assert!(!columns.contains(&"position".to_string()), "{columns:?}");
    assert_eq!(log.outbox_len().unwrap(), 0);
}
