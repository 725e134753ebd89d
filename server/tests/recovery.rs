//! A server restored from a backup: devices notice the new log, stop mixing logs, recover into
//! fresh databases and re-send what the restored log lacks — nothing a device held is lost.

mod common;

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;

use common::{open_replica, start, start_on, sync_until_idle, wall_ms, HttpTransport};
use tandem_events::decide::{ListCommand, TodoCommand, TodoEdit};
use tandem_events::engine::{Input, Settings};
use tandem_events::ids::{AggregateId, WorkspaceId};
use tandem_store::driver::{SyncClient, SyncState};
use tandem_store::Replica;

const WS: WorkspaceId = WorkspaceId::DEFAULT;

fn client(replica: Replica, server: &common::Running) -> SyncClient<HttpTransport> {
    SyncClient::new(
        Rc::new(RefCell::new(replica)),
        HttpTransport::new(server),
        WS,
        Settings::default(),
    )
    .unwrap()
}

/// A fresh replica for device `n` in `dir` (ids from another range than the old replica's).
fn fresh_replica(dir: &std::path::Path, n: u128) -> Replica {
    common::open_replica_from(dir, n, (n << 64) + (1 << 40))
}

fn agg(n: u128) -> AggregateId {
    AggregateId::from_uuid(uuid::Uuid::from_u128(n))
}

fn held(client: &SyncClient<HttpTransport>) -> HashSet<String> {
    let r = client.replica();
    let mut ids = HashSet::new();
    r.log()
        .for_each(|e| {
            ids.insert(e.event_id.to_string());
            Ok(())
        })
        .unwrap();
    ids
}

fn edit(c: &SyncClient<HttpTransport>, todo: AggregateId, title: &str) {
    c.replica_mut()
        .execute_todo(
            WS,
            todo,
            TodoCommand::Edit {
                edit: TodoEdit::Title(title.into()),
                resolving: false,
                shown: None,
            },
        )
        .unwrap();
}

#[tokio::test]
async fn after_a_restore_devices_recover_and_nothing_they_held_is_lost() {
    let server = start().await;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = client(open_replica(dir_a.path(), 1), &server);
    let mut b = client(open_replica(dir_b.path(), 2), &server);
    let mut jitter = 5;
    sync_until_idle(&mut a, &mut jitter).await;
    let list = agg(0x10);
    a.replica_mut()
        .execute_list(
            WS,
            list,
            ListCommand::Create {
                name: "home".into(),
            },
        )
        .unwrap();
    for i in 0..3 {
        a.replica_mut()
            .execute_todo(
                WS,
                agg(0x20 + i),
                TodoCommand::Create {
                    list_id: list,
                    title: format!("todo {i}"),
                    position: "V".into(),
                    due_date: None,
                },
            )
            .unwrap();
    }
    a.notify(Input::LocalChange, wall_ms(), 0);
    sync_until_idle(&mut a, &mut jitter).await;
    sync_until_idle(&mut b, &mut jitter).await;
    // The backup, taken while serving.
    let backup = tempfile::tempdir().unwrap();
    let file = backup.path().join("events.backup");
    server::admin::backup(server.data_dir.path(), &file).unwrap();
    // More from both devices, accepted by the server (so only in the log after the backup)...
    edit(&a, agg(0x20), "a after the backup");
    edit(&b, agg(0x21), "b after the backup");
    for c in [&mut a, &mut b] {
        c.notify(Input::LocalChange, wall_ms(), 0);
        sync_until_idle(c, &mut jitter).await;
    }
    sync_until_idle(&mut a, &mut jitter).await;
    // ...and some A has not sent yet.
    edit(&a, agg(0x22), "a offline");
    // The server is restored from the backup into a new data dir.
    let (_, _old_dir) = server.stop().await;
    let restored = tempfile::tempdir().unwrap();
    server::admin::restore(restored.path(), &file).unwrap();
    let server = start_on(
        "127.0.0.1:0".parse().unwrap(),
        restored,
        server::config::Limits::default(),
    )
    .await;
    let mut everything = held(&a);
    everything.extend(held(&b));
    everything.extend(
        a.replica()
            .pending(100)
            .unwrap()
            .iter()
            .map(|e| e.event_id.to_string()),
    );
    for (c, dir, n) in [(&mut a, dir_a.path(), 1u128), (&mut b, dir_b.path(), 2)] {
        *c.transport_mut() = HttpTransport::new(&server);
        c.notify(Input::Tick, wall_ms(), 0);
        sync_until_idle(c, &mut jitter).await;
        assert_eq!(c.state(), SyncState::Error, "device {n} stopped");
        assert!(c.log_changed().is_some(), "device {n} says why");
        let reason = c.last_error.clone().unwrap();
        assert!(reason.contains("restored"), "{reason}");
        // Recovery: fresh databases beside the old ones, pull, re-send what is missing.
        let fresh_dir = dir.join("recovered");
        std::fs::create_dir_all(&fresh_dir).unwrap();
        let mut fresh = client(fresh_replica(&fresh_dir, n), &server);
        sync_until_idle(&mut fresh, &mut jitter).await;
        let adopted = fresh.replica_mut().adopt(&c.replica()).unwrap();
        assert!(adopted > 0, "device {n} had events the restored log lacks");
        fresh.notify(Input::LocalChange, wall_ms(), 0);
        sync_until_idle(&mut fresh, &mut jitter).await;
        assert_eq!(fresh.state(), SyncState::Online);
        assert_eq!(fresh.replica().pending_len().unwrap(), 0);
        *c = fresh;
    }
    for c in [&mut a, &mut b] {
        c.notify(Input::Tick, wall_ms(), 0);
        sync_until_idle(c, &mut jitter).await;
    }
    let on_server = held(&a);
    let lost: Vec<&String> = everything.difference(&on_server).collect();
    assert!(lost.is_empty(), "lost in the restore: {lost:?}");
    assert_eq!(held(&b), on_server);
    assert_eq!(
        a.replica().views().dump().unwrap(),
        b.replica().views().dump().unwrap()
    );
    let title = |c: &SyncClient<HttpTransport>, id: AggregateId| -> String {
        c.replica()
            .views()
            .connection()
            .query_row(
                "SELECT title FROM todos WHERE todo_id = ?1",
                [id.to_string()],
                |r| r.get(0),
            )
            .unwrap()
    };
    assert_eq!(title(&b, agg(0x20)), "a after the backup");
    assert_eq!(title(&b, agg(0x21)), "b after the backup");
    assert_eq!(title(&b, agg(0x22)), "a offline");
    server.stop().await;
}
