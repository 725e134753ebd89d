//! The worker's event loop: install the OPFS VFS, open the device's replica (events.db and
//! views.db), then answer requests one at a time in arrival order.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use tandem_events::decide::{ListCommand, TodoCommand};
use tandem_events::ids::{AggregateId, DeviceId, WorkspaceId};
use tandem_events::position;
use tandem_protocol::worker::{StoreSummary, WorkerReply, WorkerRequest};
use tandem_store::{Replica, ReplicaError};
use wasm_bindgen::prelude::*;
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent};

/// How long to keep retrying the OPFS pool while a previous owner (the page being reloaded)
/// still holds its access handles.
const OPFS_RETRY_DEADLINE_MS: f64 = 10_000.0;
/// The list a first to-do goes to when the device has none.
const FIRST_LIST_NAME: &str = "Inbox";

/// Entry point, called by `worker.js` once the module is initialised.
#[wasm_bindgen]
pub async fn worker_main() -> Result<(), JsValue> {
    console_error_panic_hook::set_once();
    let scope: DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    let replica = match open_replica().await {
        Ok(replica) => replica,
        Err(message) => {
            post(&scope, &WorkerReply::Failed { message });
            return Ok(());
        }
    };
    let replica = Rc::new(RefCell::new(replica));
    let opened = summary(&replica.borrow()).and_then(|s| Ok((s, clock(&replica.borrow())?)));
    let ready = match opened {
        Ok((summary, clock)) => WorkerReply::Ready { summary, clock },
        Err(e) => WorkerReply::Failed {
            message: e.to_string(),
        },
    };
    let handler_scope = scope.clone();
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
        let reply = match event.data().as_string() {
            Some(text) => match WorkerRequest::from_json(&text) {
                Ok(request) => handle(&mut replica.borrow_mut(), request),
                Err(e) => WorkerReply::Failed {
                    message: e.to_string(),
                },
            },
            None => WorkerReply::Failed {
                message: "worker messages must be JSON strings".into(),
            },
        };
        post(&handler_scope, &reply);
    });
    scope.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    // The handler lives as long as the worker.
    on_message.forget();
    post(&scope, &ready);
    Ok(())
}

fn post(scope: &DedicatedWorkerGlobalScope, reply: &WorkerReply) {
    if let Err(e) = scope.post_message(&JsValue::from_str(&reply.to_json())) {
        web_sys::console::error_2(&"tandem worker: postMessage failed".into(), &e);
    }
}

async fn open_replica() -> Result<Replica, String> {
    let start = js_sys::Date::now();
    let mut delay_ms = 50;
    loop {
        match tandem_store::opfs::install_opfs_vfs().await {
            Ok(()) => break,
            Err(e) if js_sys::Date::now() - start < OPFS_RETRY_DEADLINE_MS => {
                web_sys::console::warn_1(&format!("tandem worker: {e}; retrying").into());
                sleep_ms(delay_ms).await;
                delay_ms = (delay_ms * 2).min(1_000);
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    // Used only when events.db is new: the device id is minted once and kept (DESIGN.md rule 1).
    let device = DeviceId::from_uuid(new_uuid_v7());
    Replica::open(
        "events.db",
        "views.db",
        device,
        Arc::new(|| js_sys::Date::now() as u64),
        Box::new(new_uuid_v7),
        |_| {},
    )
    .map_err(|e| format!("cannot open the local store: {e}"))
}

fn handle(replica: &mut Replica, request: WorkerRequest) -> WorkerReply {
    let result = match request {
        WorkerRequest::AddTodo { title } => {
            add_todo(replica, title).and_then(|()| summary(replica))
        }
        WorkerRequest::Summary => summary(replica),
    };
    match result {
        Ok(summary) => WorkerReply::Summary { summary },
        Err(e) => WorkerReply::Failed {
            message: e.to_string(),
        },
    }
}

/// Adds a to-do at the end of the device's first list, creating that list if there is none.
fn add_todo(replica: &mut Replica, title: String) -> Result<(), ReplicaError> {
    let ws = WorkspaceId::DEFAULT;
    let list = match replica.lists(ws)?.first() {
        Some(list) => list.id,
        None => {
            let id = AggregateId::from_uuid(new_uuid_v7());
            replica.execute_list(
                ws,
                id,
                ListCommand::Create {
                    name: FIRST_LIST_NAME.into(),
                },
            )?;
            id
        }
    };
    let last: Option<String> = replica
        .views()
        .connection()
        .query_row(
            "SELECT max(position) FROM todos WHERE list_id = ?1",
            [list.to_string()],
            |r| r.get(0),
        )
        .map_err(|e| ReplicaError::Views(e.into()))?;
    let position =
        position::between(last.as_deref(), None).map_err(|e| ReplicaError::Domain(e.into()))?;
    replica.execute_todo(
        ws,
        AggregateId::from_uuid(new_uuid_v7()),
        TodoCommand::Create {
            list_id: list,
            title,
            position,
            due_date: None,
        },
    )?;
    Ok(())
}

fn summary(replica: &Replica) -> Result<StoreSummary, ReplicaError> {
    let s = replica.summary()?;
    Ok(StoreSummary {
        lists: s.lists,
        todos: s.todos,
        accepted: s.accepted,
        pending: s.pending,
    })
}

/// A fresh stamp through the SQL function `hlc_now()`.
fn clock(replica: &Replica) -> Result<String, ReplicaError> {
    replica
        .log()
        .connection()
        .query_row("SELECT hlc_now()", [], |r| r.get(0))
        .map_err(|e| ReplicaError::Views(e.into()))
}

/// A UUID v7 (time-ordered, DESIGN.md rule 2) from the clock and the browser's CSPRNG.
fn new_uuid_v7() -> uuid::Uuid {
    let mut random = [0u8; 10];
    let scope: DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    let filled = scope
        .crypto()
        .and_then(|c| c.get_random_values_with_u8_array(&mut random).map(|_| ()));
    if filled.is_err() {
        // No CSPRNG in this worker: fall back to Math.random (ids stay unique in practice).
        for b in &mut random {
            *b = (js_sys::Math::random() * 256.0) as u8;
        }
    }
    uuid::Builder::from_unix_timestamp_millis(js_sys::Date::now() as u64, &random).into_uuid()
}

async fn sleep_ms(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        let scope: DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
        if scope
            .set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms)
            .is_err()
        {
            // No timer: resolve at once; the deadline still bounds the loop.
            let _ = resolve.call0(&JsValue::NULL);
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}
