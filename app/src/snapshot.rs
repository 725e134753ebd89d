//! What a list page shows, as the server's views hold it: rendered on the server for a first
//! visit (so the list shows before the wasm loads, and without JavaScript), embedded in the
//! page for hydration, and read from the local store instead once the worker has caught up.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use tandem_protocol::data::{Counts, ListCounts, ListRow, TodoRow};

/// The lists, one list's todos (all of them; filters are applied on the page), and where in
/// the server log these views are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub lists: Vec<ListRow>,
    /// Every list's counts (the sidebar shows them).
    pub list_counts: Vec<ListCounts>,
    /// The list shown: the one asked for, or the workspace's first when none was.
    pub list_id: Option<String>,
    /// Whether that list exists in these views (a list made offline elsewhere may not yet).
    pub list_known: bool,
    pub todos: Vec<TodoRow>,
    pub counts: Counts,
    /// The workspace head these views reflect (the worker catches up to it before the page
    /// switches to the local store).
    pub head: u64,
    /// The server log's identity.
    pub log_id: Option<String>,
    /// Read from the device's local store (not the server's views).
    pub local: bool,
}

/// The counts of `list_id` among every list's.
pub fn counts_of(list_counts: &[ListCounts], list_id: Option<&String>) -> Counts {
    list_counts
        .iter()
        .find(|c| Some(&c.list_id) == list_id)
        .map(|c| c.counts)
        .unwrap_or_default()
}

impl Snapshot {
    /// The name of the list shown, if known.
    pub fn list_name(&self) -> Option<&str> {
        let id = self.list_id.as_deref()?;
        self.lists
            .iter()
            .find(|l| l.id == id)
            .map(|l| l.name.as_str())
    }
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
        let read = changes::snapshot(conn, &ws.to_string(), list_id).map_err(|e| fail(&e))?;
        let counts = counts_of(&read.list_counts, read.list_id.as_ref());
        let head = views.checkpoint(ws).map_err(|e| fail(&e))?;
        Ok(Snapshot {
            lists: read.lists,
            list_counts: read.list_counts,
            list_id: read.list_id,
            list_known: read.list_known,
            todos: read.todos,
            counts,
            head,
            log_id: Some(service.readers().log_id().to_string()),
            local: false,
        })
    })
    .await
    .map_err(|e| ServerFnError::new(format!("the snapshot task failed: {e}")))?
}
