//! The sync endpoints as server functions at fixed paths (CONTRACT.md, docs/protocol.md):
//! `POST /api/sync/push` and `POST /api/sync/pull`, JSON in and out. The arguments are the
//! request's JSON keys. Errors answer with the contract's status and `{"code", "message", ...}`
//! body; decode failures and oversized bodies, which Leptos reports as 500 before the body
//! runs, are mapped to 400/413 by the server's sync layer (server/src/sync_layer.rs).

use leptos::prelude::*;
use leptos::server_fn::codec::{Json, JsonEncoding};
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};
use tandem_protocol::sync::{ErrorCode, PullResponse, PushResponse, SyncError, WireEvent};

/// [`SyncError`] as a server function error (a local type, so the server_fn traits can be
/// implemented for it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(transparent)]
#[error(transparent)]
pub struct SyncFnError(pub SyncError);

impl FromServerFnError for SyncFnError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        let code = match &value {
            ServerFnErrorErr::Args(_)
            | ServerFnErrorErr::MissingArg(_)
            | ServerFnErrorErr::Deserialization(_) => ErrorCode::Malformed,
            _ => ErrorCode::Internal,
        };
        Self(SyncError::new(code, value.to_string()))
    }
}

/// Uploads events (docs/protocol.md, "Push").
#[server(endpoint = "sync/push", input = Json, output = Json)]
pub async fn push(
    device_id: String,
    workspace_id: String,
    cursor: u64,
    events: Vec<WireEvent>,
) -> Result<PushResponse, SyncFnError> {
    let request = tandem_protocol::sync::PushRequest {
        device_id,
        workspace_id,
        cursor,
        events,
    };
    let caller = ssr::caller();
    ssr::run(move |service| service.push(&caller, &request)).await
}

/// Downloads events after a cursor (docs/protocol.md, "Pull").
#[server(endpoint = "sync/pull", input = Json, output = Json)]
pub async fn pull(
    device_id: String,
    workspace_id: String,
    cursor: u64,
    limit: Option<u64>,
) -> Result<PullResponse, SyncFnError> {
    let request = tandem_protocol::sync::PullRequest {
        device_id,
        workspace_id,
        cursor,
        limit,
    };
    ssr::pull(ssr::caller(), request).await
}

#[cfg(feature = "ssr")]
pub mod ssr {
    //! The server side: the central log and its views behind [`Backend`] (SQLite in the data
    //! dir, or PostgreSQL for several processes: the server provides one), given as context.

    use std::sync::Arc;
    use std::time::Duration;

    use leptos::prelude::*;
    use tandem_accounts::access::{self, refusal};
    use tandem_accounts::{AccountStore, Caller};
    use tandem_events::ids::{AggregateId, DeviceId, EventId, WorkspaceId};
    use tandem_protocol::data::ListSnapshot;
    use tandem_protocol::sync::{
        ErrorCode, PullRequest, PullResponse, PushRequest, PushResponse, SyncError,
    };
    use tandem_store::central::busy;
    use tandem_store::{PushOutcome, Pusher, SyncLimits};
    use tokio::sync::Semaphore;

    use super::SyncFnError;

    /// Called after every push that stored events (the live broadcast, metrics).
    pub type Announce = Arc<dyn Fn(&PushOutcome) + Send + Sync>;

    /// The central log and the server's views, whichever database holds them. Every method
    /// blocks (SQLite is synchronous; PostgreSQL's are waited for on the calling thread): call
    /// them on a blocking thread. Every rule of DESIGN.md holds behind both.
    pub trait Backend: Send + Sync + 'static {
        /// The sync limits the log enforces.
        fn limits(&self) -> SyncLimits;
        /// The log's identity (a client that sees another one starts over).
        fn log_id(&self) -> String;
        /// Pulls read at once (the rest wait their turn, briefly).
        fn read_slots(&self) -> usize;
        /// A push by an account whose access is checked (DESIGN.md rule 13's log checks, all
        /// or nothing, acknowledged once durable).
        fn push_as(
            &self,
            request: &PushRequest,
            pusher: &Pusher<'_>,
        ) -> Result<PushOutcome, SyncError>;
        /// A pull's answer (access checked by the caller).
        fn pull(&self, request: &PullRequest, now: i64) -> Result<PullResponse, SyncError>;
        /// A workspace's head (0: no events).
        fn head(&self, workspace: WorkspaceId, now: i64) -> Result<u64, SyncError>;
        /// Every workspace that holds events, with its head.
        fn heads(&self) -> Result<Vec<(WorkspaceId, u64)>, SyncError>;
        /// A workspace's first list when it holds no events yet (a new account's Inbox),
        /// authored by the server and recorded as `user`'s.
        fn ensure_first_list(
            &self,
            workspace: WorkspaceId,
            name: &str,
            list_id: AggregateId,
            event_id: EventId,
            user: Option<&str>,
        ) -> Result<Option<AggregateId>, SyncError>;
        /// The workspace a list lives in, by the views.
        fn list_workspace(&self, list_id: &str) -> Result<Option<String>, SyncError>;
        /// What a server-rendered page shows of a workspace (and `list_id`, else its first
        /// list), with the checkpoint the views were at.
        fn snapshot(
            &self,
            workspace: WorkspaceId,
            list_id: Option<String>,
        ) -> Result<(ListSnapshot, u64), SyncError>;
        /// Brings the views up to the log (or leaves it to the process that is doing so).
        fn project(&self) -> Result<u64, SyncError>;
        /// Whether the databases answer (`/healthz`).
        fn check(&self) -> Result<(), String>;
    }

    /// What the sync server functions need, provided by the server as context.
    #[derive(Clone)]
    pub struct SyncService {
        /// The log and its views.
        pub backend: Arc<dyn Backend>,
        /// Pulls served or waiting (DESIGN.md rule 22): past it, BUSY.
        pulls: Arc<Semaphore>,
        /// One permit per read connection.
        reading: Arc<Semaphore>,
        announce: Announce,
        /// Who may touch which workspace (DESIGN.md rule 23).
        pub accounts: Arc<dyn AccountStore>,
        quotas: Quotas,
    }

    /// Per-account quotas (CONTRACT.md; 0: none, the default).
    #[derive(Debug, Clone, Copy, Default)]
    pub struct Quotas {
        pub events_per_day: u64,
        pub bytes: u64,
    }

    impl Quotas {
        fn applies(&self) -> bool {
            self.events_per_day > 0 || self.bytes > 0
        }
    }

    /// What the server made of the request's credentials (the `Caller` its front layer put in
    /// the request's extensions); anonymous when there is no request (never in the server).
    pub fn caller() -> Caller {
        use_context::<http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Caller>().cloned())
            .unwrap_or(Caller::Anonymous)
    }

    /// A push taking longer is logged, with where its time went (access checks, the log's
    /// transaction, the accounts' bookkeeping after it).
    const SLOW_PUSH: Duration = Duration::from_millis(100);

    /// How long a pull may wait for a read connection before it is answered BUSY.
    const READ_WAIT: Duration = Duration::from_secs(5);

    impl SyncService {
        pub fn new(
            backend: Arc<dyn Backend>,
            concurrent_pulls: usize,
            announce: Announce,
            accounts: Arc<dyn AccountStore>,
            quotas: Quotas,
        ) -> Self {
            let reading = Arc::new(Semaphore::new(backend.read_slots().max(1)));
            Self {
                backend,
                pulls: Arc::new(Semaphore::new(concurrent_pulls.max(1))),
                reading,
                announce,
                accounts,
                quotas,
            }
        }

        /// A push in DESIGN.md rule 13's order: transport (the ids parse, the event count),
        /// then access (a signed-in member who writes, on a device of this account), then the
        /// central log's checks — the quota after its idempotency check.
        pub fn push(
            &self,
            caller: &Caller,
            request: &PushRequest,
        ) -> Result<PushResponse, SyncError> {
            let began = std::time::Instant::now();
            let now = now();
            let workspace: WorkspaceId = request
                .workspace_id
                .parse()
                .map_err(|e| SyncError::new(ErrorCode::Malformed, format!("workspace_id: {e}")))?;
            let device: DeviceId = request
                .device_id
                .parse()
                .map_err(|e| SyncError::new(ErrorCode::Malformed, format!("device_id: {e}")))?;
            let limit = self.backend.limits().events_per_push;
            if request.events.len() > limit {
                return Err(SyncError::new(
                    ErrorCode::TooLarge,
                    format!(
                        "{} events in one push; at most {limit} are accepted",
                        request.events.len()
                    ),
                ));
            }
            let (principal, _) = access::writer(&*self.accounts, caller, &workspace.to_string())?;
            let user = principal.user.user_id.as_str();
            // A device id is its first pusher's: another account's is refused here; it is
            // bound once a push of it stores events (an empty push binds nothing).
            if let Some(owner) = self
                .accounts
                .device_owner(&device.to_string())
                .map_err(refusal)?
            {
                if owner != user {
                    return Err(SyncError::new(
                        ErrorCode::Forbidden,
                        format!("device {device} belongs to another account"),
                    ));
                }
            }
            let day = now.div_euclid(24 * 60 * 60 * 1_000);
            // While a quota applies, an account's pushes take turns (in every process) from
            // reading its usage to recording it, so two of them cannot both pass the quota on
            // the same usage; the usage is read before the push (the log's check runs inside
            // its transaction, where the accounts cannot be waited for).
            let (_turn, usage) = match self.quotas.applies() {
                true => {
                    let turn = self.accounts.quota_turn(user).map_err(refusal)?;
                    (Some(turn), self.accounts.usage(user, day).map_err(refusal)?)
                }
                false => (None, (0, 0)),
            };
            let quota = |events: usize, bytes: usize| self.check_quota(usage, day, events, bytes);
            let checked = began.elapsed();
            let outcome = self.backend.push_as(
                request,
                &Pusher {
                    user: Some(user),
                    quota: Some(&quota),
                },
            )?;
            // The pusher's name goes with the answer and with the live message. The events
            // are stored: they are announced now, whatever happens to the rest of the request.
            let mut outcome = outcome;
            outcome.response.pusher = Some(tandem_protocol::sync::Person {
                user_id: principal.user.user_id.clone(),
                username: principal.user.username.clone(),
            });
            self.announce(&outcome);
            let logged = began.elapsed();
            if !outcome.appended.is_empty() {
                self.accounts
                    .bind_device(&device.to_string(), user, now)
                    .map_err(refusal)?;
                let bytes: usize = outcome
                    .appended
                    .iter()
                    .map(|e| e.event.event_data.to_string().len())
                    .sum();
                if let Err(e) =
                    self.accounts
                        .add_usage(user, day, outcome.appended.len() as i64, bytes as i64)
                {
                    tracing::warn!(error = %e, "cannot record the account's usage");
                }
            }
            drop(_turn);
            let took = began.elapsed();
            if took > SLOW_PUSH {
                tracing::warn!(
                    took_ms = took.as_millis() as u64,
                    access_ms = checked.as_millis() as u64,
                    log_ms = (logged - checked).as_millis() as u64,
                    accounts_ms = (took - logged).as_millis() as u64,
                    events = request.events.len(),
                    "a slow push"
                );
            }
            Ok(outcome.response)
        }

        /// Whether `events` more events of `bytes` fit the quotas, the account having stored
        /// `usage` (events today, bytes in all).
        fn check_quota(
            &self,
            usage: (i64, i64),
            day: i64,
            events: usize,
            bytes: usize,
        ) -> Result<(), SyncError> {
            let Quotas {
                events_per_day,
                bytes: max_bytes,
            } = self.quotas;
            if events == 0 || (events_per_day == 0 && max_bytes == 0) {
                return Ok(());
            }
            let (today, stored) = usage;
            let over_events = events_per_day > 0
                && (today.max(0) as u64).saturating_add(events as u64) > events_per_day;
            let over_bytes =
                max_bytes > 0 && (stored.max(0) as u64).saturating_add(bytes as u64) > max_bytes;
            if over_events || over_bytes {
                let mut e = SyncError::new(
                    ErrorCode::QuotaExceeded,
                    if over_events {
                        format!("this account may store {events_per_day} events a day")
                    } else {
                        format!("this account may store {max_bytes} bytes of events")
                    },
                );
                // The events quota resets at midnight UTC.
                let next_day = (day + 1) * 24 * 60 * 60 * 1_000;
                e.retry_after_ms =
                    Some(u32::try_from((next_day - now()).max(1_000)).unwrap_or(u32::MAX));
                return Err(e);
            }
            Ok(())
        }

        pub fn announce(&self, outcome: &PushOutcome) {
            if !outcome.appended.is_empty() {
                (self.announce)(outcome);
            }
        }
    }

    fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }

    /// A pull, through a read-only connection: at most `concurrent_pulls` at once (more are
    /// BUSY at once), each waiting at most [`READ_WAIT`] for a connection.
    pub async fn pull(caller: Caller, request: PullRequest) -> Result<PullResponse, SyncFnError> {
        let Some(service) = use_context::<SyncService>() else {
            return answer(Err(SyncError::new(
                ErrorCode::Internal,
                "the sync service is not running",
            )));
        };
        // Transport, then access (rule 13), before anything is read.
        let accounts = Arc::clone(&service.accounts);
        let checked = tokio::task::spawn_blocking(move || {
            pull_access(&*accounts, &caller, &request).map(|()| request)
        })
        .await
        .unwrap_or_else(|e| {
            Err(SyncError::new(
                ErrorCode::Internal,
                format!("the access check failed: {e}"),
            ))
        });
        let request = match checked {
            Ok(request) => request,
            Err(e) => return answer(Err(e)),
        };
        let Ok(_queued) = Arc::clone(&service.pulls).try_acquire_owned() else {
            return answer(Err(busy("too many pulls at once", now())));
        };
        let reading =
            tokio::time::timeout(READ_WAIT, Arc::clone(&service.reading).acquire_owned()).await;
        let Ok(Ok(permit)) = reading else {
            return answer(Err(busy("no read connection came free in time", now())));
        };
        let backend = Arc::clone(&service.backend);
        let accounts = Arc::clone(&service.accounts);
        let result = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let mut response = backend.pull(&request, now())?;
            // The names of the accounts the page's events name.
            let mut ids: Vec<String> = response
                .events
                .iter()
                .filter_map(|e| e.user_id.clone())
                .collect();
            ids.sort();
            ids.dedup();
            if !ids.is_empty() {
                response.people = accounts
                    .usernames(&ids)
                    .map_err(refusal)?
                    .into_iter()
                    .map(|u| tandem_protocol::sync::Person {
                        user_id: u.user_id,
                        username: u.username,
                    })
                    .collect();
            }
            Ok(response)
        })
        .await
        .unwrap_or_else(|e| {
            Err(SyncError::new(
                ErrorCode::Internal,
                format!("the pull task failed: {e}"),
            ))
        });
        answer(result)
    }

    /// A pull's transport and access checks: the ids parse; the caller is a member; the device
    /// is not another account's.
    fn pull_access(
        accounts: &dyn AccountStore,
        caller: &Caller,
        request: &PullRequest,
    ) -> Result<(), SyncError> {
        let workspace: WorkspaceId = request
            .workspace_id
            .parse()
            .map_err(|e| SyncError::new(ErrorCode::Malformed, format!("workspace_id: {e}")))?;
        let device: DeviceId = request
            .device_id
            .parse()
            .map_err(|e| SyncError::new(ErrorCode::Malformed, format!("device_id: {e}")))?;
        let (principal, _) = access::member(accounts, caller, &workspace.to_string())?;
        match accounts
            .device_owner(&device.to_string())
            .map_err(refusal)?
        {
            Some(owner) if owner != principal.user.user_id => Err(SyncError::new(
                ErrorCode::Forbidden,
                format!("device {device} belongs to another account"),
            )),
            _ => Ok(()),
        }
    }

    /// Runs `f` on a blocking thread (SQLite is synchronous) and turns its error into the
    /// contract's answer: status code from the error code, JSON body.
    pub async fn run<T: Send + 'static>(
        f: impl FnOnce(&SyncService) -> Result<T, SyncError> + Send + 'static,
    ) -> Result<T, SyncFnError> {
        let service = use_context::<SyncService>()
            .ok_or_else(|| SyncError::new(ErrorCode::Internal, "the sync service is not running"));
        let result = match service {
            Ok(service) => tokio::task::spawn_blocking(move || f(&service))
                .await
                .unwrap_or_else(|e| {
                    Err(SyncError::new(
                        ErrorCode::Internal,
                        format!("the sync task failed: {e}"),
                    ))
                }),
            Err(e) => Err(e),
        };
        answer(result)
    }

    /// The contract's answer: an error's status from its code, a JSON body (and `Retry-After`
    /// for BUSY). Internal errors are logged with their cause.
    fn answer<T>(result: Result<T, SyncError>) -> Result<T, SyncFnError> {
        result.map_err(|mut e| {
            if e.server_time_ms.is_none() {
                e.server_time_ms = Some(now());
            }
            if e.code == ErrorCode::Internal {
                tracing::error!(message = %e.message, "a sync request failed inside the server");
            }
            if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
                if let Ok(status) = http::StatusCode::from_u16(e.code.status()) {
                    response.set_status(status);
                }
                response.insert_header(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/json"),
                );
                if let Some(ms) = e.retry_after_ms {
                    let seconds = ms.div_ceil(1_000).max(1).to_string();
                    if let Ok(value) = http::HeaderValue::from_str(&seconds) {
                        response.insert_header(http::header::RETRY_AFTER, value);
                    }
                }
            }
            SyncFnError(e)
        })
    }
}
