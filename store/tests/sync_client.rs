//! The sync driver against a central log (both on in-memory SQLite, or files where the point is
//! files), one scenario per defect the review of issue 8 found: each failed before its fix.
//!
//! A scripted transport decides what happens to each request: delivered, delayed (the device
//! hears nothing; the server gets it later), lost, or held until the test lets it go.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use tandem_events::decide::ListCommand;
use tandem_events::engine::{Action, Input, Settings};
use tandem_events::event::StoredEvent;
use tandem_events::ids::{AggregateId, DeviceId, EventId, WorkspaceId};
use tandem_protocol::sync::{
    ErrorCode, PullRequest, PullResponse, PushRequest, PushResponse, SyncError,
};
use tandem_store::driver::{Notice, SyncClient, SyncState, Transport, TransportError};
use tandem_store::rusqlite::Connection;
use tandem_store::{Central, EventLog, PhysicalClock, Replica, SyncLimits, Views};

const WS: WorkspaceId = WorkspaceId::DEFAULT;
const T0: u64 = 1_800_000_000_000;

/// What happens to the next push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Deliver,
    /// Kept for [`Server::deliver_delayed`]; the device hears nothing.
    Delay,
    /// Lost on the way: the device hears nothing, the server gets nothing.
    Lose,
}

struct Server {
    central: Central,
    time: Arc<AtomicU64>,
    fates: VecDeque<Fate>,
    delayed: Vec<PushRequest>,
    pushes: Vec<PushRequest>,
    /// Pulls answered before they start failing (None: never).
    pulls_left: Option<usize>,
    /// The cursors of the pulls the device said would come next (`prefetch_pull`), and of
    /// the pulls it made, in order.
    prefetched: Vec<u64>,
    pulled: Vec<u64>,
    /// While false, requests wait (the device's worker stays free meanwhile).
    gate: Rc<Cell<bool>>,
}

impl Server {
    fn new(limits: SyncLimits) -> Rc<RefCell<Self>> {
        let time = Arc::new(AtomicU64::new(T0));
        let t = Arc::clone(&time);
        let clock: PhysicalClock = Arc::new(move || t.load(Ordering::SeqCst));
        let log = EventLog::with_connection(
            Connection::open_in_memory().unwrap(),
            DeviceId::from_uuid(uuid::Uuid::from_u128(0x5e)),
            clock,
        )
        .unwrap();
        Self::over(log, limits, time)
    }

    fn over(log: EventLog, limits: SyncLimits, time: Arc<AtomicU64>) -> Rc<RefCell<Self>> {
        let mut central = Central::assemble(log, limits);
        central.ensure_log_id("log-of-the-test-server").unwrap();
        Rc::new(RefCell::new(Self {
            central,
            time,
            fates: VecDeque::new(),
            delayed: vec![],
            pushes: vec![],
            pulls_left: None,
            prefetched: vec![],
            pulled: vec![],
            gate: Rc::new(Cell::new(true)),
        }))
    }

    fn advance(&self, ms: u64) {
        self.time.fetch_add(ms, Ordering::SeqCst);
    }

    fn now(&self) -> u64 {
        self.time.load(Ordering::SeqCst)
    }

    fn deliver_delayed(&mut self) -> Vec<Result<usize, SyncError>> {
        let delayed = std::mem::take(&mut self.delayed);
        delayed
            .iter()
            .map(|r| self.central.push(r).map(|o| o.appended.len()))
            .collect()
    }

    fn log(&self) -> Vec<StoredEvent> {
        let mut out = vec![];
        self.central
            .log()
            .for_each(|e| {
                out.push(e.clone());
                Ok(())
            })
            .unwrap();
        out
    }
}

/// Waits while the gate is shut.
struct Gate(Rc<Cell<bool>>);

impl Future for Gate {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        if self.0.get() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

struct Net(Rc<RefCell<Server>>);

impl Transport for Net {
    async fn push(&mut self, request: &PushRequest) -> Result<PushResponse, TransportError> {
        let gate = Rc::clone(&self.0.borrow().gate);
        Gate(gate).await;
        let mut server = self.0.borrow_mut();
        server.pushes.push(request.clone());
        match server.fates.pop_front().unwrap_or(Fate::Deliver) {
            Fate::Deliver => server
                .central
                .push(request)
                .map(|o| o.response)
                .map_err(TransportError::Refused),
            Fate::Delay => {
                server.delayed.push(request.clone());
                Err(TransportError::Unreachable("delayed".into()))
            }
            Fate::Lose => Err(TransportError::Unreachable("lost".into())),
        }
    }

    async fn pull(&mut self, request: &PullRequest) -> Result<PullResponse, TransportError> {
        let gate = Rc::clone(&self.0.borrow().gate);
        Gate(gate).await;
        let mut server = self.0.borrow_mut();
        server.pulled.push(request.cursor);
        if let Some(left) = server.pulls_left.as_mut() {
            if *left == 0 {
                return Err(TransportError::Unreachable("connection reset".into()));
            }
            *left -= 1;
        }
        server
            .central
            .pull(request)
            .map_err(TransportError::Refused)
    }

    fn prefetch_pull(&mut self, request: &PullRequest) {
        self.0.borrow_mut().prefetched.push(request.cursor);
    }
}

struct Device {
    client: SyncClient<Net>,
    skew: Arc<AtomicI64>,
    server: Rc<RefCell<Server>>,
    seed: u64,
}

fn memory_replica(n: u128, clock: PhysicalClock) -> Replica {
    let log = EventLog::with_connection(
        Connection::open_in_memory().unwrap(),
        DeviceId::from_uuid(uuid::Uuid::from_u128(n)),
        clock,
    )
    .unwrap();
    let (views, _) =
        Views::with_connection(Connection::open_in_memory().unwrap(), &log, |_| {}).unwrap();
    let mut next = n << 64;
    Replica::assemble(
        log,
        views,
        Box::new(move || {
            next += 1;
            uuid::Uuid::from_u128(next)
        }),
    )
    .unwrap()
}

fn device(server: &Rc<RefCell<Server>>, n: u128, settings: Settings) -> Device {
    let skew = Arc::new(AtomicI64::new(0));
    let (t, s) = (Arc::clone(&server.borrow().time), Arc::clone(&skew));
    let clock: PhysicalClock =
        Arc::new(move || (t.load(Ordering::SeqCst) as i64 + s.load(Ordering::SeqCst)) as u64);
    let replica = memory_replica(n, clock);
    let client = SyncClient::new(
        Rc::new(RefCell::new(replica)),
        Net(Rc::clone(server)),
        WS,
        settings,
    )
    .unwrap();
    Device {
        client,
        skew,
        server: Rc::clone(server),
        seed: n as u64,
    }
}

/// Polls a future that must finish without waiting.
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the transport is held"),
    }
}

impl Device {
    fn now(&self) -> u64 {
        self.server.borrow().now()
    }

    /// One run of the driver at the server's time.
    fn run(&mut self) -> Action {
        let time = Arc::clone(&self.server.borrow().time);
        let mut seed = self.seed;
        let action = block_on(self.client.run(
            || time.load(Ordering::SeqCst),
            move || {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                seed >> 1
            },
        ));
        self.seed = self.seed.wrapping_add(1);
        action
    }

    /// Runs until idle, letting time pass through every wait (at most 50 rounds).
    fn settle(&mut self) {
        self.client.notify(Input::Tick, self.now(), 0);
        for _ in 0..50 {
            match self.run() {
                Action::Idle => return,
                Action::Wait { until_ms } => {
                    let now = self.now();
                    self.server.borrow().advance(until_ms.saturating_sub(now));
                }
                other => panic!("run returned {other:?}"),
            }
        }
        panic!(
            "sync did not settle: {:?}, last error {:?}",
            self.client.engine(),
            self.client.last_error
        );
    }

    fn list(&self, id: AggregateId, name: &str) -> StoredEvent {
        let events = self
            .client
            .replica_mut()
            .execute_list(WS, id, ListCommand::Create { name: name.into() })
            .unwrap();
        events.into_iter().next().unwrap()
    }

    fn rename(&self, id: AggregateId, name: &str) -> StoredEvent {
        let events = self
            .client
            .replica_mut()
            .execute_list(
                WS,
                id,
                ListCommand::Rename {
                    name: name.into(),
                    resolving: false,
                    shown: None,
                },
            )
            .unwrap();
        events.into_iter().next().unwrap()
    }

    fn name(&self, id: AggregateId) -> (String, i64) {
        let r = self.client.replica();
        let conn = r.views().connection();
        let name = conn
            .query_row(
                "SELECT name FROM lists WHERE list_id = ?1",
                [id.to_string()],
                |row| row.get(0),
            )
            .unwrap();
        let conflicts = conn
            .query_row(
                "SELECT count(*) FROM conflicts WHERE aggregate_id = ?1",
                [id.to_string()],
                |row| row.get(0),
            )
            .unwrap();
        (name, conflicts)
    }
}

fn agg(n: u128) -> AggregateId {
    AggregateId::from_uuid(uuid::Uuid::from_u128(n))
}

#[test]
fn commands_never_wait_on_a_request_in_flight() {
    let server = Server::new(SyncLimits::default());
    let mut d = device(&server, 1, Settings::default());
    d.list(agg(1), "first");
    let shared = d.client.shared();
    let notifier = d.client.notifier();
    server.borrow().gate.set(false);
    let time = Arc::clone(&server.borrow().time);
    {
        let mut run = pin!(d.client.run(|| time.load(Ordering::SeqCst), || 1));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(run.as_mut().poll(&mut cx).is_pending(), "the pull is held");
        // The network hangs; the user goes on: the replica is free, the command lands.
        shared
            .borrow_mut()
            .execute_list(
                WS,
                agg(2),
                ListCommand::Create {
                    name: "typed while syncing".into(),
                },
            )
            .unwrap();
        notifier.notify(Input::LocalChange);
        assert!(run.as_mut().poll(&mut cx).is_pending());
        server.borrow().gate.set(true);
        assert_eq!(run.as_mut().poll(&mut cx), Poll::Ready(Action::Idle));
    }
    assert_eq!(
        server.borrow().log().len(),
        2,
        "both lists reached the server"
    );
    assert_eq!(d.client.replica().pending_len().unwrap(), 0);
}

#[test]
fn a_local_error_backs_off_and_says_why_instead_of_freezing() {
    let server = Server::new(SyncLimits::default());
    let mut a = device(&server, 1, Settings::default());
    a.list(agg(1), "one");
    a.settle();
    let mut b = device(&server, 2, Settings::default());
    a.list(agg(2), "two");
    a.settle();
    // B's disk fails when it stores what it pulls.
    b.client
        .replica_mut()
        .log()
        .connection()
        .execute_batch(
            "CREATE TRIGGER broken_disk BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END;",
        )
        .unwrap();
    let action = b.run();
    assert!(
        matches!(action, Action::Wait { .. }),
        "a local failure backs off, it does not freeze: {action:?}"
    );
    assert_eq!(b.client.state(), SyncState::Error);
    let reason = b.client.last_error.clone().unwrap();
    assert!(reason.contains("disk I/O error"), "{reason}");
    // The disk is mended: the next round goes through by itself.
    b.client
        .replica_mut()
        .log()
        .connection()
        .execute_batch("DROP TRIGGER broken_disk;")
        .unwrap();
    b.settle();
    assert_eq!(b.client.state(), SyncState::Online);
    assert_eq!(b.client.replica().cursor(WS).unwrap(), 2);
    assert_eq!(b.name(agg(2)).0, "two");
}

#[test]
fn an_undecodable_event_is_kept_skipped_visibly_and_never_blocks_later_ones() {
    // A newer device wrote a type this build does not know; the server (also newer) kept it.
    let time = Arc::new(AtomicU64::new(T0));
    let t = Arc::clone(&time);
    let mut log = EventLog::with_connection(
        Connection::open_in_memory().unwrap(),
        DeviceId::from_uuid(uuid::Uuid::from_u128(0x5e)),
        Arc::new(move || t.load(Ordering::SeqCst)),
    )
    .unwrap();
    let newer = DeviceId::from_uuid(uuid::Uuid::from_u128(0x99));
    let stamp = |ms: u64| tandem_events::hlc::Stamp {
        ms,
        counter: 0,
        node: newer,
    };
    let event = |n: u128, aggregate: u128, event_type: &str, data: &str, ms: u64| StoredEvent {
        event_id: EventId::from_uuid(uuid::Uuid::from_u128(n)),
        workspace_id: WS,
        aggregate_id: agg(aggregate),
        event_type: event_type.into(),
        schema_version: 1,
        event_data: data.into(),
        hlc_timestamp: stamp(ms),
        device_id: newer,
        version: 1,
        created_at: ms as i64,
    };
    log.append_batch(&[
        event(1, 10, "ListArchived", r#"{"reason":"done"}"#, T0 - 10),
        event(2, 11, "ListCreated", r#"{"name":"after"}"#, T0 - 9),
    ])
    .unwrap();
    let server = Server::over(log, SyncLimits::default(), time);
    let mut d = device(&server, 1, Settings::default());
    d.settle();
    assert_eq!(d.client.state(), SyncState::Online);
    let r = d.client.replica();
    assert_eq!(r.cursor(WS).unwrap(), 2, "kept in the log");
    assert_eq!(r.log().len().unwrap(), 2);
    let skipped = r.views().skipped().unwrap();
    assert_eq!(skipped.len(), 1, "listed for an 'update Tandem' notice");
    assert_eq!(skipped[0].event_type, "ListArchived");
    assert_eq!(r.views().checkpoint(WS).unwrap(), 2);
    drop(r);
    assert_eq!(d.name(agg(11)).0, "after", "later events are projected");
}

#[test]
fn a_build_that_knows_a_skipped_event_picks_it_up_by_rebuilding() {
    let dir = tempfile::tempdir().unwrap();
    let clock: PhysicalClock = Arc::new(|| T0);
    let device = DeviceId::from_uuid(uuid::Uuid::from_u128(1));
    let mut log = EventLog::open(dir.path().join("events.db"), device, Arc::clone(&clock)).unwrap();
    let e = StoredEvent {
        event_id: EventId::from_uuid(uuid::Uuid::from_u128(5)),
        workspace_id: WS,
        aggregate_id: agg(6),
        event_type: "ListCreated".into(),
        schema_version: 9,
        event_data: r#"{"name":"from the future"}"#.into(),
        hlc_timestamp: tandem_events::hlc::Stamp {
            ms: T0,
            counter: 0,
            node: device,
        },
        device_id: device,
        version: 1,
        created_at: 0,
    };
    log.append_batch(std::slice::from_ref(&e)).unwrap();
    let (views, rebuilt) = Views::open_current(dir.path().join("views.db"), &log, |_| {}).unwrap();
    assert!(rebuilt, "a new views.db is built");
    assert_eq!(views.skipped().unwrap().len(), 1);
    drop(views);
    // Reopened by the same build: nothing to pick up, no rebuild.
    let (_, rebuilt) = Views::open_current(dir.path().join("views.db"), &log, |_| {}).unwrap();
    assert!(!rebuilt);
    // A build that knows the kind (here: the row names a kind this build decodes) rebuilds.
    let conn = Connection::open(dir.path().join("views.db")).unwrap();
    conn.execute("UPDATE skipped_events SET schema_version = 1", [])
        .unwrap();
    drop(conn);
    let (views, rebuilt) = Views::open_current(dir.path().join("views.db"), &log, |_| {}).unwrap();
    assert!(
        rebuilt,
        "a skipped event that now decodes triggers a rebuild"
    );
    assert_eq!(views.skipped().unwrap().len(), 1, "still unknown at v9");
}

#[test]
fn schedule_a_a_delayed_copy_stored_after_a_correction_never_beats_the_later_edit() {
    let server = Server::new(SyncLimits::default());
    let mut a = device(&server, 1, Settings::default());
    let mut b = device(&server, 2, Settings::default());
    // A's clock is 5 minutes fast when X is written (offline: no answer has corrected it).
    a.skew.store(300_000, Ordering::SeqCst);
    let x = a.list(agg(1), "X");
    assert!(x.hlc_timestamp.ms >= T0 + 300_000);
    // The first push is delayed in the network; the retry gets CLOCK_DRIFT; the retry after
    // the correction is lost.
    server
        .borrow_mut()
        .fates
        .extend([Fate::Delay, Fate::Deliver, Fate::Lose]);
    a.client.notify(Input::LocalChange, a.now(), 0);
    while !server.borrow().fates.is_empty() {
        match a.run() {
            Action::Wait { until_ms } => {
                let now = a.now();
                server.borrow().advance(until_ms - now);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(server.borrow().pushes.len(), 3);
    let x_new = a.client.replica().pending(10).unwrap()[0].clone();
    assert_eq!(x_new.event_id, x.event_id);
    assert!(x_new.hlc_timestamp < x.hlc_timestamp, "re-stamped behind");
    assert!(a
        .client
        .notices
        .iter()
        .any(|n| matches!(n, Notice::ClockCorrected { .. })));
    // The user types Y over X.
    let y = a.rename(agg(1), "Y");
    // Minutes later the delayed copy lands: X is stored under its old stamp.
    server.borrow().advance(300_000);
    let landed = server.borrow_mut().deliver_delayed();
    assert_eq!(landed, vec![Ok(1)], "the delayed copy was stored");
    a.settle();
    b.settle();
    let stored_y = server
        .borrow()
        .log()
        .into_iter()
        .find(|e| e.event_id == y.event_id)
        .expect("Y reached the server");
    assert!(
        stored_y.event_data.contains(&x.hlc_timestamp.encode())
            && stored_y.event_data.contains(&x_new.hlc_timestamp.encode()),
        "Y names both stamps of X: {}",
        stored_y.event_data
    );
    for d in [&a, &b] {
        assert_eq!(d.name(agg(1)), ("Y".to_string(), 0), "Y wins, no conflict");
    }
    assert_eq!(a.client.replica().pending_len().unwrap(), 0);
}

#[test]
fn schedule_b_a_corrected_edit_never_takes_the_stamp_of_one_kept_in_the_outbox() {
    let server = Server::new(SyncLimits::default());
    let mut a = device(&server, 1, Settings::default());
    let mut b = device(&server, 2, Settings::default());
    // 30 s fast: within the drift limit. A is accepted at (L, 0).
    a.skew.store(30_000, Ordering::SeqCst);
    let first = a.list(agg(1), "A");
    a.settle();
    // B typed at (L, 1) stays in the outbox (offline).
    server.borrow_mut().fates.push_back(Fate::Lose);
    let kept = a.rename(agg(1), "B");
    assert_eq!(
        (kept.hlc_timestamp.ms, kept.hlc_timestamp.counter),
        (first.hlc_timestamp.ms, 1)
    );
    a.client.notify(Input::LocalChange, a.now(), 0);
    assert!(matches!(a.run(), Action::Wait { .. }));
    // The device clock jumps 5 minutes; C is typed over B and refused as too far ahead.
    a.skew.store(330_000, Ordering::SeqCst);
    let c = a.rename(agg(1), "C");
    a.settle();
    b.settle();
    let log = server.borrow().log();
    let stored_c = log.iter().find(|e| e.event_id == c.event_id).unwrap();
    let stored_b = log.iter().find(|e| e.event_id == kept.event_id).unwrap();
    assert_eq!(
        stored_b.hlc_timestamp, kept.hlc_timestamp,
        "B kept its stamp"
    );
    assert!(
        stored_c.hlc_timestamp > stored_b.hlc_timestamp,
        "C was re-stamped above the kept B, never to B's stamp"
    );
    for d in [&a, &b] {
        assert_eq!(d.name(agg(1)), ("C".to_string(), 0));
    }
}

#[test]
fn the_offset_follows_every_answer_so_a_fixed_device_clock_stamps_current_time() {
    let server = Server::new(SyncLimits::default());
    let mut a = device(&server, 1, Settings::default());
    a.skew.store(-600_000, Ordering::SeqCst); // 10 minutes slow
    a.settle();
    let e = a.list(agg(1), "one");
    assert!(e.hlc_timestamp.ms >= T0, "corrected forward by the answer");
    // The device clock gets fixed; the next answer re-estimates the offset.
    a.skew.store(0, Ordering::SeqCst);
    server.borrow().advance(1_000);
    a.settle();
    server.borrow().advance(1_000);
    let e = a.list(agg(2), "two");
    assert_eq!(e.hlc_timestamp.ms, a.now(), "no stale offset left");
}

#[test]
fn a_refusal_without_the_servers_time_is_an_error_never_a_zero() {
    struct NoTime;
    impl Transport for NoTime {
        async fn push(&mut self, _: &PushRequest) -> Result<PushResponse, TransportError> {
            Err(TransportError::Refused(SyncError::new(
                ErrorCode::ClockDrift,
                "too far ahead",
            )))
        }
        async fn pull(&mut self, r: &PullRequest) -> Result<PullResponse, TransportError> {
            Ok(PullResponse {
                people: vec![],
                events: vec![],
                head: r.cursor,
                has_more: false,
                server_time_ms: T0 as i64,
                log_id: String::new(),
            })
        }
    }
    let replica = memory_replica(1, Arc::new(|| T0));
    let mut client = SyncClient::new(
        Rc::new(RefCell::new(replica)),
        NoTime,
        WS,
        Settings::default(),
    )
    .unwrap();
    client
        .replica_mut()
        .execute_list(WS, agg(1), ListCommand::Create { name: "x".into() })
        .unwrap();
    let before = client.replica().log().clock_state();
    let action = block_on(client.run(|| T0, || 3));
    assert!(matches!(action, Action::Wait { .. }), "{action:?}");
    assert_eq!(client.state(), SyncState::Error);
    let after = client.replica().log().clock_state();
    assert_eq!(
        after.last_ms, before.last_ms,
        "the clock was not set to zero"
    );
    assert!(client.replica().pending(1).unwrap()[0].hlc_timestamp.ms >= T0);
}

/// A download of several pages names each next page before it stores the one it has (the
/// browser's transport sends it then, so the network works while the page is stored): every
/// page but the first was announced with the cursor it was then pulled at, and nothing after
/// the last.
#[test]
fn a_download_announces_each_next_page_before_storing_the_one_it_has() {
    let server = Server::new(SyncLimits::default());
    let mut a = device(&server, 1, Settings::default());
    for i in 0..10 {
        a.list(agg(100 + i), &format!("list {i}"));
    }
    a.settle();
    server.borrow_mut().pulled.clear();
    server.borrow_mut().prefetched.clear();
    let mut b = device(
        &server,
        2,
        Settings {
            pull_page: 3,
            ..Settings::default()
        },
    );
    b.settle();
    assert_eq!(b.client.replica().cursor(WS).unwrap(), 10);
    let server = server.borrow();
    assert_eq!(server.pulled, [0, 3, 6, 9], "four pages of three");
    assert_eq!(
        server.prefetched,
        [3, 6, 9],
        "each next page announced, none after the last"
    );
    assert_eq!(
        secondary_indexes(&b),
        ["events_hlc", "events_type"],
        "built at the end of the download"
    );
}

/// The log's secondary indexes that exist, by name.
fn secondary_indexes(d: &Device) -> Vec<String> {
    let r = d.client.replica();
    let mut stmt = r
        .log()
        .connection()
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'index' \
             AND name IN ('events_hlc', 'events_type') ORDER BY name",
        )
        .unwrap();
    let names = stmt
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<Vec<String>, _>>()
        .unwrap();
    names
}

#[test]
fn a_pull_that_fails_midway_projects_the_pages_already_stored() {
    let server = Server::new(SyncLimits::default());
    let mut a = device(&server, 1, Settings::default());
    for i in 0..9 {
        a.list(agg(100 + i), &format!("list {i}"));
    }
    a.settle();
    let mut b = device(
        &server,
        2,
        Settings {
            pull_page: 3,
            ..Settings::default()
        },
    );
    server.borrow_mut().pulls_left = Some(2);
    assert!(matches!(b.run(), Action::Wait { .. }));
    assert!(
        secondary_indexes(&b).is_empty(),
        "a first download writes without the secondary indexes"
    );
    let r = b.client.replica();
    assert_eq!(r.cursor(WS).unwrap(), 6, "two pages stored");
    assert_eq!(
        r.views().checkpoint(WS).unwrap(),
        6,
        "and projected before the failure was reported"
    );
    assert_eq!(r.lists(WS).unwrap().len(), 6);
}

#[test]
fn commands_decide_on_the_log_not_on_a_stale_cache() {
    let server = Server::new(SyncLimits::default());
    let mut a = device(&server, 1, Settings::default());
    let mut b = device(&server, 2, Settings::default());
    a.list(agg(1), "shop");
    a.settle();
    b.settle();
    // B projects the list (its views hold its state), then A renames it.
    assert_eq!(b.name(agg(1)).0, "shop");
    let renamed = a.rename(agg(1), "groceries");
    a.settle();
    // B stores A's rename without projecting it yet (a long pull's middle page).
    let page = server
        .borrow()
        .central
        .pull(&PullRequest {
            device_id: uuid::Uuid::from_u128(2).to_string(),
            workspace_id: WS.to_string(),
            cursor: 1,
            limit: None,
        })
        .unwrap();
    let pulled: Vec<(u64, StoredEvent)> = page
        .events
        .iter()
        .map(|l| (l.seq, tandem_store::wire::from_wire(&l.event).unwrap()))
        .collect();
    b.client.replica_mut().store_pulled(&pulled, false).unwrap();
    // B's user renames: the edit must replace what B's log holds (A's rename), not the
    // cached state from before it.
    let edit = b.rename(agg(1), "food");
    assert!(
        edit.event_data.contains(&renamed.hlc_timestamp.encode()),
        "bases name A's rename: {}",
        edit.event_data
    );
    b.settle();
    a.settle();
    for d in [&a, &b] {
        assert_eq!(d.name(agg(1)), ("food".to_string(), 0), "no false conflict");
    }
}

#[test]
fn a_refused_event_is_set_aside_visibly_and_what_follows_goes_on() {
    let server = Server::new(SyncLimits {
        event_data_bytes: 200,
        ..SyncLimits::default()
    });
    let mut a = device(&server, 1, Settings::default());
    a.list(agg(1), "small");
    let big = a.list(agg(2), &"x".repeat(190));
    let after_big = a.rename(agg(2), "renamed");
    a.rename(agg(1), "still small");
    a.settle();
    assert_eq!(a.client.state(), SyncState::Online);
    let r = a.client.replica();
    assert_eq!(r.pending_len().unwrap(), 0, "nothing stuck in the outbox");
    let aside = r.log().set_aside_events().unwrap();
    assert_eq!(
        aside.len(),
        2,
        "the refused creation takes its item's later edit along"
    );
    assert_eq!(aside[0].0.event_id, big.event_id);
    assert_eq!(aside[0].1, "INVALID_EVENT");
    assert_eq!(aside[1].0.event_id, after_big.event_id);
    assert!(
        aside[1].2.contains("creation was refused"),
        "{}",
        aside[1].2
    );
    assert!(
        r.set_aside_items()
            .unwrap()
            .iter()
            .all(|(item, code, _)| *item == agg(2) && code == "INVALID_EVENT"),
        "the item is marked"
    );
    drop(r);
    assert!(a.client.notices.iter().any(
        |n| matches!(n, Notice::SetAside { event_id, .. } if *event_id == big.event_id.to_string())
    ));
    assert_eq!(server.borrow().log().len(), 2, "the others were accepted");
    assert_eq!(a.name(agg(1)).0, "still small");
    // Its item is no longer shown as if it were synced.
    assert!(a
        .client
        .replica()
        .lists(WS)
        .unwrap()
        .iter()
        .all(|l| l.id != agg(2)));
}

#[test]
fn pushes_are_sized_by_bytes_as_well_as_by_count() {
    let server = Server::new(SyncLimits::default());
    let budget = 3_000;
    let mut a = device(
        &server,
        1,
        Settings {
            push_bytes: budget,
            ..Settings::default()
        },
    );
    for i in 0..12 {
        a.list(agg(10 + i), &format!("{i} {}", "y".repeat(180)));
    }
    a.settle();
    let pushes = server.borrow().pushes.clone();
    assert!(pushes.len() >= 2, "{} pushes", pushes.len());
    for p in &pushes {
        let bytes: usize = p
            .events
            .iter()
            .map(|e| serde_json::to_vec(e).unwrap().len())
            .sum();
        assert!(
            bytes <= budget || p.events.len() == 1,
            "{} events, {bytes} bytes",
            p.events.len()
        );
    }
    assert_eq!(server.borrow().log().len(), 12);
}

#[test]
fn views_ahead_of_the_log_are_rebuilt_not_left_with_ghost_rows() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::new(SyncLimits::default());
    let mut a = device(&server, 1, Settings::default());
    for i in 0..5 {
        a.list(agg(1 + i), &format!("list {i}"));
    }
    a.settle();
    let (events, views) = (dir.path().join("events.db"), dir.path().join("views.db"));
    let open = |n: u128| {
        Replica::open(
            &events,
            &views,
            DeviceId::from_uuid(uuid::Uuid::from_u128(n)),
            Arc::new(|| T0),
            Box::new({
                let mut next = n << 64;
                move || {
                    next += 1;
                    uuid::Uuid::from_u128(next)
                }
            }),
            |_| {},
        )
        .unwrap()
    };
    // A file device takes the first two events, is backed up, then takes the rest.
    let page = |cursor, limit| {
        let response = server
            .borrow()
            .central
            .pull(&PullRequest {
                device_id: uuid::Uuid::from_u128(9).to_string(),
                workspace_id: WS.to_string(),
                cursor,
                limit: Some(limit),
            })
            .unwrap();
        response
            .events
            .iter()
            .map(|l| (l.seq, tandem_store::wire::from_wire(&l.event).unwrap()))
            .collect::<Vec<_>>()
    };
    let mut r = open(9);
    r.accept(&page(0, 2), &[]).unwrap();
    drop(r);
    std::fs::copy(&events, dir.path().join("backup.db")).unwrap();
    let mut r = open(9);
    r.accept(&page(2, 10), &[]).unwrap();
    assert_eq!(r.lists(WS).unwrap().len(), 5);
    drop(r);
    // events.db is restored from the backup; views.db is not.
    std::fs::copy(dir.path().join("backup.db"), &events).unwrap();
    let r = open(9);
    assert_eq!(r.cursor(WS).unwrap(), 2);
    assert_eq!(r.views().checkpoint(WS).unwrap(), 2, "rebuilt to the log");
    assert_eq!(r.lists(WS).unwrap().len(), 2, "no ghost lists");
}

#[test]
fn verify_names_an_aggregate_split_across_workspaces_and_a_todo_in_a_foreign_list() {
    let device = DeviceId::from_uuid(uuid::Uuid::from_u128(1));
    let open = || {
        EventLog::with_connection(
            Connection::open_in_memory().unwrap(),
            device,
            Arc::new(|| T0),
        )
        .unwrap()
    };
    let other: WorkspaceId = uuid::Uuid::from_u128(0xaaaa).to_string().parse().unwrap();
    let event = |n: u128, ws: WorkspaceId, aggregate: u128, version: u64, t: &str, data: String| {
        StoredEvent {
            event_id: EventId::from_uuid(uuid::Uuid::from_u128(n)),
            workspace_id: ws,
            aggregate_id: agg(aggregate),
            event_type: t.into(),
            schema_version: if t == "TodoCreated" { 2 } else { 1 },
            event_data: data,
            hlc_timestamp: tandem_events::hlc::Stamp {
                ms: T0,
                counter: n as u32,
                node: device,
            },
            device_id: device,
            version,
            created_at: 0,
        }
    };
    let list = event(1, WS, 1, 1, "ListCreated", r#"{"name":"l"}"#.into());
    // The low-level append path does not check rule 21 (the server's push does): a data dir
    // written around the server.
    let mut split = open();
    split
        .append_batch(&[
            list.clone(),
            event(2, other, 1, 2, "ListDeleted", "{}".into()),
        ])
        .unwrap();
    let v = split.verify().unwrap_err();
    assert!(v.0.contains("more than one workspace"), "{v}");
    let mut foreign = open();
    foreign
        .append_batch(&[
            list,
            event(
                3,
                other,
                2,
                1,
                "TodoCreated",
                format!(
                    r#"{{"list_id":"{}","title":"t","position":"V","due_date":null}}"#,
                    agg(1)
                ),
            ),
        ])
        .unwrap();
    let v = foreign.verify().unwrap_err();
    assert!(v.0.contains("names a list of workspace"), "{v}");
}

impl Server {
    /// The live message the server would send for its head, with the events after `cursor`
    /// (and its socket's log_id).
    fn live_after(&self, cursor: u64) -> (u64, Vec<tandem_protocol::sync::LoggedEvent>, String) {
        let answer = self
            .central
            .pull(&PullRequest {
                device_id: DeviceId::from_uuid(uuid::Uuid::from_u128(0x77)).to_string(),
                workspace_id: WS.to_string(),
                cursor,
                limit: None,
            })
            .unwrap();
        (answer.head, answer.events, answer.log_id)
    }
}

/// A server and two devices, both holding a list `a` made ("first", seq 1).
fn two_devices_sharing_a_list() -> (Rc<RefCell<Server>>, Device, Device) {
    let server = Server::new(SyncLimits::default());
    let mut a = device(&server, 1, Settings::default());
    let mut b = device(&server, 2, Settings::default());
    a.list(agg(1), "first");
    a.settle();
    b.settle();
    (server, a, b)
}

#[test]
fn a_live_message_continuing_the_cursor_is_stored_without_a_pull() {
    let (server, mut a, mut b) = two_devices_sharing_a_list();
    a.rename(agg(1), "renamed on a");
    a.settle();
    let pulls = server.borrow().pulled.len();
    let (head, events, log_id) = server.borrow().live_after(1);
    assert_eq!((head, events.len()), (2, 1));
    b.client.notifier().live(&log_id, head, events, vec![]);
    assert_eq!(b.run(), Action::Idle);
    assert_eq!(b.name(agg(1)).0, "renamed on a", "shown from the message");
    assert_eq!(b.client.engine().cursor(), 2);
    assert_eq!(server.borrow().pulled.len(), pulls, "no pull was needed");
    // The same message again (a reconnect's overlap) changes nothing and pulls nothing.
    let (head, events, log_id) = server.borrow().live_after(0);
    b.client.notifier().live(&log_id, head, events, vec![]);
    assert_eq!(b.run(), Action::Idle);
    assert_eq!(server.borrow().pulled.len(), pulls);
    assert_eq!(b.client.replica().log().len().unwrap(), 2);
}

#[test]
fn a_live_message_with_a_gap_or_a_stranger_is_left_to_a_pull() {
    let (server, mut a, mut b) = two_devices_sharing_a_list();
    a.rename(agg(1), "second");
    a.rename(agg(1), "third");
    a.settle();
    // Only the last event (a message lost before it): a gap after b's cursor → a pull.
    let (head, events, log_id) = server.borrow().live_after(2);
    b.client.notifier().live(&log_id, head, events, vec![]);
    let pulls = server.borrow().pulled.len();
    assert_eq!(b.run(), Action::Idle);
    assert_eq!(
        server.borrow().pulled[pulls..],
        [1],
        "pulled from its cursor"
    );
    assert_eq!(b.name(agg(1)).0, "third");

    // An event pushed by an account whose name b does not know: the pull brings the name.
    a.rename(agg(1), "fourth");
    a.settle();
    let (head, mut events, log_id) = server.borrow().live_after(3);
    events[0].user_id = Some("someone-new".into());
    b.client
        .notifier()
        .live(&log_id, head, events.clone(), vec![]);
    let pulls = server.borrow().pulled.len();
    assert_eq!(b.run(), Action::Idle);
    assert_eq!(server.borrow().pulled[pulls..], [3]);
    // Named in the message, the same kind of message is taken as it comes, and the name
    // noted (a name of an account its events do not name is not).
    a.rename(agg(1), "fifth");
    a.settle();
    let (head, mut events, log_id) = server.borrow().live_after(4);
    events[0].user_id = Some("someone-new".into());
    let person = |user: &str, name: &str| tandem_protocol::sync::Person {
        user_id: user.into(),
        username: name.into(),
    };
    b.client.notifier().live(
        &log_id,
        head,
        events,
        vec![
            person("someone-new", "Someone"),
            person("bystander", "Nobody"),
        ],
    );
    let pulls = server.borrow().pulled.len();
    assert_eq!(b.run(), Action::Idle);
    assert_eq!(server.borrow().pulled.len(), pulls);
    assert_eq!(b.name(agg(1)).0, "fifth");
    let replica = b.client.replica();
    assert!(replica.log().knows_people(["someone-new"]).unwrap());
    assert!(!replica.log().knows_people(["bystander"]).unwrap());
    drop(replica);

    // Another workspace's events (a confused or hostile server) are never stored from a
    // message: the pull, which the server answers for this workspace, brings the real ones.
    a.rename(agg(1), "sixth");
    a.settle();
    let (head, mut events, log_id) = server.borrow().live_after(5);
    events[0].event.workspace_id = WorkspaceId::from_uuid(uuid::Uuid::from_u128(9)).to_string();
    b.client.notifier().live(&log_id, head, events, vec![]);
    let pulls = server.borrow().pulled.len();
    assert_eq!(b.run(), Action::Idle);
    assert_eq!(server.borrow().pulled[pulls..], [5]);
    assert_eq!(b.name(agg(1)).0, "sixth");

    // A socket of another log (the server restored; the socket's first message said so):
    // nothing stored from it; the pull finds the change of log.
    a.rename(agg(1), "seventh");
    a.settle();
    let (head, events, _) = server.borrow().live_after(6);
    b.client
        .notifier()
        .live("another-log", head, events, vec![]);
    let pulls = server.borrow().pulled.len();
    assert_eq!(b.run(), Action::Idle);
    assert_eq!(server.borrow().pulled[pulls..], [6]);
}

#[test]
fn a_live_message_acknowledges_a_push_whose_answer_was_lost() {
    let (server, _a, mut b) = two_devices_sharing_a_list();
    b.list(agg(2), "b's own");
    // The push reaches the server late; b hears nothing and backs off.
    server.borrow_mut().fates.push_back(Fate::Delay);
    assert!(matches!(b.run(), Action::Wait { .. }));
    assert_eq!(b.client.replica().pending_len().unwrap(), 1);
    let stored = server.borrow_mut().deliver_delayed();
    assert_eq!(stored, [Ok(1)]);
    // The announcement of b's own event is its acknowledgement: taken from the outbox into
    // the log at its seq, during the backoff, without a request.
    let (head, events, log_id) = server.borrow().live_after(1);
    assert_eq!(head, 2);
    let requests = (server.borrow().pulled.len(), server.borrow().pushes.len());
    b.client.notifier().live(&log_id, head, events, vec![]);
    assert!(matches!(b.run(), Action::Wait { .. }), "the backoff stands");
    assert_eq!(
        (server.borrow().pulled.len(), server.borrow().pushes.len()),
        requests
    );
    assert_eq!(b.client.replica().pending_len().unwrap(), 0);
    assert_eq!(b.client.replica().log().len().unwrap(), 2);
    assert_eq!(b.client.engine().cursor(), 2);
    b.settle();
    assert_eq!(server.borrow().log().len(), 2, "stored once");
    assert_eq!(b.name(agg(2)).0, "b's own");
}
