//! Store benchmarks, each compared with raw SQLite in the same run (ratios printed):
//!
//! 1. batched append (`EventLog::append_batch`) vs a raw rusqlite INSERT of identical rows into
//!    an identical table, same pragmas, one transaction per batch (goal: >= 0.5x raw);
//! 2. replay (read, decode, fold) and full rebuild (`Views::rebuild`: replay, then drop and
//!    write every view row) vs a raw scan of the log
//!    (goal: >= 250k events/s);
//! 3. single-event append + project latency through the device command path (`Replica`), vs a
//!    raw single-row INSERT transaction.
//!
//! Run: `cargo bench -p tandem-store --bench store` (release). Record results in
//! docs/benchmarks.md.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tandem_events::decide::{TodoCommand, TodoEdit};
use tandem_events::ids::{AggregateId, DeviceId, WorkspaceId};
use tandem_events::testkit::workload;
use tandem_store::baseline::{raw_insert, raw_table};
use tandem_store::{open, Durability, EventLog, Replica, Views};

const APPEND_EVENTS: usize = 50_000;
const REPLAY_EVENTS: usize = 200_000;
const SINGLE_EDITS: usize = 300;

fn physical() -> tandem_store::PhysicalClock {
    let t = Arc::new(AtomicU64::new(1_760_000_000_000));
    Arc::new(move || t.fetch_add(1, Ordering::Relaxed))
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn bench_append(batch: usize) {
    let events = workload(
        1,
        20,
        APPEND_EVENTS / 4,
        APPEND_EVENTS - APPEND_EVENTS / 4 - 20,
    );
    let mut ours = vec![];
    let mut raw = vec![];
    for _round in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let mut log = EventLog::open(
            dir.path().join("events.db"),
            DeviceId::from_uuid(uuid::Uuid::from_u128(1)),
            physical(),
        )
        .unwrap();
        let mut conn = open(dir.path().join("raw.db"), Durability::Full).unwrap();
        raw_table(&conn).unwrap();
        // Interleave the two so that both see the same machine state.
        let (mut t_ours, mut t_raw) = (Duration::ZERO, Duration::ZERO);
        for (i, chunk) in events.chunks(batch).enumerate() {
            let t = Instant::now();
            log.append_batch(chunk).unwrap();
            t_ours += t.elapsed();
            let t = Instant::now();
            raw_insert(&mut conn, chunk, i * batch).unwrap();
            t_raw += t.elapsed();
        }
        ours.push(t_ours);
        raw.push(t_raw);
    }
    let (ours, raw) = (median(ours), median(raw));
    let n = events.len() as f64;
    println!(
        "append, batches of {batch:>4}: tandem {:>9.0} ev/s, raw SQLite {:>9.0} ev/s, ratio {:.2}x",
        n / ours.as_secs_f64(),
        n / raw.as_secs_f64(),
        raw.as_secs_f64() / ours.as_secs_f64()
    );
}

fn bench_replay() {
    let events = workload(
        2,
        50,
        REPLAY_EVENTS / 5,
        REPLAY_EVENTS - REPLAY_EVENTS / 5 - 50,
    );
    let dir = tempfile::tempdir().unwrap();
    let mut log = EventLog::open(
        dir.path().join("events.db"),
        DeviceId::from_uuid(uuid::Uuid::from_u128(1)),
        physical(),
    )
    .unwrap();
    for chunk in events.chunks(10_000) {
        log.append_batch(chunk).unwrap();
    }
    let (mut views, _) = Views::open_current(dir.path().join("views.db"), &log, |_| {}).unwrap();
    let mut ours = vec![];
    let mut raw = vec![];
    for _ in 0..3 {
        let t = Instant::now();
        views.rebuild(&log, |_| {}).unwrap();
        ours.push(t.elapsed());
        let t = Instant::now();
        let mut stmt = log
            .connection()
            .prepare("SELECT * FROM events ORDER BY workspace_id, seq")
            .unwrap();
        let mut rows = stmt.query([]).unwrap();
        let mut bytes = 0usize;
        while let Some(row) = rows.next().unwrap() {
            bytes += row.get_ref(7).unwrap().as_str().unwrap().len();
        }
        raw.push(t.elapsed());
        assert!(bytes > 0);
    }
    let mut fold = vec![];
    for _ in 0..3 {
        let t = Instant::now();
        let mut model = tandem_events::state::Model::default();
        log.for_each(|e| {
            model.apply(e, &e.decode().unwrap());
            Ok(())
        })
        .unwrap();
        fold.push(t.elapsed());
        assert!(!model.aggregates.is_empty());
    }
    let (ours, raw, fold) = (median(ours), median(raw), median(fold));
    let n = events.len() as f64;
    println!(
        "replay of {} events (read + decode + fold, no view writes): {:>9.0} ev/s ({:.0} ms); ratio to raw scan {:.2}x",
        events.len(),
        n / fold.as_secs_f64(),
        fold.as_secs_f64() * 1e3,
        raw.as_secs_f64() / fold.as_secs_f64()
    );
    println!(
        "full rebuild of {} events (replay + drop and write all views): {:>9.0} ev/s ({:.0} ms); raw scan of the log {:>9.0} ev/s; ratio {:.2}x",
        events.len(),
        n / ours.as_secs_f64(),
        ours.as_secs_f64() * 1e3,
        n / raw.as_secs_f64(),
        raw.as_secs_f64() / ours.as_secs_f64()
    );
}

/// Catching up as events arrive (the server's projector, a device's sync): the log grows by
/// 1,000 events at a time and the views catch up after each step (event by event: the
/// backlog stays under the bulk threshold).
fn bench_incremental() {
    let events = workload(4, 20, 10_000, 40_000);
    let dir = tempfile::tempdir().unwrap();
    let mut log = EventLog::open(
        dir.path().join("events.db"),
        DeviceId::from_uuid(uuid::Uuid::from_u128(1)),
        physical(),
    )
    .unwrap();
    let (mut views, _) = Views::open_current(dir.path().join("views.db"), &log, |_| {}).unwrap();
    let mut took = Duration::ZERO;
    for chunk in events.chunks(1_000) {
        log.append_batch(chunk).unwrap();
        let t = Instant::now();
        views.catch_up(&log, 1_000).unwrap();
        took += t.elapsed();
    }
    println!(
        "incremental projection of {} events, 1,000 at a time: {:>7.0} ev/s ({:.0} ms)",
        events.len(),
        events.len() as f64 / took.as_secs_f64(),
        took.as_secs_f64() * 1e3
    );
}

fn bench_single() {
    let dir = tempfile::tempdir().unwrap();
    let mut next = 10u128;
    let mut replica = Replica::open(
        dir.path().join("events.db"),
        dir.path().join("views.db"),
        DeviceId::from_uuid(uuid::Uuid::from_u128(1)),
        physical(),
        Box::new(move || {
            next += 1;
            uuid::Uuid::from_u128(next)
        }),
        |_| {},
    )
    .unwrap();
    let ws = WorkspaceId::DEFAULT;
    let list = AggregateId::from_uuid(uuid::Uuid::from_u128(2));
    let todo = AggregateId::from_uuid(uuid::Uuid::from_u128(3));
    replica
        .execute_list(
            ws,
            list,
            tandem_events::decide::ListCommand::Create {
                name: "Bench".into(),
            },
        )
        .unwrap();
    replica
        .execute_todo(
            ws,
            todo,
            TodoCommand::Create {
                list_id: list,
                title: "t".into(),
                position: "V".into(),
                due_date: None,
            },
        )
        .unwrap();
    let mut conn = open(dir.path().join("raw.db"), Durability::Full).unwrap();
    raw_table(&conn).unwrap();
    let sample = workload(3, 1, 1, SINGLE_EDITS);
    let mut ours = vec![];
    let mut raw = vec![];
    for i in 0..SINGLE_EDITS {
        let t = Instant::now();
        replica
            .execute_todo(
                ws,
                todo,
                TodoCommand::Edit {
                    edit: TodoEdit::Title(format!("title {i}")),
                    resolving: false,
                    shown: None,
                },
            )
            .unwrap();
        ours.push(t.elapsed());
        let t = Instant::now();
        raw_insert(&mut conn, &sample[i..i + 1], i).unwrap();
        raw.push(t.elapsed());
    }
    let p = |xs: &mut Vec<Duration>, q: f64| {
        xs.sort();
        xs[((xs.len() as f64 - 1.0) * q) as usize]
    };
    let (o50, o95, r50) = (p(&mut ours, 0.5), p(&mut ours, 0.95), p(&mut raw, 0.5));
    println!(
        "single edit, decide + outbox append + project: p50 {:.3} ms, p95 {:.3} ms; raw 1-row INSERT txn p50 {:.3} ms; ratio {:.2}x",
        o50.as_secs_f64() * 1e3,
        o95.as_secs_f64() * 1e3,
        r50.as_secs_f64() * 1e3,
        r50.as_secs_f64() / o50.as_secs_f64()
    );
}

fn main() {
    // `cargo test --benches` runs this binary with --bench absent: keep that quick.
    if !std::env::args().any(|a| a == "--bench") {
        println!("store benchmarks: run with `cargo bench -p tandem-store --bench store`");
        return;
    }
    println!("tandem-store benchmarks (synchronous=FULL, WAL, temp files)");
    // BENCH_ONLY=append|replay|single runs one group (for profiling).
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let run = |name: &str| only.is_empty() || only == name;
    if run("append") {
        bench_append(100);
        bench_append(1_000);
    }
    if run("replay") {
        bench_replay();
    }
    if run("incremental") {
        bench_incremental();
    }
    if run("single") {
        bench_single();
    }
}
