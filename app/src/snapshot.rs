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
    /// The workspace shown.
    #[serde(default)]
    pub workspace_id: Option<String>,
    /// The viewer's role there (`owner`, `member`, `reader`).
    #[serde(default)]
    pub role: Option<String>,
}

/// `POST /api/snapshot` `{"workspace_id"?, "list_id"?}`: the server's views of one list and
/// its workspace's lists, for a member of that workspace (DESIGN.md rule 23): a list names its
/// workspace; without one, the workspace named, else the caller's first. No credentials: 401;
/// a list or workspace the caller may not see, or that does not exist: 403, alike.
#[server(endpoint = "snapshot", input = server_fn::codec::Json, output = server_fn::codec::Json)]
pub async fn list_snapshot(
    workspace_id: Option<String>,
    list_id: Option<String>,
) -> Result<Snapshot, crate::sync::SyncFnError> {
    ssr::snapshot(crate::sync::ssr::caller(), workspace_id, list_id).await
}

#[cfg(feature = "ssr")]
mod ssr {
    use tandem_accounts::access;
    use tandem_events::ids::{AggregateId, WorkspaceId};
    use tandem_protocol::sync::{ErrorCode, SyncError};

    use super::Snapshot;
    use crate::sync::ssr::SyncService;
    use crate::sync::SyncFnError;

    pub async fn snapshot(
        caller: tandem_accounts::Caller,
        workspace_id: Option<String>,
        list_id: Option<String>,
    ) -> Result<Snapshot, SyncFnError> {
        let service = leptos::prelude::use_context::<SyncService>().ok_or_else(|| {
            SyncFnError(SyncError::new(
                ErrorCode::Internal,
                "the sync service is not running",
            ))
        })?;
        // Called over HTTP (`/api/snapshot`), a refusal answers its status; called while the
        // server renders a page, the page decides (a sign-in form is a 200).
        let over_http = leptos::prelude::use_context::<http::request::Parts>()
            .is_some_and(|parts| parts.uri.path() == "/api/snapshot");
        let response =
            leptos::prelude::use_context::<leptos_axum::ResponseOptions>().filter(|_| over_http);
        let result =
            tokio::task::spawn_blocking(move || read(&service, &caller, workspace_id, list_id))
                .await
                .unwrap_or_else(|e| {
                    Err(SyncError::new(
                        ErrorCode::Internal,
                        format!("the snapshot task failed: {e}"),
                    ))
                });
        result.map_err(|e| {
            if let Some(response) = response {
                if let Ok(status) = http::StatusCode::from_u16(e.code.status()) {
                    response.set_status(status);
                }
            }
            SyncFnError(e)
        })
    }

    fn read(
        service: &SyncService,
        caller: &tandem_accounts::Caller,
        workspace_id: Option<String>,
        list_id: Option<String>,
    ) -> Result<Snapshot, SyncError> {
        let internal =
            |e: &dyn std::fmt::Display| SyncError::new(ErrorCode::Internal, e.to_string());
        let principal = caller.principal()?.clone();
        if let Some(id) = &list_id {
            id.parse::<AggregateId>().map_err(|_| {
                SyncError::new(ErrorCode::Malformed, format!("malformed list id {id:?}"))
            })?;
        }
        if let Some(id) = &workspace_id {
            id.parse::<WorkspaceId>().map_err(|_| {
                SyncError::new(
                    ErrorCode::Malformed,
                    format!("malformed workspace id {id:?}"),
                )
            })?;
        }
        // A workspace named: access first (rule 23's order), before the views are touched.
        if let (None, Some(ws)) = (&list_id, &workspace_id) {
            access::member(&*service.accounts, caller, ws)?;
        }
        let backend = &service.backend;
        // The workspace: the list's own when the caller is a member there; else (a list that
        // does not exist here, or is in a workspace the caller is not in — the same answer for
        // both, DESIGN.md rule 23) the caller's first workspace, where the list is "not here
        // yet" (a list made offline shows once it arrives). Without a list, the workspace
        // named (403 for a stranger's), else the caller's first.
        let first = || -> Result<Option<String>, SyncError> {
            Ok(service
                .accounts
                .workspaces_of(&principal.user.user_id)
                .map_err(access::refusal)?
                .first()
                .map(|w| w.workspace_id.clone()))
        };
        let workspace = match (&list_id, workspace_id) {
            (Some(list), _) => {
                let home = backend.list_workspace(list)?;
                match home {
                    Some(ws) if access::member(&*service.accounts, caller, &ws).is_ok() => Some(ws),
                    _ => first()?,
                }
            }
            (None, Some(ws)) => Some(ws),
            (None, None) => first()?,
        };
        let Some(workspace) = workspace else {
            return Ok(Snapshot {
                log_id: Some(backend.log_id()),
                ..Snapshot::default()
            });
        };
        let (_, role) = access::member(&*service.accounts, caller, &workspace)?;
        let ws: WorkspaceId = workspace.parse().map_err(|e| internal(&e))?;
        let (view, head) = backend.snapshot(ws, list_id)?;
        Ok(Snapshot {
            view,
            head,
            log_id: Some(backend.log_id()),
            local: false,
            workspace_id: Some(workspace),
            role: Some(role.as_str().to_string()),
        })
    }
}
