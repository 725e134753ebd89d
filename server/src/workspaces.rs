//! Workspaces, invites and members over HTTP (CONTRACT.md "Workspaces", "Invites",
//! "Members"). None of it touches the event log: creating a workspace, inviting and changing
//! members add no events (the one exception is a new account's "Inbox", written by
//! `auth`). Removing a member, deleting a workspace and leaving close the sockets that lost
//! access before the answer goes out.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;
use tandem_accounts::access::refusal;
use tandem_accounts::secret::{self, digest, well_formed};
use tandem_accounts::{Caller, InviteCheck, Role};
use tandem_events::ids::WorkspaceId;
use tandem_protocol::sync::ErrorCode;

use crate::auth::{blocking, Auth};
use crate::databases::now_ms;
use crate::errors::{api, internal, ApiError};
use crate::json::JsonBody;
use crate::live::CLOSE_FORBIDDEN;

fn now() -> i64 {
    i64::try_from(now_ms()).unwrap_or(i64::MAX)
}

/// A workspace id from a path or body: a UUID, else MALFORMED (before any access check).
fn workspace_id(text: &str) -> Result<WorkspaceId, ApiError> {
    text.parse::<WorkspaceId>()
        .map_err(|e| api(ErrorCode::Malformed, format!("workspace id: {e}")))
}

fn user_of(caller: &Caller) -> Result<String, ApiError> {
    Ok(caller.principal().map_err(ApiError)?.user.user_id.clone())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    name: String,
    #[serde(default)]
    workspace_id: Option<String>,
}

/// `POST /api/workspaces` → 201 (made), 200 (the same call again by its owner), 403 (the id
/// is someone else's: the one answer that tells a stranger an id is taken).
pub async fn create(
    State(auth): State<Arc<Auth>>,
    Extension(caller): Extension<Caller>,
    JsonBody(body): JsonBody<CreateBody>,
) -> Result<Response, ApiError> {
    let user = user_of(&caller)?;
    let id = match &body.workspace_id {
        Some(text) => workspace_id(text)?,
        None => WorkspaceId::from_uuid(uuid::Uuid::new_v4()),
    };
    let in_log = auth.in_log(id).await?;
    let (info, made) = auth
        .with_accounts(move |accounts| {
            accounts.create_workspace(&user, &id.to_string(), &body.name, in_log, now())
        })
        .await?;
    let status = if made {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(json!(info))).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenameBody {
    name: String,
}

/// `PATCH /api/workspaces/{id}` `{"name"}` (owners).
pub async fn rename(
    State(auth): State<Arc<Auth>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<RenameBody>,
) -> Result<Response, ApiError> {
    let ws = workspace_id(&id)?.to_string();
    let user = user_of(&caller)?;
    let info = auth
        .with_accounts(move |accounts| accounts.rename_workspace(&user, &ws, &body.name))
        .await?;
    Ok(Json(json!(info)).into_response())
}

/// `DELETE /api/workspaces/{id}` (owners): nobody reaches it any more; its events stay in the
/// log (DESIGN.md rule 4).
pub async fn delete(
    State(auth): State<Arc<Auth>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let workspace = workspace_id(&id)?;
    let user = user_of(&caller)?;
    auth.with_accounts(move |accounts| {
        accounts.delete_workspace(&user, &workspace.to_string(), now())
    })
    .await?;
    auth.hub.close_where(
        move |s| s.workspace == workspace,
        CLOSE_FORBIDDEN,
        "the workspace was deleted",
    );
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /api/workspaces/{id}/members` (any member).
pub async fn members(
    State(auth): State<Arc<Auth>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let ws = workspace_id(&id)?.to_string();
    let user = user_of(&caller)?;
    let list = auth
        .with_accounts(move |accounts| accounts.members(&user, &ws))
        .await?;
    Ok(Json(json!(list)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleBody {
    role: String,
}

fn role(text: &str) -> Result<Role, ApiError> {
    text.parse::<Role>()
        .map_err(|e| api(ErrorCode::Malformed, e.to_string()))
}

/// `PATCH /api/workspaces/{id}/members/{user_id}` `{"role"}` (owners; the last owner stays).
pub async fn set_role(
    State(auth): State<Arc<Auth>>,
    Extension(caller): Extension<Caller>,
    Path((id, target)): Path<(String, String)>,
    JsonBody(body): JsonBody<RoleBody>,
) -> Result<Response, ApiError> {
    let ws = workspace_id(&id)?.to_string();
    let role = role(&body.role)?;
    let user = user_of(&caller)?;
    let t = target.clone();
    auth.with_accounts(move |accounts| accounts.set_role(&user, &ws, &t, role))
        .await?;
    Ok(Json(json!({ "user_id": target, "role": role })).into_response())
}

/// `DELETE /api/workspaces/{id}/members/{user_id}` (owners; or oneself, to leave) → 204; that
/// member's sockets of the workspace close before the answer.
pub async fn remove_member(
    State(auth): State<Arc<Auth>>,
    Extension(caller): Extension<Caller>,
    Path((id, target)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let workspace = workspace_id(&id)?;
    let user = user_of(&caller)?;
    let t = target.clone();
    auth.with_accounts(move |accounts| accounts.remove_member(&user, &workspace.to_string(), &t))
        .await?;
    auth.hub.close_where(
        move |s| s.workspace == workspace && s.principal.user.user_id == target,
        CLOSE_FORBIDDEN,
        "you are no longer a member of this workspace",
    );
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InviteBody {
    #[serde(default = "default_role")]
    role: String,
    #[serde(default = "default_uses")]
    max_uses: i64,
    #[serde(default = "default_expiry")]
    expires_in_s: i64,
}

fn default_role() -> String {
    "member".into()
}
fn default_uses() -> i64 {
    1
}
fn default_expiry() -> i64 {
    7 * 24 * 60 * 60
}

/// `POST /api/workspaces/{id}/invites` (owners) → 201 `{"invite_id","token","url"}`.
pub async fn create_invite(
    State(auth): State<Arc<Auth>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<InviteBody>,
) -> Result<Response, ApiError> {
    const MAX_EXPIRY_S: i64 = 90 * 24 * 60 * 60;
    let ws = workspace_id(&id)?.to_string();
    let role = role(&body.role)?;
    if !(1..=1_000).contains(&body.max_uses) {
        return Err(api(ErrorCode::Malformed, "max_uses is from 1 to 1000"));
    }
    if !(60..=MAX_EXPIRY_S).contains(&body.expires_in_s) {
        return Err(api(
            ErrorCode::Malformed,
            "expires_in_s is from 60 (a minute) to 7776000 (90 days)",
        ));
    }
    let user = user_of(&caller)?;
    let token = secret::generate().map_err(internal)?;
    let invite_id = uuid::Uuid::new_v4().to_string();
    let accounts = Arc::clone(&auth.accounts);
    let (i, d) = (invite_id.clone(), digest(&token));
    let expires_at = now() + body.expires_in_s * 1_000;
    blocking(move || {
        accounts
            .create_invite(&user, &ws, &i, &d, role, body.max_uses, expires_at, now())
            .map_err(|e| ApiError(refusal(e)))
    })
    .await?;
    let url = format!("{}/invite/{token}", auth.site.base_url(&headers));
    Ok((
        StatusCode::CREATED,
        Json(json!({ "invite_id": invite_id, "token": token, "url": url, "role": role, "expires_at": expires_at })),
    )
        .into_response())
}

/// `GET /api/workspaces/{id}/invites` (owners): pending invites, never their tokens.
pub async fn invites(
    State(auth): State<Arc<Auth>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let ws = workspace_id(&id)?.to_string();
    let user = user_of(&caller)?;
    let list = auth
        .with_accounts(move |accounts| accounts.invites(&user, &ws, now()))
        .await?;
    Ok(Json(json!(list)).into_response())
}

/// `DELETE /api/workspaces/{id}/invites/{invite_id or token}` (owners).
pub async fn revoke_invite(
    State(auth): State<Arc<Auth>>,
    Extension(caller): Extension<Caller>,
    Path((id, invite)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let ws = workspace_id(&id)?.to_string();
    let user = user_of(&caller)?;
    let key = if well_formed(&invite) {
        digest(&invite)
    } else {
        invite
    };
    auth.with_accounts(move |accounts| accounts.revoke_invite(&user, &ws, &key, now()))
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /api/invites/{token}`: what an invite leads to (the invite page shows it); 410 when
/// it is gone. Joins nothing.
pub async fn show_invite(
    State(auth): State<Arc<Auth>>,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    let check = check_invite(&auth, &token).await?;
    match check {
        InviteCheck::Valid {
            workspace_name,
            role,
            invited_by,
            ..
        } => Ok(Json(json!({
            "workspace_name": workspace_name,
            "role": role,
            "invited_by": invited_by,
        }))
        .into_response()),
        InviteCheck::Gone => Err(gone()),
    }
}

/// What an invite token leads to (`Gone` for anything that is not a live invite).
pub async fn check_invite(auth: &Auth, token: &str) -> Result<InviteCheck, ApiError> {
    if !well_formed(token) {
        return Ok(InviteCheck::Gone);
    }
    let accounts = Arc::clone(&auth.accounts);
    let d = digest(token);
    blocking(move || {
        accounts
            .check_invite(&d, now())
            .map_err(|e| ApiError(refusal(e)))
    })
    .await
}

fn gone() -> ApiError {
    api(
        ErrorCode::InviteGone,
        "this invite has expired, been used up or been revoked",
    )
}

/// `POST /api/invites/{token}/accept` → 200 `{"workspace_id","role"}`; 410 INVITE_GONE.
pub async fn accept_invite(
    State(auth): State<Arc<Auth>>,
    Extension(caller): Extension<Caller>,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    let user = user_of(&caller)?;
    if !well_formed(&token) {
        return Err(gone());
    }
    let d = digest(&token);
    let (workspace_id, role) = auth
        .with_accounts(move |accounts| accounts.accept_invite(&user, &d, now()))
        .await?;
    Ok(Json(json!({ "workspace_id": workspace_id, "role": role })).into_response())
}
