//! A seeded, deterministic simulation of many replicas syncing with a central log (both on
//! in-memory SQLite): random commands, offline periods, lost requests and lost acks, duplicated
//! and late (reordered) deliveries, and clock skew beyond the server's drift limit. After the
//! faults stop and everyone syncs, every replica must hold the server's log and views.
//!
//! `SIM_SCHEDULES` sets the number of schedules (default 1,000; `make test-sim` runs 10,000),
//! `SIM_SEED` the first seed (default: from the clock, printed, so a failure can be replayed).

use std::cell::RefCell;
use std::future::Future;
use std::pin::pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use tandem_events::decide::{ListCommand, TodoCommand, TodoEdit};
use tandem_events::engine::{Action, Input, Settings};
use tandem_events::ids::{AggregateId, DeviceId, WorkspaceId};
use tandem_events::position;
use tandem_events::testkit::Rng;
use tandem_protocol::sync::{PullRequest, PullResponse, PushRequest, PushResponse};
use tandem_store::driver::{SyncClient, Transport, TransportError};
use tandem_store::rusqlite::Connection;
use tandem_store::{Central, EventLog, Replica, SyncLimits, Views};

/// The transports here never wait, so one poll finishes every future.
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("a simulated transport never waits"),
    }
}

/// What the schedules exercised, so the test can tell that it tested something.
#[derive(Default, Debug)]
struct Seen {
    pull_required: u64,
    clock_drift: u64,
    acked_again: u64,
    /// Delayed copies delivered after their events were accepted.
    late_after_accept: u64,
    /// Delayed copies refused because the events were stored re-stamped (rule 8).
    late_id_reused: u64,
    lost_answers: u64,
}

thread_local! {
    static SEEN: RefCell<Seen> = RefCell::new(Seen::default());
    /// For the oracle: per recorded event, the ids of the events its `bases` named on its
    /// author's device when it was recorded (what the author saw), and every event recorded.
    static SAW: RefCell<std::collections::HashMap<String, Vec<String>>> = RefCell::default();
}

struct Net {
    central: Central,
    rng: Rng,
    faults: bool,
    /// Requests delivered again later (duplicates, reordered).
    late: Vec<PushRequest>,
}

impl Net {
    /// Hands a push to the central log, noting what happened.
    fn deliver(
        &mut self,
        request: &PushRequest,
    ) -> Result<tandem_store::PushOutcome, tandem_protocol::sync::SyncError> {
        let answer = self.central.push(request);
        SEEN.with(|seen| {
            let mut seen = seen.borrow_mut();
            match &answer {
                Ok(o) if o.appended.len() < o.response.accepted.len() => seen.acked_again += 1,
                Err(e) if e.code == tandem_protocol::sync::ErrorCode::PullRequired => {
                    seen.pull_required += 1
                }
                Err(e) if e.code == tandem_protocol::sync::ErrorCode::ClockDrift => {
                    seen.clock_drift += 1
                }
                _ => {}
            }
        });
        answer
    }

    /// Delivers one delayed request, if any (out of order with everything since).
    fn deliver_late(&mut self) {
        if !self.late.is_empty() {
            let i = self.rng.below(self.late.len());
            let request = self.late.swap_remove(i);
            let answer = self.deliver(&request);
            SEEN.with(|seen| {
                let mut seen = seen.borrow_mut();
                match &answer {
                    Ok(o) if o.appended.is_empty() && !o.response.accepted.is_empty() => {
                        seen.late_after_accept += 1
                    }
                    Err(e) if e.code == tandem_protocol::sync::ErrorCode::IdReused => {
                        seen.late_id_reused += 1
                    }
                    _ => {}
                }
            });
        }
    }
}

struct SimTransport {
    net: Rc<RefCell<Net>>,
    online: bool,
}

impl Transport for SimTransport {
    async fn push(&mut self, request: &PushRequest) -> Result<PushResponse, TransportError> {
        let mut net = self.net.borrow_mut();
        if !self.online {
            return Err(TransportError::Unreachable("offline".into()));
        }
        if net.faults {
            // Another device's delayed push lands first (the head may move under us).
            if net.rng.chance(30) {
                net.deliver_late();
            }
            // Delayed: the device hears nothing now; the server gets it later.
            if net.rng.chance(10) {
                net.late.push(request.clone());
                return Err(TransportError::Unreachable("request delayed".into()));
            }
            // Duplicated: delivered now and again later.
            if net.rng.chance(15) {
                net.late.push(request.clone());
            }
        }
        let answer = net.deliver(request);
        if net.faults && net.rng.chance(10) {
            SEEN.with(|seen| seen.borrow_mut().lost_answers += 1);
            return Err(TransportError::Unreachable("answer lost".into()));
        }
        answer.map(|o| o.response).map_err(TransportError::Refused)
    }

    async fn pull(&mut self, request: &PullRequest) -> Result<PullResponse, TransportError> {
        let mut net = self.net.borrow_mut();
        if !self.online || (net.faults && net.rng.chance(5)) {
            return Err(TransportError::Unreachable("request lost".into()));
        }
        let mut request = request.clone();
        if net.faults {
            request.limit = Some(1 + net.rng.below(4) as u64);
        }
        net.central.pull(&request).map_err(TransportError::Refused)
    }
}

struct Device {
    client: SyncClient<SimTransport>,
    /// The device clock's error (ms); it can jump mid-session.
    skew_ms: Arc<std::sync::atomic::AtomicI64>,
}

fn memory_log(device: DeviceId, clock: tandem_store::PhysicalClock) -> EventLog {
    EventLog::with_connection(Connection::open_in_memory().unwrap(), device, clock).unwrap()
}

fn run_schedule(seed: u64) {
    let mut rng = Rng::new(seed);
    let time = Arc::new(AtomicU64::new(1_800_000_000_000));
    let server_clock = {
        let t = Arc::clone(&time);
        Arc::new(move || t.load(Ordering::SeqCst)) as tandem_store::PhysicalClock
    };
    let server_log = memory_log(DeviceId::from_uuid(rng.uuid()), server_clock);
    let central = Central::assemble(server_log, SyncLimits::default());
    let net = Rc::new(RefCell::new(Net {
        central,
        rng: Rng::new(seed ^ 0xfeed),
        faults: true,
        late: vec![],
    }));
    let ws = WorkspaceId::DEFAULT;
    let mut devices: Vec<Device> = (0..2 + rng.below(3))
        .map(|_| {
            // Some clocks run minutes ahead: beyond the 60 s drift limit, so CLOCK_DRIFT happens.
            let skew_ms = if rng.chance(30) {
                90_000 + rng.below(300_000) as i64
            } else {
                rng.below(4_000) as i64 - 2_000
            };
            let t = Arc::clone(&time);
            let skew_ms = Arc::new(std::sync::atomic::AtomicI64::new(skew_ms));
            let skew = Arc::clone(&skew_ms);
            let clock: tandem_store::PhysicalClock = Arc::new(move || {
                (t.load(Ordering::SeqCst) as i64 + skew.load(Ordering::SeqCst)) as u64
            });
            let id = DeviceId::from_uuid(rng.uuid());
            let log = memory_log(id, Arc::clone(&clock));
            let (views, _) =
                Views::with_connection(Connection::open_in_memory().unwrap(), &log, |_| {})
                    .unwrap();
            let mut ids = Rng::new(rng.next_u64());
            let replica = Replica::assemble(log, views, Box::new(move || ids.uuid())).unwrap();
            let transport = SimTransport {
                net: Rc::clone(&net),
                online: true,
            };
            Device {
                client: SyncClient::new(
                    std::rc::Rc::new(RefCell::new(replica)),
                    transport,
                    ws,
                    Settings {
                        push_batch: 1 + rng.below(5),
                        ..Settings::default()
                    },
                )
                .unwrap(),
                skew_ms,
            }
        })
        .collect();

    let now = |time: &AtomicU64| time.load(Ordering::SeqCst);
    for _ in 0..40 {
        time.fetch_add(rng.below(3_000) as u64, Ordering::SeqCst);
        let d = rng.below(devices.len());
        match rng.below(11) {
            0..=4 => command(&mut devices[d].client, &mut rng, ws),
            // The device clock jumps: minutes ahead, a little ahead (within the drift limit)
            // or back to right.
            10 => devices[d].skew_ms.store(
                match rng.below(3) {
                    0 => 120_000 + rng.below(300_000) as i64,
                    1 => rng.below(50_000) as i64,
                    _ => 0,
                },
                Ordering::SeqCst,
            ),
            5 => {
                devices[d].client.transport_mut().online = !devices[d].client.transport_mut().online
            }
            6 => net.borrow_mut().deliver_late(),
            _ => {
                let c = &mut devices[d].client;
                c.notify(Input::Tick, now(&time), rng.next_u64());
                let mut r = Rng::new(rng.next_u64());
                block_on(c.run(|| now(&time), || r.next_u64()));
            }
        }
    }
    // Heal: no more faults, everyone online, late deliveries land, sync until quiet.
    {
        let mut n = net.borrow_mut();
        n.faults = false;
        while !n.late.is_empty() {
            n.deliver_late();
        }
    }
    for round in 0..4 {
        for dev in &mut devices {
            let c = &mut dev.client;
            c.transport_mut().online = true;
            for _ in 0..50 {
                time.fetch_add(31_000, Ordering::SeqCst);
                c.notify(Input::Tick, now(&time), 0);
                let mut r = Rng::new(seed + round);
                match block_on(c.run(|| now(&time), || r.next_u64())) {
                    Action::Idle => break,
                    Action::Wait { .. } => continue,
                    other => panic!("seed {seed}: run returned {other:?}"),
                }
            }
        }
    }
    let n = net.borrow();
    let server_log: Vec<(i64, String)> = log_of(n.central.log().connection());
    // The server's views, projected from its log as the server's projector does.
    let (mut views, _) = Views::with_connection(
        Connection::open_in_memory().unwrap(),
        n.central.log(),
        |_| {},
    )
    .unwrap();
    views.catch_up(n.central.log(), 7).unwrap();
    let server_views = views.dump().unwrap();
    if std::env::var_os("SIM_DEBUG").is_some() {
        println!(
            "seed {seed}: {} events in the server log, {} devices",
            server_log.len(),
            devices.len()
        );
    }
    no_typed_value_is_lost(seed, n.central.log().connection(), &devices);
    SAW.with(|s| s.borrow_mut().clear());
    for (i, dev) in devices.iter().enumerate() {
        let r = dev.client.replica();
        assert_eq!(
            r.pending_len().unwrap(),
            0,
            "seed {seed}: device {i} (skew {} ms) still has unsent events; last error {:?}",
            dev.skew_ms.load(Ordering::SeqCst),
            dev.client.last_error
        );
        assert_eq!(
            log_of(r.log().connection()),
            server_log,
            "seed {seed}: device {i} log"
        );
        assert_eq!(
            r.views().dump().unwrap(),
            server_views,
            "seed {seed}: device {i} views"
        );
    }
}

/// The oracle of issue 8: no typed value is lost. Every event recorded is in the server's log
/// or set aside on its device; no two events share a stamp; and an edit that some edit
/// supersedes (names in `bases`) was seen by the author of one of those edits — so every value
/// ever recorded is the field's value, a live conflict, or replaced by someone who saw it.
fn no_typed_value_is_lost(seed: u64, server: &Connection, devices: &[Device]) {
    let events: Vec<(String, String, String)> = server
        .prepare("SELECT event_id, hlc_timestamp, event_data FROM events")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut stamps = std::collections::HashSet::new();
    for (id, stamp, _) in &events {
        assert!(
            stamps.insert(stamp.clone()),
            "seed {seed}: stamp {stamp} issued twice ({id})"
        );
    }
    let stored: std::collections::HashSet<&String> = events.iter().map(|(id, _, _)| id).collect();
    let mut aside = std::collections::HashSet::new();
    for d in devices {
        for (e, _, _) in d.client.replica().log().set_aside_events().unwrap() {
            aside.insert(e.event_id.to_string());
        }
    }
    SAW.with(|saw| {
        let saw = saw.borrow();
        for id in saw.keys() {
            assert!(
                stored.contains(id) || aside.contains(id),
                "seed {seed}: event {id} was recorded but is neither stored nor set aside"
            );
        }
        for (id, stamp, _) in &events {
            let replacing: Vec<&String> = events
                .iter()
                .filter(|(other, _, data)| other != id && data.contains(stamp.as_str()))
                .map(|(other, _, _)| other)
                .collect();
            let named_by_itself = events
                .iter()
                .any(|(other, _, data)| other == id && data.contains(stamp.as_str()));
            assert!(
                !named_by_itself,
                "seed {seed}: event {id} supersedes itself"
            );
            if replacing.is_empty() {
                continue;
            }
            assert!(
                replacing
                    .iter()
                    .any(|f| saw.get(*f).is_some_and(|seen| seen.contains(id))),
                "seed {seed}: event {id} is superseded only by edits whose authors never saw it"
            );
        }
    });
}

fn log_of(conn: &Connection) -> Vec<(i64, String)> {
    let mut stmt = conn
        .prepare("SELECT seq, event_id FROM events ORDER BY seq")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// A random command through the device's real command path (some refused: that's fine).
fn command(client: &mut SyncClient<SimTransport>, rng: &mut Rng, ws: WorkspaceId) {
    let shared = client.shared();
    let mut r = shared.borrow_mut();
    let lists = r.lists(ws).unwrap();
    let todos: Vec<String> = {
        let mut stmt = r
            .views()
            .connection()
            .prepare("SELECT todo_id FROM todos ORDER BY todo_id")
            .unwrap();
        stmt.query_map([], |row| row.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let recorded = if lists.is_empty() || rng.chance(5) {
        r.execute_list(
            ws,
            AggregateId::from_uuid(rng.uuid()),
            ListCommand::Create {
                name: format!("list {}", rng.below(9)),
            },
        )
    } else if todos.is_empty() || rng.chance(25) {
        let list_id = lists[rng.below(lists.len())].id;
        let position = position::between(None, None).unwrap();
        r.execute_todo(
            ws,
            AggregateId::from_uuid(rng.uuid()),
            TodoCommand::Create {
                list_id,
                title: format!("todo {}", rng.below(99)),
                position,
                due_date: None,
            },
        )
    } else {
        let id: AggregateId = todos[rng.below(todos.len())].parse().unwrap();
        let edit = match rng.below(4) {
            0 => TodoEdit::Title(format!("title {}", rng.below(999))),
            1 => TodoEdit::Completed(rng.chance(50)),
            2 => TodoEdit::Notes(format!("notes {}", rng.below(999))),
            _ => TodoEdit::Position(["3", "V", "k"][rng.below(3)].to_string()),
        };
        let cmd = if rng.chance(5) {
            TodoCommand::Delete
        } else {
            TodoCommand::Edit {
                edit,
                resolving: rng.chance(30),
                shown: None,
            }
        };
        r.execute_todo(ws, id, cmd)
    };
    if let Ok(events) = recorded {
        for e in events {
            let bases: Vec<String> = serde_json::from_str::<serde_json::Value>(&e.event_data)
                .ok()
                .and_then(|v| v.get("bases").cloned())
                .and_then(|b| serde_json::from_value(b).ok())
                .unwrap_or_default();
            let mut saw = Vec::new();
            for stamp in bases {
                let mut stmt = r
                    .log()
                    .connection()
                    .prepare(
                        "SELECT event_id FROM events WHERE hlc_timestamp = ?1 \
                         UNION SELECT event_id FROM outbox WHERE hlc_timestamp = ?1",
                    )
                    .unwrap();
                saw.extend(
                    stmt.query_map([&stamp], |row| row.get::<_, String>(0))
                        .unwrap()
                        .map(Result::unwrap),
                );
            }
            SAW.with(|s| s.borrow_mut().insert(e.event_id.to_string(), saw));
        }
    }
    drop(r);
    client.notify(Input::LocalChange, 0, 0);
}

/// The first of make test's fixed seeds.
const FIXED_FIRST_SEED: u64 = 20_261_125;

/// Seeds that random runs found to catch a defect, run in make test too: 1795607142 issues a
/// stamp twice when a clock correction ignores the stamps kept in the outbox (DESIGN.md rule
/// 8's "issued and kept" floor, schedule (b) of issue 8).
const REGRESSION_SEEDS: [u64; 1] = [1_795_607_142];

#[test]
fn replicas_converge_under_faults() {
    let schedules: u64 = std::env::var("SIM_SCHEDULES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000);
    // Fixed seeds by default (make test: the same schedules every run, chosen because they
    // exercise every fault below); SIM_RANDOM=1 (make test-sim) starts from the clock.
    let random = std::env::var_os("SIM_RANDOM").is_some();
    let first: u64 = std::env::var("SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            if random {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0)
            } else {
                FIXED_FIRST_SEED
            }
        });
    println!("simulation: {schedules} schedules from seed {first} (replay one with SIM_SEED=<seed> SIM_SCHEDULES=1)");
    for seed in first..first + schedules {
        run_schedule(seed);
    }
    if !random && std::env::var_os("SIM_SEED").is_none() {
        for seed in REGRESSION_SEEDS {
            run_schedule(seed);
        }
    }
    let seen = SEEN.with(|seen| std::mem::take(&mut *seen.borrow_mut()));
    println!("simulation exercised: {seen:?}");
    if schedules >= 100 {
        assert!(
            seen.pull_required > 0
                && seen.clock_drift > 0
                && seen.acked_again > 0
                && seen.late_after_accept > 0
                // Schedule (a) of issue 8: a delayed copy lands after its events were
                // re-stamped and stored.
                && seen.late_id_reused > 0
                && seen.lost_answers > 0,
            "{seen:?}"
        );
    }
}
