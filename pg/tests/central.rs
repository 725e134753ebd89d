//! The central log on a real PostgreSQL: the same answers as the SQLite log for the same
//! pushes, dense seqs under concurrent pushers on many connections, idempotency across racing
//! connections, an immutable log, migrations applied once.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use tandem_events::ids::{DeviceId, WorkspaceId};
use tandem_events::testkit::{workload, Rng};
use tandem_pg::central::lock_key;
use tandem_pg::{migrate, Database, PgCentral};
use tandem_protocol::sync::{ErrorCode, PullRequest, PushRequest, WireEvent};
use tandem_store::rusqlite::Connection;
use tandem_store::wire::to_wire;
use tandem_store::{Central, EventLog, Pusher, SyncLimits};

const NOW: i64 = 1_750_000_100_000;
const USER: &str = "0190f5a2-7c3e-7b4a-9d2e-1234567890ab";

async fn central(db: Database) -> PgCentral {
    central_with(db, SyncLimits::default()).await
}

async fn central_with(db: Database, limits: SyncLimits) -> PgCentral {
    PgCentral::open(db, limits, "log-1", Arc::new(|| NOW as u64))
        .await
        .unwrap()
}

fn sqlite_central(limits: SyncLimits) -> Central {
    let log = EventLog::with_connection(
        Connection::open_in_memory().unwrap(),
        DeviceId::from_uuid(uuid::Uuid::from_u128(1)),
        Arc::new(|| NOW as u64),
    )
    .unwrap();
    let mut c = Central::assemble(log, limits);
    c.ensure_log_id("log-1").unwrap();
    c
}

/// Holds `workspaces`' push locks on a connection of its own until the returned client is
/// told to let go (`pg_advisory_unlock_all`), so that pushes started meanwhile all wait and
/// then race.
async fn hold_locks(db: &Database, workspaces: &[WorkspaceId]) -> deadpool_postgres::Object {
    let client = db.client().await.unwrap();
    for w in workspaces {
        client
            .execute("SELECT pg_advisory_lock($1)", &[&lock_key(*w)])
            .await
            .unwrap();
    }
    client
}

/// Waits until `n` sessions wait for an advisory lock (deadline 10 s).
async fn until_waiting(db: &Database, n: i64) {
    let client = db.client().await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let waiting: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if waiting >= n {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{waiting} of {n} pushes wait"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

fn by_user() -> Pusher<'static> {
    Pusher {
        user: Some(USER),
        quota: None,
    }
}

/// Mostly valid pushes to two workspaces, then mutated (cursor, version, stamp, ids, the
/// other workspace's aggregates and events, order, quota) as in store/tests/push_fuzz.rs:
/// every answer — accepted seqs, heads, error codes, messages — is the SQLite log's, and so
/// are pulls of every page size under a small byte budget, over titles that are not ASCII.
#[tokio::test]
async fn every_push_and_pull_is_answered_as_the_sqlite_log_answers_it() {
    let seed: u64 = std::env::var("PG_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(78);
    println!("pg differential push fuzz: seed {seed} (PG_FUZZ_SEED replays)");
    let mut rng = Rng::new(seed);
    let limits = SyncLimits {
        pull_bytes: 2_048,
        ..SyncLimits::default()
    };
    let pg = central_with(common::fresh().await, limits).await;
    let mut sqlite = sqlite_central(limits);
    // Titles with characters of two, three and four bytes: sizes are bytes on both.
    let nonascii = |seed| {
        let mut events = workload(seed, 3, 40, 120);
        for e in &mut events {
            e.event_data = e.event_data.replace("\"title\":\"", "\"title\":\"é✓🙂 ");
        }
        events
    };
    let logs = [nonascii(seed), nonascii(seed + 1)];
    let refuse_over_two = |count: usize, _bytes: usize| {
        if count > 2 {
            Err(tandem_protocol::sync::SyncError::new(
                ErrorCode::QuotaExceeded,
                "over the quota",
            ))
        } else {
            Ok(())
        }
    };
    let mut outcomes: HashMap<String, u32> = HashMap::new();
    for round in 0..700 {
        let which = rng.below(2);
        let (events, other) = (&logs[which], &logs[1 - which]);
        let workspace = events[0].workspace_id;
        let head = sqlite.log().head(workspace).unwrap();
        assert_eq!(pg.head(workspace).await.unwrap(), head, "round {round}");
        let other_head = sqlite.log().head(other[0].workspace_id).unwrap() as usize;
        let at = head as usize;
        if at >= events.len() {
            continue;
        }
        let n = 1 + rng.below(4);
        let mut batch: Vec<WireEvent> = events[at..(at + n).min(events.len())]
            .iter()
            .map(to_wire)
            .collect();
        let mut cursor = head;
        let mut quota = false;
        match rng.below(14) {
            0 => cursor = cursor.saturating_sub(1 + rng.below(2) as u64),
            1 => cursor += 1,
            2 => batch[0].version += 1,
            3 => batch[0].version = batch[0].version.saturating_sub(1).max(1),
            4 => {
                batch[0].hlc_timestamp = format!(
                    "{:015}{}",
                    NOW as u64 + 3_600_000,
                    &batch[0].hlc_timestamp[15..]
                );
            }
            5 if at > 0 => batch[0].event_id = to_wire(&events[rng.below(at)]).event_id,
            6 if at > 0 => {
                batch = events[at.saturating_sub(2)..at]
                    .iter()
                    .map(to_wire)
                    .collect();
                cursor = rng.below(at) as u64;
            }
            7 => batch[0].workspace_id = uuid::Uuid::from_u128(9).to_string(),
            8 if batch.len() > 1 => batch.swap(0, 1),
            9 => batch[0].event_data = "{\"name\": 5}".into(),
            // The other workspace's aggregate, or one of its stored events' ids.
            10 if other_head > 0 => {
                batch[0].aggregate_id = other[rng.below(other_head)].aggregate_id.to_string()
            }
            11 if other_head > 0 => {
                batch[0].event_id = other[rng.below(other_head)].event_id.to_string()
            }
            12 => quota = true,
            _ => {}
        }
        let request = PushRequest {
            device_id: events[0].device_id.to_string(),
            workspace_id: workspace.to_string(),
            cursor,
            events: batch,
        };
        let pusher = Pusher {
            user: Some(USER),
            quota: quota.then_some(&refuse_over_two as _),
        };
        let expected = sqlite.push_as(&request, &pusher);
        let answer = pg.push_as(&request, &pusher).await;
        assert_eq!(answer, expected, "round {round}: {request:?}");
        let kind = match &answer {
            Ok(o) if o.appended.is_empty() => "acked".to_string(),
            Ok(_) => "appended".to_string(),
            Err(e) => e.code.as_str().to_string(),
        };
        *outcomes.entry(kind).or_default() += 1;
    }
    println!("outcomes: {outcomes:?}");
    for kind in [
        "appended",
        "acked",
        "PULL_REQUIRED",
        "CURSOR_AHEAD",
        "VERSION_CONFLICT",
        "CLOCK_DRIFT",
        "ID_REUSED",
        "INVALID_EVENT",
        "QUOTA_EXCEEDED",
    ] {
        assert!(
            outcomes.contains_key(kind),
            "never reached {kind}: {outcomes:?}"
        );
    }
    for events in &logs {
        let workspace = events[0].workspace_id;
        let device = events[0].device_id.to_string();
        assert!(pg.head(workspace).await.unwrap() > 20);
        let mut cut_by_bytes = false;
        for limit in [1, 7, 500] {
            let mut cursor = 0;
            loop {
                let request = PullRequest {
                    device_id: device.clone(),
                    workspace_id: workspace.to_string(),
                    cursor,
                    limit: Some(limit),
                };
                let expected = sqlite.pull(&request).unwrap();
                let answer = pg.pull(&request).await.unwrap();
                assert_eq!(answer, expected);
                cut_by_bytes |= answer.has_more && (answer.events.len() as u64) < limit;
                cursor = answer.events.last().map_or(cursor, |e| e.seq);
                if !answer.has_more {
                    break;
                }
            }
        }
        assert!(cut_by_bytes, "the byte budget ended a page");
        let ahead = PullRequest {
            device_id: device.clone(),
            workspace_id: workspace.to_string(),
            cursor: 10_000,
            limit: None,
        };
        assert_eq!(
            pg.pull(&ahead).await.unwrap_err(),
            sqlite.pull(&ahead).unwrap_err()
        );
    }
}

/// Eight connections push to one workspace at once (each retrying from the head a
/// PULL_REQUIRED names) while a reader pulls: every event is stored once, seqs are 1..N with
/// no gap, and the reader never sees a seq before the ones below it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_pushers_get_dense_seqs_and_a_reader_never_sees_a_gap() {
    let db = common::fresh().await;
    let pg = Arc::new(central(db).await);
    let events = workload(5, 8, 120, 0);
    let workspace = events[0].workspace_id;
    let device = events[0].device_id.to_string();
    // Lists first (todos name them), then the todos in eight interleaved shares.
    let (lists, todos): (Vec<_>, Vec<_>) =
        events.iter().partition(|e| e.event_type == "ListCreated");
    let request = {
        let device = device.clone();
        move |cursor: u64, batch: &[tandem_events::event::StoredEvent]| PushRequest {
            device_id: device.clone(),
            workspace_id: workspace.to_string(),
            cursor,
            events: batch.iter().map(to_wire).collect(),
        }
    };
    let lists: Vec<_> = lists.into_iter().cloned().collect();
    pg.push_as(&request(0, &lists), &by_user()).await.unwrap();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let pg = Arc::clone(&pg);
        let done = Arc::clone(&done);
        let device = device.clone();
        tokio::spawn(async move {
            let mut cursor = 0;
            let mut pulls = 0;
            loop {
                let finished = done.load(std::sync::atomic::Ordering::SeqCst);
                let answer = pg
                    .pull(&PullRequest {
                        device_id: device.clone(),
                        workspace_id: workspace.to_string(),
                        cursor,
                        limit: Some(50),
                    })
                    .await
                    .unwrap();
                for e in &answer.events {
                    assert_eq!(
                        e.seq,
                        cursor + 1,
                        "a reader saw seq {} after {cursor}",
                        e.seq
                    );
                    cursor = e.seq;
                }
                assert!(answer.head >= cursor);
                pulls += 1;
                if finished && !answer.has_more {
                    return (cursor, pulls);
                }
            }
        })
    };
    let mut pushers = Vec::new();
    for share in 0..8 {
        let mine: Vec<_> = todos
            .iter()
            .skip(share)
            .step_by(8)
            .map(|e| (*e).clone())
            .collect();
        let pg = Arc::clone(&pg);
        let request = request.clone();
        pushers.push(tokio::spawn(async move {
            let mut refused = 0;
            for chunk in mine.chunks(3) {
                let mut cursor = pg.head(workspace).await.unwrap();
                loop {
                    match pg.push_as(&request(cursor, chunk), &by_user()).await {
                        Ok(_) => break,
                        Err(e) if e.code == ErrorCode::PullRequired => {
                            refused += 1;
                            cursor = e.head.unwrap();
                        }
                        Err(e) => panic!("{e:?}"),
                    }
                }
            }
            refused
        }));
    }
    let mut refused = 0;
    for p in pushers {
        refused += p.await.unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let (seen, pulls) = reader.await.unwrap();
    let total = events.len() as u64;
    assert_eq!(pg.head(workspace).await.unwrap(), total);
    assert_eq!(seen, total, "the reader caught up");
    let stored = pg.events_after(workspace, 0, 10_000).await.unwrap();
    let seqs: Vec<u64> = stored.iter().map(|(s, _, _)| *s).collect();
    assert_eq!(seqs, (1..=total).collect::<Vec<_>>());
    let mut ids: Vec<_> = stored.iter().map(|(_, e, _)| e.event_id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), events.len(), "each event stored once");
    assert!(stored.iter().all(|(_, _, u)| u.as_deref() == Some(USER)));
    println!("{refused} pushes refused with PULL_REQUIRED and retried; {pulls} pulls");
    assert!(refused > 0, "the pushers never contended");
}

/// The same push sent on two connections at once (a retry racing the original, both waiting
/// for the workspace's lock): both are acknowledged with the same seqs, stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_push_racing_on_two_connections_is_stored_once_and_acknowledged_twice() {
    let db = common::fresh().await;
    let pg = Arc::new(central(db.clone()).await);
    let events = workload(9, 1, 12, 0);
    let workspace = events[0].workspace_id;
    for round in 0..4 {
        let head = pg.head(workspace).await.unwrap();
        let request = Arc::new(PushRequest {
            device_id: events[0].device_id.to_string(),
            workspace_id: workspace.to_string(),
            cursor: head,
            events: events
                .iter()
                .skip(head as usize)
                .take(3)
                .map(to_wire)
                .collect(),
        });
        let holder = hold_locks(&db, &[workspace]).await;
        let send = || {
            let pg = Arc::clone(&pg);
            let request = Arc::clone(&request);
            tokio::spawn(async move { pg.push_as(&request, &by_user()).await })
        };
        let (a, b) = (send(), send());
        until_waiting(&db, 2).await;
        holder
            .execute("SELECT pg_advisory_unlock_all()", &[])
            .await
            .unwrap();
        let (a, b) = (a.await.unwrap().unwrap(), b.await.unwrap().unwrap());
        assert_eq!(
            a.response.accepted, b.response.accepted,
            "round {round}: the same seqs"
        );
        assert_eq!(a.response.accepted.len(), 3);
        assert_eq!(
            a.appended.len() + b.appended.len(),
            3,
            "round {round}: appended once"
        );
    }
    assert_eq!(pg.head(workspace).await.unwrap(), 12);
}

/// Two workspaces make the same aggregate (or store the same event) at the same moment: one
/// wins, and the other is answered as if it came second — INVALID_EVENT naming the
/// winner's workspace (DESIGN.md rule 21) — never two homes for one aggregate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workspaces_making_the_same_aggregate_or_event_at_once_keep_one_home() {
    let db = common::fresh().await;
    let pg = Arc::new(central(db.clone()).await);
    for (seed, shared, refusal) in [
        (21, "aggregate", "belongs to workspace"),
        (31, "event", "is stored in workspace"),
    ] {
        // Each workload begins with a ListCreated of its own workspace and device.
        let mine = workload(seed, 1, 0, 0)[0].clone();
        let mut theirs = workload(seed + 1, 1, 0, 0)[0].clone();
        match shared {
            "aggregate" => theirs.aggregate_id = mine.aggregate_id,
            _ => theirs.event_id = mine.event_id,
        }
        let push = |e: tandem_events::event::StoredEvent| {
            let pg = Arc::clone(&pg);
            tokio::spawn(async move {
                let request = PushRequest {
                    device_id: e.device_id.to_string(),
                    workspace_id: e.workspace_id.to_string(),
                    cursor: 0,
                    events: vec![to_wire(&e)],
                };
                pg.push_as(&request, &by_user()).await
            })
        };
        let holder = hold_locks(&db, &[mine.workspace_id, theirs.workspace_id]).await;
        let (a, b) = (push(mine.clone()), push(theirs.clone()));
        until_waiting(&db, 2).await;
        holder
            .execute("SELECT pg_advisory_unlock_all()", &[])
            .await
            .unwrap();
        let answers = [a.await.unwrap(), b.await.unwrap()];
        assert_eq!(
            answers.iter().filter(|a| a.is_ok()).count(),
            1,
            "{shared}: {answers:?}"
        );
        let lost = answers.iter().find_map(|a| a.as_ref().err()).unwrap();
        assert_eq!(lost.code, ErrorCode::InvalidEvent, "{shared}: {lost:?}");
        assert!(lost.message.contains(refusal), "{shared}: {lost:?}");
    }
    let client = db.client().await.unwrap();
    let split: i64 = client
        .query_one(
            "SELECT count(*) FROM (SELECT aggregate_id FROM events GROUP BY aggregate_id \
             HAVING count(DISTINCT workspace_id) > 1) AS s",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(split, 0, "an aggregate has two homes");
}

/// Nobody rewrites history (DESIGN.md rule 4): updates, deletes and truncation of the log
/// are refused by the database itself.
#[tokio::test]
async fn the_log_refuses_updates_deletes_and_truncation() {
    let db = common::fresh().await;
    let pg = central(db.clone()).await;
    let events = workload(3, 1, 2, 0);
    pg.push_as(
        &PushRequest {
            device_id: events[0].device_id.to_string(),
            workspace_id: events[0].workspace_id.to_string(),
            cursor: 0,
            events: events.iter().map(to_wire).collect(),
        },
        &by_user(),
    )
    .await
    .unwrap();
    let client = db.client().await.unwrap();
    for statement in [
        "UPDATE events SET event_data = '{}'",
        "DELETE FROM events",
        "TRUNCATE events",
    ] {
        let e = client.batch_execute(statement).await.unwrap_err();
        assert!(
            e.as_db_error()
                .is_some_and(|d| d.message().contains("the event log is immutable")),
            "{statement}: {e:?}"
        );
    }
    assert_eq!(pg.head(events[0].workspace_id).await.unwrap(), 3);
}

/// Processes starting together on a new database apply each version once; a database of a
/// newer build is refused, untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migrations_are_applied_once_by_processes_starting_together() {
    let url = common::fresh_url().await;
    let mut starts = Vec::new();
    for _ in 0..4 {
        let db = Database::connect(&url, 1).unwrap();
        starts.push(tokio::spawn(async move { db.migrate().await.unwrap() }));
    }
    let mut applied = Vec::new();
    for s in starts {
        applied.extend(s.await.unwrap());
    }
    assert_eq!(applied, (1..=migrate::latest()).collect::<Vec<_>>());
    let db = Database::connect(&url, 1).unwrap();
    assert_eq!(db.migrate().await.unwrap(), Vec::<i32>::new());
    let client = db.client().await.unwrap();
    assert_eq!(migrate::current(&client).await.unwrap(), migrate::latest());
    client
        .execute(
            "INSERT INTO tandem_migrations (version, name) VALUES (9999, 'from the future')",
            &[],
        )
        .await
        .unwrap();
    drop(client);
    let err = db.migrate().await.unwrap_err();
    assert!(
        matches!(err, tandem_pg::PgError::Newer { found: 9999, .. }),
        "{err}"
    );
}

/// The next thing a listener heard (deadline 10 s).
async fn next<T>(heard: &mut tokio::sync::mpsc::UnboundedReceiver<T>) -> Option<T> {
    tokio::time::timeout(std::time::Duration::from_secs(10), heard.recv())
        .await
        .expect("heard in time")
}

/// A push through one process reaches the heads listener of another (NOTIFY on commit); a
/// listener whose connection is cut connects again, says so, and hears later pushes.
/// What a heads listener heard: `None` when it (re)connected, else a notice's workspace, head
/// and count — only from a notice that names its process, as every notice does.
type Heard = Option<(WorkspaceId, u64, u64)>;

struct Forward(tokio::sync::mpsc::UnboundedSender<Heard>);

impl tandem_pg::listen::HeadsListener for Forward {
    fn head(&self, notice: tandem_pg::listen::Notice) {
        let origin = notice.origin.filter(|o| o.len() == 32);
        let _ = self
            .0
            .send(origin.map(|_| (notice.workspace, notice.head, notice.appended)));
    }
    fn connected(&self) {
        let _ = self.0.send(None);
    }
}

/// A heads listener on `db`, listening when this returns: what it hears, and its stop.
async fn listening(
    db: &Database,
    heartbeat: tandem_pg::listen::Heartbeat,
) -> (
    tokio::sync::mpsc::UnboundedReceiver<Heard>,
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, mut heard) = tokio::sync::mpsc::unbounded_channel();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(tandem_pg::listen::listen_heads(
        db.clone(),
        Forward(tx),
        heartbeat,
        stopped,
    ));
    assert_eq!(next(&mut heard).await, Some(None), "listening");
    (heard, stop, task)
}

/// Stops a listener started by [`listening`]; it must stop promptly.
async fn stop_listening(stop: tokio::sync::watch::Sender<bool>, task: tokio::task::JoinHandle<()>) {
    stop.send(true).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(5), task)
        .await
        .expect("stops when told")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_through_one_process_is_heard_by_another_even_after_its_connection_is_cut() {
    let url = common::fresh_url().await;
    let a = Database::connect(&url, 2).unwrap();
    a.migrate().await.unwrap();
    let b = Database::connect(&url, 2).unwrap();
    let pusher = central(a.clone()).await;
    let (mut heard, stop, listener) = listening(&b, tandem_pg::listen::Heartbeat::default()).await;
    let events = workload(41, 1, 5, 0);
    let workspace = events[0].workspace_id;
    let push = |from: usize, to: usize, cursor: u64| push_of(&events, from, to, cursor);
    pusher.push_as(&push(0, 3, 0), &by_user()).await.unwrap();
    assert_eq!(next(&mut heard).await, Some(Some((workspace, 3, 3))));
    // An acknowledged repeat appends nothing and announces nothing; a refusal neither.
    pusher.push_as(&push(0, 3, 0), &by_user()).await.unwrap();
    pusher
        .push_as(&push(4, 5, 0), &by_user())
        .await
        .unwrap_err();
    // The listener's connection is cut (a restart of the database, a proxy's timeout).
    let admin = a.client().await.unwrap();
    let cut: i64 = admin
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name = $1",
            &[&tandem_pg::listen::APPLICATION_NAME],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(cut, 1);
    assert_eq!(next(&mut heard).await, Some(None), "listening again");
    pusher.push_as(&push(3, 5, 3), &by_user()).await.unwrap();
    assert_eq!(next(&mut heard).await, Some(Some((workspace, 5, 2))));
    assert_eq!(pusher.origin().len(), 32);
    assert_ne!(
        pusher.origin(),
        central(b.clone()).await.origin(),
        "one per process"
    );
    stop_listening(stop, listener).await;
}

/// A listener whose connection goes silent without being closed (a proxy that lost the flow)
/// notices by its heartbeat, connects again and says so (its owner heals), and hears later
/// pushes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_whose_connection_went_silent_connects_again() {
    let relay = common::Relay::start().await;
    let name = common::fresh_url().await;
    let (_, database) = name.rsplit_once('/').unwrap();
    let (through_relay, _) = relay.url.rsplit_once('/').unwrap();
    let a = Database::connect(&name, 2).unwrap();
    a.migrate().await.unwrap();
    let b = Database::connect(&format!("{through_relay}/{database}"), 2).unwrap();
    let pusher = central(a.clone()).await;
    let heartbeat = tandem_pg::listen::Heartbeat {
        every: std::time::Duration::from_millis(200),
        // Long beside a query's time on a busy machine: no other reconnection than the
        // frozen connection's, and the push after the freeze is made long before.
        wait: std::time::Duration::from_secs(2),
    };
    let (mut heard, stop, listener) = listening(&b, heartbeat).await;
    let events = workload(42, 1, 5, 0);
    let workspace = events[0].workspace_id;
    let push = |from: usize, to: usize, cursor: u64| push_of(&events, from, to, cursor);
    pusher.push_as(&push(0, 2, 0), &by_user()).await.unwrap();
    assert_eq!(next(&mut heard).await, Some(Some((workspace, 2, 2))));
    relay.freeze();
    // This notice is lost in the frozen connection; the owner hears that it must heal.
    pusher.push_as(&push(2, 4, 2), &by_user()).await.unwrap();
    assert_eq!(next(&mut heard).await, Some(None), "listening again");
    pusher.push_as(&push(4, 6, 4), &by_user()).await.unwrap();
    assert_eq!(next(&mut heard).await, Some(Some((workspace, 6, 2))));
    stop_listening(stop, listener).await;
}

/// `verify` on PostgreSQL finds what the SQLite log's finds: a log written by pushes holds
/// every invariant; each kind of damage written around the server is named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_holds_for_pushed_events_and_names_each_kind_of_damage() {
    let events = workload(51, 2, 6, 6);
    let copy_last = |seq: &str, version: &str, workspace: &str| {
        format!(
            "INSERT INTO events (event_id, workspace_id, seq, aggregate_id, version, event_type, \
             schema_version, event_data, hlc_timestamp, device_id, created_at, user_id) \
             SELECT gen_random_uuid()::text, {workspace}, {seq}, aggregate_id, {version}, \
             event_type, schema_version, event_data, hlc_timestamp, device_id, created_at, \
             user_id FROM events ORDER BY seq DESC LIMIT 1"
        )
    };
    let split = format!(
        "{}; INSERT INTO heads SELECT workspace_id, 1 FROM events WHERE seq = 1 \
         AND workspace_id <> (SELECT min(workspace_id) FROM heads) \
         ON CONFLICT DO NOTHING",
        copy_last("1", "version + 1", "gen_random_uuid()::text")
    );
    let damage = [
        (None, ""),
        (
            Some(copy_last("seq + 2", "version + 1", "workspace_id")),
            "seqs must be dense",
        ),
        (
            Some(format!(
                "{}; UPDATE heads SET head = head + 1",
                copy_last("seq + 1", "version + 2", "workspace_id")
            )),
            "versions must be dense",
        ),
        (
            Some("UPDATE heads SET head = head + 1".to_string()),
            "heads table disagrees",
        ),
        (Some(split), "more than one workspace"),
        (
            Some("ALTER TABLE events DISABLE TRIGGER events_no_truncate".to_string()),
            "events_no_truncate is missing or disabled",
        ),
    ];
    for (harm, named) in damage {
        let db = common::fresh().await;
        let pg = central(db.clone()).await;
        pg.push_as(
            &PushRequest {
                device_id: events[0].device_id.to_string(),
                workspace_id: events[0].workspace_id.to_string(),
                cursor: 0,
                events: events.iter().map(to_wire).collect(),
            },
            &by_user(),
        )
        .await
        .unwrap();
        match harm {
            None => assert_eq!(pg.verify().await.unwrap(), events.len() as u64),
            Some(harm) => {
                db.client()
                    .await
                    .unwrap()
                    .batch_execute(&harm)
                    .await
                    .unwrap();
                let violation = pg.verify().await.unwrap_err();
                assert!(violation.0.contains(named), "{harm}: {violation}");
            }
        }
    }
}

/// The push of `events[from..to]` (one device's, into one workspace) made at `cursor`.
fn push_of(
    events: &[tandem_events::event::StoredEvent],
    from: usize,
    to: usize,
    cursor: u64,
) -> PushRequest {
    PushRequest {
        device_id: events[0].device_id.to_string(),
        workspace_id: events[0].workspace_id.to_string(),
        cursor,
        events: events[from..to].iter().map(to_wire).collect(),
    }
}

/// Pushes `events` (one device's, into one empty workspace) in one push.
async fn push_whole(central: &PgCentral, events: &[tandem_events::event::StoredEvent]) {
    central
        .push_as(&push_of(events, 0, events.len(), 0), &by_user())
        .await
        .unwrap();
}

/// Every event of `central`'s log with its seq and pusher, as `server export` writes them.
async fn export(central: &PgCentral) -> Vec<tandem_store::log::LoggedBy> {
    let mut exported = Vec::new();
    for (workspace, _) in central.heads().await.unwrap() {
        exported.extend(central.events_after(workspace, 0, 10_000).await.unwrap());
    }
    exported
}

/// Export and import between PostgreSQL databases: an import into an empty one reproduces
/// every seq and the pushing accounts; again, it stores nothing; an import that would shift
/// a seq or leave out stored events is refused with nothing stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_reproduces_every_seq_and_refuses_what_would_shift_one() {
    let source = central(common::fresh().await).await;
    let (one, two) = (workload(61, 2, 5, 5), workload(62, 1, 4, 4));
    for events in [&one, &two] {
        push_whole(&source, events).await;
    }
    let exported = export(&source).await;
    assert_eq!(exported.len(), one.len() + two.len());
    let target = central(common::fresh().await).await;
    assert_eq!(target.import(&exported).await.unwrap(), (exported.len(), 0));
    for (workspace, head) in source.heads().await.unwrap() {
        assert_eq!(
            target.events_after(workspace, 0, 10_000).await.unwrap(),
            source.events_after(workspace, 0, 10_000).await.unwrap()
        );
        assert_eq!(target.head(workspace).await.unwrap(), head);
    }
    assert_eq!(target.import(&exported).await.unwrap(), (0, exported.len()));
    target.verify().await.unwrap();
    // Into a database that holds events the import lacks: refused.
    let partial: Vec<_> = exported.iter().skip(1).cloned().collect();
    let e = target.import(&partial).await.unwrap_err();
    assert!(e.to_string().contains("only adds"), "{e}");
    // A seq gap: refused, and nothing of the import stored.
    let fresh = central(common::fresh().await).await;
    let mut gap = exported.clone();
    let last = gap.iter_mut().max_by_key(|(seq, _, _)| *seq).unwrap();
    last.0 += 1;
    let e = fresh.import(&gap).await.unwrap_err();
    assert!(
        e.to_string().contains("only adds events after the log's"),
        "{e}"
    );
    assert!(fresh.heads().await.unwrap().is_empty(), "nothing stored");
}

/// `server import` runs beside serving processes: they hear each imported workspace's new
/// head with its count, as after a push, and an import that adds nothing is not heard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serving_processes_hear_an_import_as_they_hear_a_push() {
    let source = central(common::fresh().await).await;
    let (one, two) = (workload(63, 2, 3, 2), workload(64, 1, 4, 0));
    for events in [&one, &two] {
        push_whole(&source, events).await;
    }
    let exported = export(&source).await;
    let db = common::fresh().await;
    let (mut heard, stop, listener) = listening(&db, tandem_pg::listen::Heartbeat::default()).await;
    let target = central(db.clone()).await;
    assert_eq!(target.import(&exported).await.unwrap(), (exported.len(), 0));
    let mut notices = Vec::new();
    for _ in 0..2 {
        notices.push(next(&mut heard).await.expect("listening"));
    }
    notices.sort();
    let mut expected: Vec<Heard> = [&one, &two]
        .iter()
        .map(|events| {
            let n = events.len() as u64;
            Some((events[0].workspace_id, n, n))
        })
        .collect();
    expected.sort();
    assert_eq!(notices, expected);
    // Again: nothing added, nothing announced — the next notice heard is a later push's.
    assert_eq!(target.import(&exported).await.unwrap(), (0, exported.len()));
    let more = workload(65, 1, 0, 0);
    push_whole(&target, &more).await;
    assert_eq!(
        next(&mut heard).await,
        Some(Some((more[0].workspace_id, 1, 1)))
    );
    stop_listening(stop, listener).await;
}

/// A new account's first list, made by the server: once, even when two processes try at
/// once, stamped by each process's own node, and nothing when the workspace has events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_making_a_workspaces_first_list_make_one() {
    let url = common::fresh_url().await;
    let a = Database::connect(&url, 2).unwrap();
    a.migrate().await.unwrap();
    let (one, two) = (
        Arc::new(central(a).await),
        Arc::new(central(Database::connect(&url, 2).unwrap()).await),
    );
    let workspace = WorkspaceId::from_uuid(uuid::Uuid::new_v4());
    let make = |pg: Arc<PgCentral>| {
        tokio::spawn(async move {
            pg.ensure_first_list(
                workspace,
                "Inbox",
                tandem_events::ids::AggregateId::from_uuid(uuid::Uuid::new_v4()),
                tandem_events::ids::EventId::from_uuid(uuid::Uuid::new_v4()),
                Some(USER),
            )
            .await
        })
    };
    let (x, y) = (make(Arc::clone(&one)), make(Arc::clone(&two)));
    let made: Vec<_> = [x.await.unwrap().unwrap(), y.await.unwrap().unwrap()]
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(made.len(), 1, "one list");
    let events = one.events_after(workspace, 0, 10).await.unwrap();
    assert_eq!(events.len(), 1);
    let (_, list, user) = &events[0];
    assert_eq!(list.aggregate_id, made[0]);
    assert_eq!(list.event_type, "ListCreated");
    assert_eq!(user.as_deref(), Some(USER));
    assert_eq!(list.hlc_timestamp.node, list.device_id);
    // The workspace has events: nothing more.
    assert_eq!(make(two).await.unwrap().unwrap(), None);
    assert_eq!(one.head(workspace).await.unwrap(), 1);
}
