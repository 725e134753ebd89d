//! The server's views on a real PostgreSQL hold exactly the fold of the log (DESIGN.md rule
//! 20): after every projection pass, with small batches, with v1-shaped events to upcast, with
//! two projectors at once, and after a batch is applied again.

mod common;

use std::sync::Arc;

use tandem_events::event::StoredEvent;
use tandem_events::state::{AllRows, Model};
use tandem_events::testkit::{as_v1, renumber, simulate, Simulation};
use tandem_pg::{Database, PgCentral, PgViews};
use tandem_protocol::sync::PushRequest;
use tandem_store::wire::to_wire;
use tandem_store::{Pusher, SyncLimits};

/// Three devices editing the same items with gossip between them (so there are conflicts),
/// some todos created in their v1 shape; versions dense in creation order.
fn events(seed: u64) -> Vec<StoredEvent> {
    let mut events = simulate(Simulation {
        seed,
        devices: 3,
        steps: 300,
        gossip_percent: 30,
    });
    renumber(&mut events);
    let old = as_v1(&events);
    events
        .into_iter()
        .zip(old)
        .enumerate()
        .map(|(i, (new, old))| if i % 3 == 0 { old } else { new })
        .collect()
}

/// The views the fold of `events` makes: the reference.
fn reference(events: &[StoredEvent]) -> AllRows {
    let mut model = Model::default();
    for e in events {
        if let Ok(decoded) = e.decode() {
            model.apply(e, &decoded);
        }
    }
    model.rows()
}

async fn central(db: Database, events: &[StoredEvent]) -> PgCentral {
    // The server's clock at the events' time: none is refused for drift.
    let latest = events.iter().map(|e| e.hlc_timestamp.ms).max().unwrap_or(0);
    PgCentral::open(db, SyncLimits::default(), "log", Arc::new(move || latest))
        .await
        .unwrap()
}

/// Pushes `events` one by one (each from its own device), as their devices would.
async fn push(pg: &PgCentral, events: &[StoredEvent]) {
    for e in events {
        let head = pg.head(e.workspace_id).await.unwrap();
        pg.push_as(
            &PushRequest {
                device_id: e.device_id.to_string(),
                workspace_id: e.workspace_id.to_string(),
                cursor: head,
                events: vec![to_wire(e)],
            },
            &Pusher::default(),
        )
        .await
        .unwrap_or_else(|err| panic!("{err:?}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_every_pass_the_views_are_the_fold_of_the_log() {
    let db = common::fresh().await;
    // Two workspaces' events, interleaved.
    let (one, two) = (events(11), events(13));
    let events: Vec<StoredEvent> = one
        .iter()
        .zip(&two)
        .flat_map(|(a, b)| [a.clone(), b.clone()])
        .collect();
    let pg = central(db.clone(), &events).await;
    let views = PgViews::new(db.clone());
    let workspaces = [one[0].workspace_id, two[0].workspace_id];
    let conflicts = reference(&events).conflicts.len();
    assert!(conflicts > 0, "the simulation made conflicts to project");
    for (i, chunk) in events.chunks(70).enumerate() {
        push(&pg, chunk).await;
        let applied = views.project(7).await.unwrap().expect("the only projector");
        assert_eq!(applied, chunk.len() as u64, "chunk {i}");
        let so_far = &events[..(i * 70 + chunk.len())];
        assert_eq!(
            views.all_rows().await.unwrap(),
            reference(so_far),
            "chunk {i}"
        );
        for workspace in workspaces {
            assert_eq!(
                views.checkpoint(workspace).await.unwrap(),
                pg.head(workspace).await.unwrap()
            );
        }
    }
    assert_eq!(views.project(7).await.unwrap(), Some(0), "nothing left");
    // A batch applied again (a crash between commit and answer, another projector) changes
    // nothing.
    let client = db.client().await.unwrap();
    client
        .execute("UPDATE view_checkpoints SET seq = seq - 50", &[])
        .await
        .unwrap();
    assert_eq!(views.project(1000).await.unwrap(), Some(100));
    assert_eq!(views.all_rows().await.unwrap(), reference(&events));
    // Views made by another projection version, or skipping as unknown an event this build
    // decodes, are projected again from the start.
    for stale in [
        "UPDATE view_meta SET version = version - 1",
        "INSERT INTO view_skipped_events (event_id, aggregate_id, event_type, schema_version, \
         unknown, reason) SELECT event_id, aggregate_id, event_type, schema_version, true, \
         'unknown' FROM events LIMIT 1",
    ] {
        client.batch_execute(stale).await.unwrap();
        assert_eq!(
            views.project(1000).await.unwrap(),
            Some(events.len() as u64),
            "{stale}"
        );
        assert_eq!(views.all_rows().await.unwrap(), reference(&events));
        let skipped: i64 = client
            .query_one("SELECT count(*) FROM view_skipped_events", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(skipped, 0);
    }
}

/// Two processes' projectors run while pushes go on: one projects at a time, and the views
/// end as the fold of the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_projectors_at_once_leave_the_views_the_fold_of_the_log() {
    let url = common::fresh_url().await;
    let db = Database::connect(&url, 4).unwrap();
    db.migrate().await.unwrap();
    let events = events(12);
    let pg = central(db.clone(), &events).await;
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let projectors: Vec<_> = (0..2)
        .map(|_| {
            let views = PgViews::new(Database::connect(&url, 2).unwrap());
            let done = Arc::clone(&done);
            tokio::spawn(async move {
                let mut waited = 0;
                loop {
                    let finished = done.load(std::sync::atomic::Ordering::SeqCst);
                    match views.project(5).await.unwrap() {
                        Some(0) if finished => return waited,
                        Some(_) => {}
                        None => {
                            waited += 1;
                            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                        }
                    }
                }
            })
        })
        .collect();
    push(&pg, &events).await;
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    for p in projectors {
        p.await.unwrap();
    }
    let views = PgViews::new(db);
    assert_eq!(views.project(5).await.unwrap(), Some(0));
    assert_eq!(views.all_rows().await.unwrap(), reference(&events));
}

/// What a server-rendered page shows — the lists with their counts and a list's todos — is
/// the same read from the PostgreSQL views as from SQLite's, for every list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_snapshot_reads_the_same_as_from_sqlite() {
    let db = common::fresh().await;
    let events = events(14);
    let pg = central(db.clone(), &events).await;
    push(&pg, &events).await;
    let views = PgViews::new(db);
    views.project(100).await.unwrap();
    // The same events through SQLite's central log and its server views.
    let dir = tempfile::tempdir().unwrap();
    let latest = events.iter().map(|e| e.hlc_timestamp.ms).max().unwrap_or(0);
    let mut sqlite = tandem_store::Central::open(
        dir.path(),
        tandem_events::ids::DeviceId::from_uuid(uuid::Uuid::new_v4()),
        Arc::new(move || latest),
        SyncLimits::default(),
    )
    .unwrap();
    for e in &events {
        let head = sqlite.log().head(e.workspace_id).unwrap();
        sqlite
            .push(&PushRequest {
                device_id: e.device_id.to_string(),
                workspace_id: e.workspace_id.to_string(),
                cursor: head,
                events: vec![to_wire(e)],
            })
            .unwrap();
    }
    let mut server_views = tandem_store::ServerViews::open(dir.path(), |_| {}).unwrap();
    server_views.project().unwrap();
    let conn = server_views.views().connection();
    let workspace = events[0].workspace_id;
    let first = tandem_store::changes::snapshot(conn, &workspace.to_string(), None).unwrap();
    let (got, checkpoint) = views.snapshot(workspace, None).await.unwrap();
    assert_eq!(got, first);
    assert_eq!(checkpoint, pg.head(workspace).await.unwrap());
    assert!(first.lists.len() > 3 && first.todos.len() > 2, "{first:?}");
    let mut shown = 0;
    for list in first
        .lists
        .iter()
        .map(|l| l.id.clone())
        .chain(["no-such-list".into()])
    {
        let expected =
            tandem_store::changes::snapshot(conn, &workspace.to_string(), Some(list.clone()))
                .unwrap();
        let (got, _) = views.snapshot(workspace, Some(list.clone())).await.unwrap();
        assert_eq!(got, expected, "{list}");
        shown += got.todos.len();
        let home = tandem_store::changes::list_workspace(conn, &list).unwrap();
        assert_eq!(views.list_workspace(&list).await.unwrap(), home);
    }
    assert!(shown > 10);
}
