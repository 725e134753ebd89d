//! The raw baseline of the browser benchmarks (`make bench-browser`, docs/benchmarks.md): the
//! same pull pages Tandem's worker downloads on a fresh device, fetched the same way and
//! inserted with plain INSERTs into an OPFS SQLite table, one transaction per page — no
//! checks, no clock, no projection. Run in its own worker (public/bench-raw.js) with its own
//! OPFS folder, so it never touches the device's databases.

use tandem_protocol::sync::{PullRequest, PullResponse};
use tandem_store::baseline::{raw_insert, raw_table};
use tandem_store::wire::from_wire;
use tandem_store::Durability;
use wasm_bindgen::prelude::*;

use crate::browser::FetchTransport;

/// Pulls the default workspace from the start, `limit` events a page, into `raw.db`; answers
/// `{"events": n, "ms": t}` as JSON.
#[wasm_bindgen]
pub async fn bench_raw_pull(limit: u32) -> Result<String, JsValue> {
    let fail = |e: &dyn std::fmt::Display| JsValue::from_str(&e.to_string());
    tandem_store::opfs::install_opfs_vfs("tandem-bench/raw")
        .await
        .map_err(|e| fail(&e))?;
    let mut conn = tandem_store::open("raw.db", Durability::Full).map_err(|e| fail(&e))?;
    conn.execute_batch("DROP TABLE IF EXISTS raw")
        .map_err(|e| fail(&e))?;
    raw_table(&conn).map_err(|e| fail(&e))?;
    let start = js_sys::Date::now();
    let mut cursor = 0u64;
    let mut stored = 0usize;
    loop {
        let request = PullRequest {
            device_id: uuid::Uuid::nil().to_string(),
            workspace_id: tandem_events::ids::WorkspaceId::DEFAULT.to_string(),
            cursor,
            limit: Some(u64::from(limit)),
        };
        let page: PullResponse = FetchTransport::post("/api/sync/pull", &request)
            .await
            .map_err(|e| fail(&e))?;
        let events = page
            .events
            .iter()
            .map(|e| from_wire(&e.event))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| fail(&e))?;
        raw_insert(&mut conn, &events, stored).map_err(|e| fail(&e))?;
        stored += events.len();
        cursor = page.events.last().map_or(cursor, |e| e.seq);
        if !page.has_more {
            break;
        }
    }
    let ms = js_sys::Date::now() - start;
    Ok(format!(r#"{{"events":{stored},"ms":{ms}}}"#))
}
