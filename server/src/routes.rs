//! The HTTP surface: `/healthz`, the Leptos pages and server functions, static files.

use std::sync::Arc;
use std::time::Duration;

use app::sync::ssr::{Backend, SyncService};
use app::{shell, App, OUTPUT_NAME};
use axum::extract::{DefaultBodyLimit, FromRef, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use leptos::config::LeptosOptions;
use leptos::prelude::{provide_context, use_context};
use leptos_axum::{generate_route_list, LeptosRoutes};
use serde_json::json;
use tower_http::compression::CompressionLayer;
use tower_http::trace::TraceLayer;

use crate::auth::{self, Auth};
use crate::files::SiteFiles;
use crate::live::{self, Hub, LiveState};
use crate::metrics::{self, Metrics};
use crate::pwa::Pwa;
use crate::{guard, sync_layer, workspaces, Config, Databases};

#[derive(Clone)]
pub struct AppState {
    pub leptos: LeptosOptions,
    pub files: Arc<SiteFiles>,
    /// The URLs pages name the page's files by.
    pub page_urls: app::SiteUrls,
    pub pwa: Arc<Pwa>,
    pub databases: Databases,
    pub live: LiveState,
    pub auth: Arc<Auth>,
}

impl FromRef<AppState> for Arc<Auth> {
    fn from_ref(state: &AppState) -> Self {
        Arc::clone(&state.auth)
    }
}

impl FromRef<AppState> for LiveState {
    fn from_ref(state: &AppState) -> Self {
        state.live.clone()
    }
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos.clone()
    }
}

/// Keeps the server's views caught up with the log off the push path: woken after each push
/// that stored events (here, or on PostgreSQL in any process), it waits a moment so that one
/// catch-up covers a burst of pushes; and every few seconds anyway (on PostgreSQL another
/// process may have held the projector's lock when this one was woken, and then stopped).
#[derive(Clone)]
pub struct Projector {
    wake: Arc<tokio::sync::Notify>,
}

impl Projector {
    const DEBOUNCE: Duration = Duration::from_millis(200);
    const EVERY: Duration = Duration::from_secs(5);

    pub fn start(backend: &Arc<dyn Backend>) -> Self {
        let wake = Arc::new(tokio::sync::Notify::new());
        let woken = Arc::clone(&wake);
        // Weak: the projector must not keep the databases open after the server stops.
        let backend = Arc::downgrade(backend);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = woken.notified() => tokio::time::sleep(Self::DEBOUNCE).await,
                    () = tokio::time::sleep(Self::EVERY) => {}
                }
                let Some(backend) = backend.upgrade() else {
                    return;
                };
                match tokio::task::spawn_blocking(move || backend.project()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => {
                        tracing::error!(error = %e.message, "projecting the views failed")
                    }
                    Err(e) => tracing::error!(error = %e, "the projector crashed"),
                }
            }
        });
        Self { wake }
    }

    fn wake(&self) {
        self.wake.notify_one();
    }

    /// What wakes it (the PostgreSQL heads listener holds one).
    pub fn waker(&self) -> Arc<tokio::sync::Notify> {
        Arc::clone(&self.wake)
    }
}

/// Anything else: a site file (GET or HEAD), else the page for that path (the app's "Not
/// found", with its status).
async fn files_or_page(
    State(state): State<AppState>,
    request: axum::extract::Request,
) -> axum::response::Response {
    let method = request.method().clone();
    if method == axum::http::Method::GET || method == axum::http::Method::HEAD {
        let head = method == axum::http::Method::HEAD;
        if let Some(response) = state.files.respond(
            request.uri().path(),
            request.uri().query(),
            request.headers(),
            head,
        ) {
            return response;
        }
    }
    let urls = state.page_urls.clone();
    let render = leptos_axum::render_app_to_stream_with_context(provide_page_nonce, move || {
        shell(urls.clone())
    });
    render(request).await.into_response()
}

/// The page routes, generated once per process. Generating runs the app with resource loads
/// suppressed through a process-wide flag, and a resource first polled by a render meanwhile
/// (another server in the same process, as in the tests) would never load
/// (leptos-rs/leptos#4773). The list is static, so once is all it needs.
fn route_list() -> Vec<leptos_axum::AxumRouteListing> {
    static ROUTES: std::sync::OnceLock<Vec<leptos_axum::AxumRouteListing>> =
        std::sync::OnceLock::new();
    ROUTES.get_or_init(|| generate_route_list(App)).clone()
}

pub fn router(
    config: &Config,
    databases: Databases,
    hub: Arc<Hub>,
    auth: Arc<Auth>,
    files: SiteFiles,
    projector: Projector,
) -> Router {
    let metrics = Metrics::new(Arc::clone(&hub));
    let leptos = LeptosOptions::builder()
        .output_name(OUTPUT_NAME)
        .site_root(config.site_root.display().to_string())
        .site_pkg_dir("pkg")
        .site_addr(config.addr)
        .env(leptos::config::Env::PROD)
        .build();
    let announce_hub = Arc::clone(&hub);
    let announce_metrics = Arc::clone(&metrics);
    let sync = SyncService::new(
        Arc::clone(&databases.backend),
        config.limits.concurrent_pulls,
        Arc::new(move |outcome| {
            projector.wake();
            tracing::debug!(
                workspace = %outcome.workspace,
                head = outcome.response.head,
                appended = outcome.appended.len(),
                "push stored events"
            );
            announce_metrics
                .events_appended
                .inc_by(outcome.appended.len() as u64);
            // Every appended event is the pusher's: its name goes with them.
            let pusher: Vec<_> = outcome.response.pusher.iter().cloned().collect();
            announce_hub.publish(
                outcome.workspace,
                outcome.response.head,
                &outcome.appended,
                &pusher,
            );
        }),
        Arc::clone(&databases.accounts),
        app::sync::ssr::Quotas {
            events_per_day: config.limits.quota_events_per_day,
            bytes: config.limits.quota_bytes,
        },
    );
    let backend = Arc::clone(&databases.backend);
    let live = LiveState {
        hub,
        accounts: Arc::clone(&databases.accounts),
        per_account: config.limits.live_sockets_per_account,
        head: Arc::new(move |workspace| {
            let now = i64::try_from(crate::databases::now_ms()).unwrap_or(i64::MAX);
            backend
                .head(workspace, now)
                .map(|head| (head, backend.log_id()))
        }),
    };
    let pwa = Arc::new(Pwa::new(&files));
    let state = AppState {
        leptos,
        page_urls: crate::pwa::page_urls(&files),
        files: Arc::new(files),
        pwa,
        databases,
        live,
        auth: Arc::clone(&auth),
    };
    let routes = route_list();
    Router::new()
        .route("/healthz", get(healthz))
        .route(
            "/sw.js",
            get(|State(state): State<AppState>| async move { state.pwa.service_worker() }),
        )
        .route(
            crate::pwa::SHELL_PATH,
            get(|State(state): State<AppState>| async move { state.pwa.shell() }),
        )
        .route(
            crate::pwa::MOUNT_PATH,
            get(|State(state): State<AppState>| async move { state.pwa.mount() }),
        )
        .route(
            crate::pwa::WORKER_PATH,
            get(|State(state): State<AppState>| async move { state.pwa.worker() }),
        )
        .route("/api/sync/live", get(live::upgrade))
        .route("/api/doctor", get(crate::doctor::seen))
        .route("/api/auth/sign-up", post(auth::sign_up))
        .route("/api/auth/sign-in", post(auth::sign_in))
        .route("/api/auth/sign-out", post(auth::sign_out))
        .route(
            "/api/auth/sign-out-everywhere",
            post(auth::sign_out_everywhere),
        )
        .route("/api/auth/me", get(auth::me).delete(auth::delete_account))
        .route("/api/auth/password", post(auth::change_password))
        .route("/api/auth/sessions", get(auth::sessions))
        .route("/api/auth/sessions/{session_id}", delete(auth::end_session))
        .route(
            "/api/auth/tokens",
            get(auth::tokens).post(auth::create_token),
        )
        .route("/api/auth/tokens/{token_id}", delete(auth::delete_token))
        .route("/api/workspaces", post(workspaces::create))
        .route(
            "/api/workspaces/{id}",
            axum::routing::patch(workspaces::rename).delete(workspaces::delete),
        )
        .route(
            "/api/workspaces/{id}/invites",
            get(workspaces::invites).post(workspaces::create_invite),
        )
        .route(
            "/api/workspaces/{id}/invites/{invite}",
            delete(workspaces::revoke_invite),
        )
        .route("/api/workspaces/{id}/members", get(workspaces::members))
        .route(
            "/api/workspaces/{id}/members/{user_id}",
            axum::routing::patch(workspaces::set_role).delete(workspaces::remove_member),
        )
        .route("/api/invites/{token}", get(workspaces::show_invite))
        .route(
            "/api/invites/{token}/accept",
            post(workspaces::accept_invite),
        )
        .method_not_allowed_fallback(method_not_allowed)
        .leptos_routes_with_context(
            &state,
            routes,
            move || {
                provide_context(sync.clone());
                provide_page_nonce();
            },
            {
                let urls = state.page_urls.clone();
                move || shell(urls.clone())
            },
        )
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&metrics),
            metrics::track,
        ))
        .route(
            "/metrics",
            get(metrics::handler).with_state(Arc::clone(&metrics)),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&auth),
            metrics_gate,
        ))
        .fallback(files_or_page)
        .layer(axum::middleware::from_fn_with_state(
            sync_layer::Guard {
                body_limit: config.limits.push_body_bytes,
                metrics,
            },
            sync_layer::guard,
        ))
        // The sync layer enforces the configured limit; the extractor's own 2 MiB default
        // would otherwise refuse bodies the contract allows.
        .layer(DefaultBodyLimit::max(config.limits.push_body_bytes))
        .layer(CompressionLayer::new())
        .layer(axum::middleware::from_fn_with_state(
            Duration::from_millis(config.limits.request_timeout_ms),
            crate::http::time_limit,
        ))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&auth),
            guard::front,
        ))
        // Request paths in logs with invite and setup tokens cut out.
        .layer(TraceLayer::new_for_http().make_span_with(
            |request: &axum::http::Request<axum::body::Body>| {
                tracing::debug_span!(
                    "request",
                    method = %request.method(),
                    path = %guard::redacted_path(request.uri().path()),
                )
            },
        ))
        .with_state(state)
}

/// A known path asked with a method it does not take: 405 in the contract's shape.
async fn method_not_allowed() -> axum::response::Response {
    let mut response = crate::errors::error(tandem_protocol::sync::SyncError::new(
        tandem_protocol::sync::ErrorCode::Malformed,
        "this path does not take that method",
    ));
    *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    response
}

/// `/metrics` answers the `--metrics-token` (as a Bearer token) or, with no proxy trusted,
/// any request from loopback.
async fn metrics_gate(
    State(auth): State<Arc<Auth>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if request.uri().path() != "/metrics" {
        return next.run(request).await;
    }
    let bearer = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let by_token = matches!((&auth.metrics_token, bearer), (Some(t), Some(b)) if constant_eq(t, b));
    let local = !auth.site.behind_proxy()
        && request
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .is_some_and(|c| c.0.ip().is_loopback());
    if by_token || local {
        return next.run(request).await;
    }
    crate::errors::error(tandem_protocol::sync::SyncError::new(
        tandem_protocol::sync::ErrorCode::Unauthenticated,
        "/metrics needs the metrics token (Authorization: Bearer ...)",
    ))
}

/// Compares secrets in time independent of where they differ.
fn constant_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// 200 when both databases answer; 503 with the contract's error shape otherwise. Anyone may
/// ask, so the answer says only that they do not answer: the database's own words (a file's
/// path, a database's or role's name, a host) go to the server's log.
async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    let databases = state.databases.clone();
    let checked = tokio::time::timeout(
        HEALTH_WAIT,
        tokio::task::spawn_blocking(move || databases.check()),
    )
    .await;
    let why = match checked {
        Ok(Ok(Ok(()))) => return (StatusCode::OK, Json(json!({"status": "ok"}))),
        Ok(Ok(Err(e))) => e.to_string(),
        Ok(Err(e)) => format!("the health check crashed: {e}"),
        Err(_) => format!("the databases did not answer within {HEALTH_WAIT:?}"),
    };
    tracing::warn!(why = %why, "the health check failed");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({
            "code": "UNAVAILABLE",
            "message": "the databases are not available; the server's log says why",
        })),
    )
}

/// How long `/healthz` waits for the databases to answer.
const HEALTH_WAIT: Duration = Duration::from_secs(5);

/// The page's script nonce is the one the front layer minted for this request (and names in
/// the Content-Security-Policy header), not one of the renderer's own.
fn provide_page_nonce() {
    let nonce = use_context::<axum::http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<crate::guard::PageNonce>().cloned());
    if let Some(crate::guard::PageNonce(nonce)) = nonce {
        provide_context(leptos::nonce::Nonce::from_value(nonce));
    }
}
