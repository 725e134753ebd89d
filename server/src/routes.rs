//! The HTTP surface: `/healthz`, the Leptos pages and server functions, static files.

use std::sync::Arc;
use std::time::Duration;

use app::sync::ssr::SyncService;
use app::{shell, App, OUTPUT_NAME};
use axum::extract::{DefaultBodyLimit, FromRef, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use leptos::config::LeptosOptions;
use leptos::prelude::provide_context;
use leptos_axum::{generate_route_list, LeptosRoutes};
use serde_json::json;
use tower_http::compression::CompressionLayer;
use tower_http::trace::TraceLayer;

use crate::live::{self, Hub, LiveState};
use crate::metrics::{self, Metrics};
use crate::{sync_layer, Config, Databases};

#[derive(Clone)]
pub struct AppState {
    pub leptos: LeptosOptions,
    pub databases: Databases,
    pub live: LiveState,
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
/// that stored events, it waits a moment so that one catch-up covers a burst of pushes.
#[derive(Clone)]
struct Projector {
    wake: Arc<tokio::sync::Notify>,
}

impl Projector {
    const DEBOUNCE: Duration = Duration::from_millis(200);

    fn start(databases: &Databases) -> Self {
        let wake = Arc::new(tokio::sync::Notify::new());
        let woken = Arc::clone(&wake);
        // Weak: the projector must not keep the databases open after the server stops.
        let views = Arc::downgrade(&databases.views);
        tokio::spawn(async move {
            loop {
                woken.notified().await;
                tokio::time::sleep(Self::DEBOUNCE).await;
                let Some(views) = views.upgrade() else { return };
                let done = tokio::task::spawn_blocking(move || {
                    let mut views = views
                        .lock()
                        .map_err(|_| "the projector panicked".to_string())?;
                    views.project().map_err(|e| e.to_string())
                })
                .await;
                match done {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::error!(error = %e, "projecting the views failed"),
                    Err(e) => tracing::error!(error = %e, "the projector crashed"),
                }
            }
        });
        Self { wake }
    }

    fn wake(&self) {
        self.wake.notify_one();
    }
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

pub fn router(config: &Config, databases: Databases, hub: Arc<Hub>) -> Router {
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
    let projector = Projector::start(&databases);
    let sync = SyncService::new(
        Arc::clone(&databases.central),
        Arc::clone(&databases.views),
        Arc::clone(&databases.readers),
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
            announce_hub.publish(outcome.workspace, outcome.response.head, &outcome.appended);
        }),
    );
    let readers = Arc::clone(&databases.readers);
    let live = LiveState {
        hub,
        head: Arc::new(move |workspace| {
            let now = i64::try_from(crate::databases::now_ms()).unwrap_or(i64::MAX);
            readers
                .head(workspace, now)
                .map(|head| (head, readers.log_id().to_string()))
        }),
    };
    let state = AppState {
        leptos,
        databases,
        live,
    };
    let routes = route_list();
    Router::new()
        .route("/healthz", get(healthz))
        .route("/api/sync/live", get(live::upgrade))
        .leptos_routes_with_context(&state, routes, move || provide_context(sync.clone()), {
            let options = state.leptos.clone();
            move || shell(options.clone())
        })
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&metrics),
            metrics::track,
        ))
        .route(
            "/metrics",
            get(metrics::handler).with_state(Arc::clone(&metrics)),
        )
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
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
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// 200 when both databases answer; 503 with the contract's error shape otherwise.
async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    let databases = state.databases.clone();
    let checked = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::task::spawn_blocking(move || databases.check()),
    )
    .await;
    match checked {
        Ok(Ok(Ok(()))) => (StatusCode::OK, Json(json!({"status": "ok"}))),
        Ok(Ok(Err(e))) => unavailable(e.to_string()),
        Ok(Err(e)) => unavailable(format!("health check crashed: {e}")),
        Err(_) => unavailable("the databases did not answer within 5 s".into()),
    }
}

fn unavailable(message: String) -> (StatusCode, Json<serde_json::Value>) {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"code": "UNAVAILABLE", "message": message})),
    )
}
