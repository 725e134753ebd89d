//! The worker's event loop: install the OPFS VFS, open the probe database, then answer
//! requests one at a time in arrival order.

use std::cell::RefCell;
use std::rc::Rc;

use tandem_protocol::worker::{WorkerReply, WorkerRequest};
use tandem_store::rusqlite::Connection;
use tandem_store::{open, Durability};
use wasm_bindgen::prelude::*;
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent};

/// How long to keep retrying the OPFS pool while a previous owner (the page being reloaded)
/// still holds its access handles.
const OPFS_RETRY_DEADLINE_MS: f64 = 10_000.0;

/// Entry point, called by `worker.js` once the module is initialised.
#[wasm_bindgen]
pub async fn worker_main() -> Result<(), JsValue> {
    console_error_panic_hook::set_once();
    let scope: DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    let conn = match open_probe().await {
        Ok(conn) => conn,
        Err(message) => {
            post(&scope, &WorkerReply::Failed { message });
            return Ok(());
        }
    };
    let conn = Rc::new(RefCell::new(conn));
    let reply = match count(&conn.borrow()) {
        Ok(rows) => WorkerReply::Ready { rows },
        Err(message) => WorkerReply::Failed { message },
    };
    let handler_scope = scope.clone();
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
        let reply = match event.data().as_string() {
            Some(text) => match WorkerRequest::from_json(&text) {
                Ok(request) => handle(&conn.borrow(), request),
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
    post(&scope, &reply);
    Ok(())
}

fn post(scope: &DedicatedWorkerGlobalScope, reply: &WorkerReply) {
    if let Err(e) = scope.post_message(&JsValue::from_str(&reply.to_json())) {
        web_sys::console::error_2(&"tandem worker: postMessage failed".into(), &e);
    }
}

async fn open_probe() -> Result<Connection, String> {
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
    let conn = open("probe.db", Durability::Full).map_err(|e| e.to_string())?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS probe (id INTEGER PRIMARY KEY, added_at_ms INTEGER NOT NULL);",
    )
    .map_err(|e| format!("cannot create the probe table: {e}"))?;
    Ok(conn)
}

fn handle(conn: &Connection, request: WorkerRequest) -> WorkerReply {
    let result = match request {
        WorkerRequest::AppendProbeRow => conn
            .execute(
                "INSERT INTO probe (added_at_ms) VALUES (?1)",
                [js_sys::Date::now() as i64],
            )
            .map_err(|e| format!("cannot append a probe row: {e}"))
            .and_then(|_| count(conn)),
        WorkerRequest::CountProbeRows => count(conn),
    };
    match result {
        Ok(rows) => WorkerReply::Rows { rows },
        Err(message) => WorkerReply::Failed { message },
    }
}

fn count(conn: &Connection) -> Result<u64, String> {
    conn.query_row("SELECT count(*) FROM probe", [], |row| row.get::<_, i64>(0))
        .map(|n| n.max(0) as u64)
        .map_err(|e| format!("cannot count probe rows: {e}"))
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
