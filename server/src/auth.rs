//! Accounts over HTTP (CONTRACT.md "Accounts, workspaces, access"): sign-up, sign-in,
//! sign-out (everywhere), the signed-in account (`/api/auth/me`), password change, sessions
//! and API tokens, deleting one's account; and how a request's credentials become a
//! [`Caller`]. Passwords are hashed on blocking threads, a bounded number at once (DESIGN.md
//! rule 22); sign-ins of unknown accounts are checked against a dummy hash so the answer and
//! its timing say nothing about which names exist.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use app::sync::ssr::Backend;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;
use tandem_accounts::access::refusal;
use tandem_accounts::secret::{self, digest, well_formed};
use tandem_accounts::{
    password, AccountStore, Caller, Credential, InviteCheck, NewAccount, NewSession, Principal,
};
use tandem_protocol::sync::{ErrorCode, SyncError};
use tokio::sync::Semaphore;

use crate::config::SignUp;
use crate::databases::now_ms;
use crate::errors::{api, internal, ApiError};
use crate::guard::ClientIp;
use crate::json::JsonBody;
use crate::live::Hub;
use crate::rate::{address_key, Limiter};
use crate::site::{is_loopback_name, Site};

/// How long a session cookie lives in the browser; refreshed with the session's use.
const COOKIE_MAX_AGE_S: u64 = 30 * 24 * 60 * 60;
/// Password hashes one address may have running or waiting at once.
const HASHES_PER_ADDRESS: usize = 4;

fn now() -> i64 {
    i64::try_from(now_ms()).unwrap_or(i64::MAX)
}

/// Runs blocking accounts work off the async runtime.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(internal(format!("an accounts task failed: {e}"))))
}

/// Password hashing, bounded (DESIGN.md rule 22): `running` at once, eight times that waiting,
/// [`HASHES_PER_ADDRESS`] per address; past a bound BUSY 503 or RATE_LIMITED 429.
struct Hashing {
    admitted: Arc<Semaphore>,
    running: Arc<Semaphore>,
    per_address: Mutex<HashMap<String, usize>>,
    dummy: String,
}

/// An address's place among the hashes (released on drop).
struct AddressSeat<'a> {
    hashing: &'a Hashing,
    key: String,
}

impl Drop for AddressSeat<'_> {
    fn drop(&mut self) {
        let mut map = self
            .hashing
            .per_address
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.key);
            }
        }
    }
}

impl Hashing {
    fn new(running: usize) -> Result<Self, password::PasswordError> {
        Ok(Self {
            admitted: Arc::new(Semaphore::new(running * 8)),
            running: Arc::new(Semaphore::new(running)),
            per_address: Mutex::new(HashMap::new()),
            dummy: password::dummy()?,
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        address: &str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let _seat = {
            let mut map = self.per_address.lock().unwrap_or_else(|p| p.into_inner());
            let n = map.entry(address.to_string()).or_insert(0);
            if *n >= HASHES_PER_ADDRESS {
                let mut e = SyncError::new(
                    ErrorCode::RateLimited,
                    "too many password checks from this address at once",
                );
                e.retry_after_ms = Some(1_000);
                return Err(ApiError(e));
            }
            *n += 1;
            AddressSeat {
                hashing: self,
                key: address.to_string(),
            }
        };
        let Ok(_admitted) = Arc::clone(&self.admitted).try_acquire_owned() else {
            return Err(ApiError(tandem_store::central::busy(
                "too many password checks at once",
                now(),
            )));
        };
        let permit = Arc::clone(&self.running)
            .acquire_owned()
            .await
            .map_err(internal)?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            f()
        })
        .await
        .map_err(|e| internal(format!("a password check failed: {e}")))
    }

    async fn hash(&self, address: &str, password: &str) -> Result<String, ApiError> {
        let password = password.to_string();
        self.run(address, move || password::hash(&password))
            .await?
            .map_err(internal)
    }

    /// Whether `password` matches `stored`; against the dummy hash when there is none.
    async fn verify(
        &self,
        address: &str,
        password: &str,
        stored: Option<String>,
    ) -> Result<bool, ApiError> {
        let password = password.to_string();
        let (stored, real) = match stored.filter(|s| s.starts_with("$argon2")) {
            Some(s) => (s, true),
            None => (self.dummy.clone(), false),
        };
        let ok = self
            .run(address, move || password::verify(&password, &stored))
            .await?
            .map_err(internal)?;
        Ok(ok && real)
    }
}

/// Everything the accounts endpoints need.
pub struct Auth {
    pub accounts: Arc<dyn AccountStore>,
    pub site: Site,
    pub sign_up: SignUp,
    pub metrics_token: Option<String>,
    /// The server listens on a loopback address (the first account may sign up on the page).
    pub loopback: bool,
    hashing: Hashing,
    pub limiter: Limiter,
    /// The one-time setup token's digest, while no account exists.
    setup: Mutex<Option<String>>,
    backend: Arc<dyn Backend>,
    pub hub: Arc<Hub>,
    pub quota_events_per_day: u64,
    pub quota_bytes: u64,
}

/// Why the server could not set up accounts.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(transparent)]
    Accounts(#[from] tandem_accounts::AccountsError),
    #[error(transparent)]
    Password(#[from] password::PasswordError),
    #[error(transparent)]
    Random(#[from] secret::RandomError),
}

/// How the server was started, for [`Auth::new`].
pub struct AuthSettings {
    /// The rate limits' counters (in the database on PostgreSQL).
    pub limiter: Limiter,
    pub site: Site,
    pub sign_up: SignUp,
    pub metrics_token: Option<String>,
    pub loopback: bool,
    pub password_hashes: usize,
    pub quota_events_per_day: u64,
    pub quota_bytes: u64,
}

impl Auth {
    pub fn new(
        accounts: Arc<dyn AccountStore>,
        settings: AuthSettings,
        backend: Arc<dyn Backend>,
        hub: Arc<Hub>,
    ) -> Result<Self, AuthError> {
        Ok(Self {
            accounts,
            site: settings.site,
            sign_up: settings.sign_up,
            metrics_token: settings.metrics_token,
            loopback: settings.loopback,
            hashing: Hashing::new(settings.password_hashes)?,
            limiter: settings.limiter,
            setup: Mutex::new(None),
            backend,
            hub,
            quota_events_per_day: settings.quota_events_per_day,
            quota_bytes: settings.quota_bytes,
        })
    }

    /// While no account exists: mints the one-time setup token and returns it (the server
    /// prints the link; only its digest is kept).
    pub fn mint_setup_token(&self) -> Result<Option<String>, AuthError> {
        if self.accounts.user_count()? > 0 {
            return Ok(None);
        }
        let token = secret::generate()?;
        *self.setup.lock().unwrap_or_else(|p| p.into_inner()) = Some(digest(&token));
        Ok(Some(token))
    }

    fn cookie_name(&self) -> &'static str {
        // Under https the __Host- prefix: no sibling subdomain can plant or shadow it.
        if self.site.secure() {
            "__Host-tandem_session"
        } else {
            "tandem_session"
        }
    }

    fn cookie(&self, value: &str, max_age: u64) -> Option<HeaderValue> {
        let secure = if self.site.secure() { "; Secure" } else { "" };
        HeaderValue::from_str(&format!(
            "{}={value}; HttpOnly; SameSite=Lax; Path=/; Max-Age={max_age}{secure}",
            self.cookie_name()
        ))
        .ok()
    }

    /// The session cookie's value in a request, if any.
    pub fn session_cookie(&self, headers: &HeaderMap) -> Option<String> {
        let name = self.cookie_name();
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.trim().to_string())
    }

    /// Resolves a request's credentials: a Bearer token (which wins over a cookie; a bad one
    /// is refused, never a fall-back to the cookie) or the session cookie. Returns the cookie
    /// to send again when the session's use was noted (30 days from the last use).
    pub async fn authenticate(&self, headers: &HeaderMap) -> (Caller, Option<HeaderValue>) {
        let expected_user = headers
            .get("x-tandem-user")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let (caller, refresh) = self.credentials(headers).await;
        // A device's worker names the account its data belongs to: a cookie of another
        // account (signed in in another tab meanwhile) must not sync into it.
        if let (Caller::Signed(p), Some(expected)) = (&caller, &expected_user) {
            if &p.user.user_id != expected {
                return (
                    Caller::Refused(
                        "this browser is signed in as another account than this device's data"
                            .into(),
                    ),
                    None,
                );
            }
        }
        (caller, refresh)
    }

    async fn credentials(&self, headers: &HeaderMap) -> (Caller, Option<HeaderValue>) {
        let accounts = Arc::clone(&self.accounts);
        if let Some(value) = headers.get(header::AUTHORIZATION) {
            let token = value
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim)
                .filter(|t| well_formed(t));
            let Some(token) = token else {
                return (
                    Caller::Refused("Authorization takes a Bearer token made by Tandem".into()),
                    None,
                );
            };
            let d = digest(token);
            let found =
                blocking(move || accounts.token(&d, now()).map_err(|e| ApiError(refusal(e)))).await;
            return match found {
                Ok(Some(p)) => (Caller::Signed(p), None),
                Ok(None) => (
                    Caller::Refused("the API token is unknown, expired or revoked".into()),
                    None,
                ),
                Err(e) => (unavailable(e), None),
            };
        }
        let Some(cookie) = self.session_cookie(headers) else {
            return (Caller::Anonymous, None);
        };
        if !well_formed(&cookie) {
            return (
                Caller::Refused("the session cookie is not valid".into()),
                None,
            );
        }
        let d = digest(&cookie);
        let found = blocking(move || {
            accounts
                .session(&d, now())
                .map_err(|e| ApiError(refusal(e)))
        })
        .await;
        match found {
            Ok(Some((p, touched))) => {
                let refresh = touched
                    .then(|| self.cookie(&cookie, COOKIE_MAX_AGE_S))
                    .flatten();
                (Caller::Signed(p), refresh)
            }
            Ok(None) => (
                Caller::Refused("the session has ended: sign in again".into()),
                None,
            ),
            Err(e) => (unavailable(e), None),
        }
    }

    /// Makes a session for `user_id` (ending the one the request carried) and returns the
    /// cookie that carries it.
    async fn new_session(
        &self,
        user_id: String,
        headers: &HeaderMap,
    ) -> Result<HeaderValue, ApiError> {
        let secret = secret::generate().map_err(internal)?;
        let replaces = self.session_cookie(headers).map(|c| digest(&c));
        let agent = headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let accounts = Arc::clone(&self.accounts);
        let d = digest(&secret);
        blocking(move || {
            let session_id = uuid::Uuid::new_v4().to_string();
            accounts
                .create_session(
                    &user_id,
                    &NewSession {
                        digest: &d,
                        session_id: &session_id,
                        user_agent: &agent,
                    },
                    replaces.as_deref(),
                    now(),
                )
                .map_err(|e| ApiError(refusal(e)))
        })
        .await?;
        self.cookie(&secret, COOKIE_MAX_AGE_S)
            .ok_or_else(|| internal("cannot make the session cookie"))
    }

    fn clear_cookie(&self) -> Option<HeaderValue> {
        self.cookie("", 0)
    }

    /// Writes the "Inbox" list of the account's new workspaces (authored by the server's own
    /// device; a workspace that holds events already is left as it is).
    pub async fn ensure_inbox(&self, user_id: &str) -> Result<(), ApiError> {
        let accounts = Arc::clone(&self.accounts);
        let backend = Arc::clone(&self.backend);
        let hub = Arc::clone(&self.hub);
        let user = user_id.to_string();
        blocking(move || {
            for ws in accounts
                .inbox_pending(&user)
                .map_err(|e| ApiError(refusal(e)))?
            {
                let Ok(workspace) = ws.parse::<tandem_events::ids::WorkspaceId>() else {
                    continue;
                };
                let made = backend
                    .ensure_first_list(
                        workspace,
                        crate::databases::DEFAULT_LIST_NAME,
                        tandem_events::ids::AggregateId::from_uuid(uuid::Uuid::new_v4()),
                        tandem_events::ids::EventId::from_uuid(uuid::Uuid::new_v4()),
                        Some(&user),
                    )
                    .map_err(ApiError)?;
                if made.is_some() {
                    // A socket may follow the workspace already (a token's client): its
                    // head goes out alone (the clients pull the list). The list is written
                    // whatever comes of this: an unread head waits for the periodic pull.
                    match backend.head(workspace, now()) {
                        Ok(head) => hub.publish(workspace, head, &[], &[]),
                        Err(e) => tracing::warn!(error = %e.message, "cannot announce a new Inbox"),
                    }
                }
                accounts
                    .inbox_written(&ws)
                    .map_err(|e| ApiError(refusal(e)))?;
            }
            Ok(())
        })
        .await
    }

    /// Runs `f` on accounts.db off the async runtime; its refusals are the contract's errors.
    pub async fn with_accounts<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn AccountStore) -> Result<T, tandem_accounts::AccountsError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let accounts = Arc::clone(&self.accounts);
        blocking(move || f(&*accounts).map_err(|e| ApiError(refusal(e)))).await
    }

    /// The workspaces that hold events in the log.
    async fn log_workspaces(&self) -> Result<Vec<String>, ApiError> {
        let backend = Arc::clone(&self.backend);
        blocking(move || {
            Ok(backend
                .heads()
                .map_err(ApiError)?
                .into_iter()
                .map(|(ws, _)| ws.to_string())
                .collect())
        })
        .await
    }

    /// Whether the log holds events of `workspace_id`.
    pub async fn in_log(
        &self,
        workspace_id: tandem_events::ids::WorkspaceId,
    ) -> Result<bool, ApiError> {
        let backend = Arc::clone(&self.backend);
        blocking(move || Ok(backend.head(workspace_id, now()).map_err(ApiError)? > 0)).await
    }

    /// Whether a request may make the first account through the page (CONTRACT.md): the
    /// server listens on loopback, the request came straight from loopback to a loopback name
    /// (no proxy in between, no public URL elsewhere), and the log holds no workspace.
    async fn first_account_here(
        &self,
        headers: &HeaderMap,
        client: &ClientIp,
    ) -> Result<bool, ApiError> {
        let local_host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .and_then(crate::site::host_name)
            .is_some_and(|h| is_loopback_name(&h));
        let public_local = self
            .site
            .public_url
            .as_ref()
            .is_none_or(|u| is_loopback_name(&u.host));
        let direct = !headers.contains_key("x-forwarded-for")
            && !headers.contains_key(header::FORWARDED)
            && !self.site.behind_proxy()
            && client.0.is_some_and(|ip| ip.is_loopback());
        Ok(self.loopback
            && local_host
            && public_local
            && direct
            && self.log_workspaces().await?.is_empty())
    }
}

/// Closes the live sockets opened with `credential` (it just ended).
fn close_sockets_of(auth: &Auth, credential: Credential, reason: &str) {
    auth.hub.close_where(
        move |s| s.principal.credential == credential,
        crate::live::CLOSE_UNAUTHENTICATED,
        reason,
    );
}

/// The caller's principal, or 401.
fn signed(caller: &Caller) -> Result<Principal, ApiError> {
    caller.principal().cloned().map_err(ApiError)
}

/// The caller's principal signed in with a session (tokens may not manage the account).
fn session_only(caller: &Caller) -> Result<Principal, ApiError> {
    let p = signed(caller)?;
    if p.is_token() {
        return Err(api(
            ErrorCode::Forbidden,
            "an API token cannot manage the account (tokens, password, sessions): sign in",
        ));
    }
    Ok(p)
}

fn rate_limited(wait_ms: i64, what: &str) -> ApiError {
    let mut e = SyncError::new(
        ErrorCode::RateLimited,
        format!("too many {what}; try again later"),
    );
    e.retry_after_ms = Some(u32::try_from(wait_ms).unwrap_or(u32::MAX));
    ApiError(e)
}

fn with_cookie(mut response: Response, cookie: Option<HeaderValue>) -> Response {
    if let Some(cookie) = cookie {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignUpBody {
    username: String,
    password: String,
    #[serde(default)]
    invite: Option<String>,
}

/// `POST /api/auth/sign-up`.
pub async fn sign_up(
    State(auth): State<Arc<Auth>>,
    Extension(client): Extension<ClientIp>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<SignUpBody>,
) -> Result<Response, ApiError> {
    let address = address_key(client.0);
    let at = now();
    if let Some(wait) = auth.limiter.sign_ups.blocked(&address, at).await? {
        return Err(rate_limited(wait, "sign-ups from this address"));
    }
    // The policy, then the invite (CONTRACT.md), then the name.
    let count = auth
        .with_accounts(move |accounts| accounts.user_count())
        .await?;
    let invite = body
        .invite
        .as_deref()
        .filter(|t| well_formed(t))
        .map(digest);
    let first = count == 0;
    if first {
        let setup = auth.setup.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let with_setup = invite.is_some() && invite == setup;
        if !with_setup && !auth.first_account_here(&headers, &client).await? {
            return Err(api(
                ErrorCode::SignUpClosed,
                "the first account is made with `server user add NAME` or the setup link the server printed at start",
            ));
        }
    } else {
        match auth.sign_up {
            SignUp::Closed => {
                return Err(api(
                    ErrorCode::SignUpClosed,
                    "sign-up is closed on this server",
                ))
            }
            SignUp::Invite if body.invite.is_none() => {
                return Err(api(
                    ErrorCode::SignUpClosed,
                    "sign-up needs an invite link from a member of this server",
                ))
            }
            _ => {}
        }
        if let Some(d) = invite.clone() {
            let check = auth
                .with_accounts(move |accounts| accounts.check_invite(&d, now()))
                .await?;
            if check == InviteCheck::Gone {
                return Err(api(
                    ErrorCode::InviteGone,
                    "this invite has expired, been used up or been revoked",
                ));
            }
        } else if body.invite.is_some() && auth.sign_up == SignUp::Invite {
            return Err(api(ErrorCode::InviteGone, "this invite is not valid"));
        }
    }
    tandem_accounts::names::username(&body.username)
        .map_err(|e| api(ErrorCode::Malformed, e.to_string()))?;
    tandem_accounts::names::password(&body.password).map_err(|e| ApiError(refusal(e.into())))?;
    let name = body.username.clone();
    let taken = auth
        .with_accounts(move |accounts| accounts.user_by_name(&name))
        .await?;
    if taken.is_some() {
        return Err(api(ErrorCode::UsernameTaken, "that username is taken"));
    }
    auth.limiter.sign_ups.hit(&address, at).await?;
    let hash = auth.hashing.hash(&address, &body.password).await?;
    let adopt = if first {
        auth.log_workspaces().await?
    } else {
        vec![]
    };
    let accounts = Arc::clone(&auth.accounts);
    let username = body.username.clone();
    // Under the open policy an invite is not needed, and not claimed; the first account's
    // setup token is no invite.
    let claim = if first || auth.sign_up == SignUp::Open {
        None
    } else {
        invite
    };
    let user = blocking(move || {
        let user_id = uuid::Uuid::new_v4().to_string();
        let workspace_id = uuid::Uuid::new_v4().to_string();
        accounts
            .create_account(&NewAccount {
                user_id: &user_id,
                username: &username,
                password_hash: &hash,
                must_be_first: first,
                invite: claim.as_deref(),
                workspace_id: &workspace_id,
                workspace_name: "Personal",
                adopt: &adopt,
                now: now(),
            })
            .map_err(|e| ApiError(refusal(e)))
    })
    .await?;
    if first {
        *auth.setup.lock().unwrap_or_else(|p| p.into_inner()) = None;
        tracing::info!(user = %user.user.username, "the first account was made (admin)");
    }
    auth.ensure_inbox(&user.user.user_id).await?;
    let cookie = auth
        .new_session(user.user.user_id.clone(), &headers)
        .await?;
    Ok(with_cookie(
        (StatusCode::CREATED, Json(json!({ "user": user.user }))).into_response(),
        Some(cookie),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignInBody {
    username: String,
    password: String,
}

/// `POST /api/auth/sign-in`.
pub async fn sign_in(
    State(auth): State<Arc<Auth>>,
    Extension(client): Extension<ClientIp>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<SignInBody>,
) -> Result<Response, ApiError> {
    let address = address_key(client.0);
    let key = Limiter::account_key(&body.username, &address);
    let at = now();
    let blocked = match auth.limiter.account_failures.blocked(&key, at).await? {
        Some(wait) => Some(wait),
        None => auth.limiter.address_failures.blocked(&address, at).await?,
    };
    if let Some(wait) = blocked {
        return Err(rate_limited(wait, "failed sign-ins"));
    }
    let user = if body.username.len() <= 64
        && body.password.len() <= tandem_accounts::names::MAX_PASSWORD_BYTES
    {
        let accounts = Arc::clone(&auth.accounts);
        let name = body.username.clone();
        blocking(move || {
            accounts
                .user_by_name(&name)
                .map_err(|e| ApiError(refusal(e)))
        })
        .await?
    } else {
        None
    };
    let active = user.filter(|u| !u.disabled && !u.deleted);
    let stored = active.as_ref().map(|u| u.password_hash.clone());
    // Always hash: unknown, disabled and deleted accounts take as long as a wrong password.
    let password = if body.password.len() <= tandem_accounts::names::MAX_PASSWORD_BYTES {
        body.password.as_str()
    } else {
        ""
    };
    let ok = auth.hashing.verify(&address, password, stored).await?;
    let Some(user) = active.filter(|_| ok) else {
        let at = now();
        auth.limiter.account_failures.hit(&key, at).await?;
        auth.limiter.address_failures.hit(&address, at).await?;
        return Err(api(
            ErrorCode::Unauthenticated,
            "wrong username or password",
        ));
    };
    auth.limiter.account_failures.clear(&key).await?;
    auth.ensure_inbox(&user.user.user_id).await?;
    let cookie = auth
        .new_session(user.user.user_id.clone(), &headers)
        .await?;
    Ok(with_cookie(
        Json(json!({ "user": user.user })).into_response(),
        Some(cookie),
    ))
}

/// `POST /api/auth/sign-out`: ends this session on the server (204 also when there was none).
pub async fn sign_out(
    State(auth): State<Arc<Auth>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(cookie) = auth.session_cookie(&headers) {
        let d = digest(&cookie);
        auth.with_accounts(move |accounts| accounts.end_session(&d))
            .await?;
    }
    Ok(with_cookie(
        StatusCode::NO_CONTENT.into_response(),
        auth.clear_cookie(),
    ))
}

/// `POST /api/auth/sign-out-everywhere`: every session of the account ends; their sockets
/// close at once.
pub async fn sign_out_everywhere(
    State(auth): State<Arc<Auth>>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiError> {
    let p = session_only(&caller)?;
    let user = p.user.user_id.clone();
    auth.with_accounts(move |accounts| accounts.end_sessions(&user))
        .await?;
    let user = p.user.user_id.clone();
    auth.hub.close_where(
        move |s| s.principal.user.user_id == user && !s.principal.is_token(),
        crate::live::CLOSE_UNAUTHENTICATED,
        "signed out everywhere",
    );
    Ok(with_cookie(
        StatusCode::NO_CONTENT.into_response(),
        auth.clear_cookie(),
    ))
}

/// `GET /api/auth/me`.
pub async fn me(
    State(auth): State<Arc<Auth>>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiError> {
    let p = signed(&caller)?;
    auth.ensure_inbox(&p.user.user_id).await?;
    let user = p.user.user_id.clone();
    let workspaces = auth
        .with_accounts(move |accounts| accounts.workspaces_of(&user))
        .await?;
    Ok(Json(json!({
        "user": p.user,
        "is_admin": p.is_admin,
        "workspaces": workspaces,
    }))
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordBody {
    old: String,
    new: String,
}

/// `POST /api/auth/password`: the old password, then the new; every other session and every
/// token of the account ends.
pub async fn change_password(
    State(auth): State<Arc<Auth>>,
    Extension(caller): Extension<Caller>,
    Extension(client): Extension<ClientIp>,
    JsonBody(body): JsonBody<PasswordBody>,
) -> Result<Response, ApiError> {
    let p = session_only(&caller)?;
    let address = address_key(client.0);
    let key = Limiter::account_key(&p.user.username, &address);
    if let Some(wait) = auth.limiter.account_failures.blocked(&key, now()).await? {
        return Err(rate_limited(wait, "wrong passwords"));
    }
    tandem_accounts::names::password(&body.new).map_err(|e| ApiError(refusal(e.into())))?;
    let user = p.user.user_id.clone();
    let record = auth
        .with_accounts(move |accounts| accounts.user_by_id(&user))
        .await?;
    let ok = auth
        .hashing
        .verify(&address, &body.old, record.map(|r| r.password_hash))
        .await?;
    if !ok {
        auth.limiter.account_failures.hit(&key, now()).await?;
        return Err(api(ErrorCode::Forbidden, "the old password is wrong"));
    }
    let hash = auth.hashing.hash(&address, &body.new).await?;
    let keep = match &p.credential {
        Credential::Session { session_id } => Some(session_id.clone()),
        Credential::Token { .. } => None,
    };
    let user = p.user.user_id.clone();
    auth.with_accounts(move |accounts| accounts.change_password(&user, &hash, keep.as_deref()))
        .await?;
    let user = p.user.user_id.clone();
    let current = p.credential.clone();
    auth.hub.close_where(
        move |s| s.principal.user.user_id == user && s.principal.credential != current,
        crate::live::CLOSE_UNAUTHENTICATED,
        "the password changed",
    );
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /api/auth/sessions`: the account's sessions with their last use (`current` marks this
/// one).
pub async fn sessions(
    State(auth): State<Arc<Auth>>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiError> {
    let p = session_only(&caller)?;
    let user = p.user.user_id.clone();
    let list = auth
        .with_accounts(move |accounts| accounts.sessions(&user, now()))
        .await?;
    let current = match &p.credential {
        Credential::Session { session_id } => session_id.clone(),
        Credential::Token { .. } => String::new(),
    };
    let list: Vec<_> = list
        .into_iter()
        .map(|s| {
            let mut v = json!(s);
            v["current"] = json!(s.session_id == current);
            v
        })
        .collect();
    Ok(Json(json!({ "sessions": list })).into_response())
}

/// `DELETE /api/auth/sessions/{session_id}`: ends one of the account's sessions.
pub async fn end_session(
    State(auth): State<Arc<Auth>>,
    Extension(caller): Extension<Caller>,
    Path(session_id): Path<String>,
) -> Result<Response, ApiError> {
    let p = session_only(&caller)?;
    let user = p.user.user_id.clone();
    let id = session_id.clone();
    let ended = auth
        .with_accounts(move |accounts| accounts.end_session_by_id(&user, &id))
        .await?;
    if !ended {
        return Err(api(ErrorCode::NotFound, "no such session of yours"));
    }
    close_sockets_of(
        &auth,
        Credential::Session { session_id },
        "the session was ended",
    );
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenBody {
    name: String,
    #[serde(default)]
    expires_in_s: Option<u64>,
}

/// `POST /api/auth/tokens` → 201 `{"token_id","token"}` (the token is shown once).
pub async fn create_token(
    State(auth): State<Arc<Auth>>,
    Extension(caller): Extension<Caller>,
    JsonBody(body): JsonBody<TokenBody>,
) -> Result<Response, ApiError> {
    let p = signed(&caller)?;
    if p.is_token() {
        return Err(api(ErrorCode::Forbidden, "a token cannot make tokens"));
    }
    let accounts = Arc::clone(&auth.accounts);
    let (token_id, token) =
        blocking(move || make_token(&*accounts, &p.user.user_id, &body.name, body.expires_in_s))
            .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "token_id": token_id, "token": token })),
    )
        .into_response())
}

/// Makes an API token for `user_id` (also `server token create`); returns its id and secret.
pub fn make_token(
    accounts: &dyn AccountStore,
    user_id: &str,
    name: &str,
    expires_in_s: Option<u64>,
) -> Result<(String, String), ApiError> {
    const MAX_EXPIRY_S: u64 = 10 * 365 * 24 * 60 * 60;
    let expires_at = match expires_in_s {
        Some(0) => return Err(api(ErrorCode::Malformed, "expires_in_s must be above 0")),
        Some(s) if s > MAX_EXPIRY_S => {
            return Err(api(
                ErrorCode::Malformed,
                "expires_in_s is at most ten years",
            ))
        }
        Some(s) => Some(now() + i64::try_from(s * 1_000).unwrap_or(i64::MAX)),
        None => None,
    };
    let token = secret::generate_token().map_err(internal)?;
    let token_id = uuid::Uuid::new_v4().to_string();
    accounts
        .create_token(user_id, &token_id, &digest(&token), name, expires_at, now())
        .map_err(|e| ApiError(refusal(e)))?;
    Ok((token_id, token))
}

/// `GET /api/auth/tokens`: the account's tokens (never their secrets).
pub async fn tokens(
    State(auth): State<Arc<Auth>>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiError> {
    let p = session_only(&caller)?;
    let list = auth
        .with_accounts(move |accounts| accounts.tokens(&p.user.user_id))
        .await?;
    Ok(Json(json!({ "tokens": list })).into_response())
}

/// `DELETE /api/auth/tokens/{token_id}`: the token ends and its sockets close.
pub async fn delete_token(
    State(auth): State<Arc<Auth>>,
    Extension(caller): Extension<Caller>,
    Path(token_id): Path<String>,
) -> Result<Response, ApiError> {
    let p = session_only(&caller)?;
    let id = token_id.clone();
    let deleted = auth
        .with_accounts(move |accounts| accounts.delete_token(&p.user.user_id, &id))
        .await?;
    if !deleted {
        return Err(api(ErrorCode::NotFound, "no such token of yours"));
    }
    close_sockets_of(
        &auth,
        Credential::Token { token_id },
        "the token was deleted",
    );
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteAccountBody {
    password: String,
}

/// `DELETE /api/auth/me` `{"password"}`: deletes the account (it leaves every workspace; one
/// it alone is in is deleted; LAST_OWNER if it is the last owner of a shared one). History
/// keeps its name.
pub async fn delete_account(
    State(auth): State<Arc<Auth>>,
    Extension(caller): Extension<Caller>,
    Extension(client): Extension<ClientIp>,
    JsonBody(body): JsonBody<DeleteAccountBody>,
) -> Result<Response, ApiError> {
    let p = session_only(&caller)?;
    let address = address_key(client.0);
    let user = p.user.user_id.clone();
    let record = auth
        .with_accounts(move |accounts| accounts.user_by_id(&user))
        .await?;
    if !auth
        .hashing
        .verify(&address, &body.password, record.map(|r| r.password_hash))
        .await?
    {
        return Err(api(ErrorCode::Forbidden, "the password is wrong"));
    }
    let user = p.user.user_id.clone();
    auth.with_accounts(move |accounts| accounts.delete_user(&user, now()))
        .await?;
    let user = p.user.user_id.clone();
    auth.hub.close_where(
        move |s| s.principal.user.user_id == user,
        crate::live::CLOSE_UNAUTHENTICATED,
        "the account was deleted",
    );
    Ok(with_cookie(
        StatusCode::NO_CONTENT.into_response(),
        auth.clear_cookie(),
    ))
}

/// A request whose credentials could not be checked: BUSY for the caller, who may be anyone,
/// so the accounts database's own words go to the log only.
fn unavailable(e: ApiError) -> Caller {
    tracing::warn!(why = %e.0.message, "cannot check a request's credentials");
    Caller::Unavailable("the accounts are not available; try again".into())
}
