//! What a list page shows, as the server's views hold it: rendered on the server for a first
//! visit (so the list shows before the wasm loads, and without JavaScript), embedded in the
//! page for hydration, and read from the local store instead once the worker has caught up.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// What a list page shows (the lists and one list's todos,
/// [`tandem_protocol::data::ListSnapshot`]) and where it comes from. (That name is not imported:
/// the server function `list_snapshot` makes a type of the same name.)
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    #[serde(flatten)]
    pub view: tandem_protocol::data::ListSnapshot,
    /// The workspace head these views reflect (the worker catches up to it before the page
    /// switches to the local store).
    pub head: u64,
    /// The server log's identity.
    pub log_id: Option<String>,
    /// Read from the device's local store (not the server's views).
    pub local: bool,
}

/// `POST /api/snapshot`: the server's views of the default workspace around one list
/// (`None`: the first list).
#[server(endpoint = "snapshot")]
pub async fn list_snapshot(list_id: Option<String>) -> Result<Snapshot, ServerFnError> {
    use tandem_events::ids::{AggregateId, WorkspaceId};
    use tandem_store::changes;
    let service = use_context::<crate::sync::ssr::SyncService>()
        .ok_or_else(|| ServerFnError::new("the sync service is not running"))?;
    if let Some(id) = &list_id {
        id.parse::<AggregateId>()
            .map_err(|_| ServerFnError::new(format!("malformed list id {id:?}")))?;
    }
    tokio::task::spawn_blocking(move || {
        let fail = |e: &dyn std::fmt::Display| ServerFnError::new(e.to_string());
        let server_views = service.views().map_err(|e| fail(&e.message))?;
        let ws = WorkspaceId::DEFAULT;
        let views = server_views.views();
        let conn = views.connection();
        let view = changes::snapshot(conn, &ws.to_string(), list_id).map_err(|e| fail(&e))?;
        let head = views.checkpoint(ws).map_err(|e| fail(&e))?;
        Ok(Snapshot {
            view,
            head,
            log_id: Some(service.readers().log_id().to_string()),
            local: false,
        })
    })
    .await
    .map_err(|e| ServerFnError::new(format!("the snapshot task failed: {e}")))?
}
