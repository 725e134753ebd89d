//! `GET /metrics`: Prometheus text format (prometheus-client): events appended, pushes by
//! result (accepted or the error code), pulls, connected WebSocket clients, and request
//! latencies by route.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::live::Hub;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: String,
    pub method: String,
}

pub struct Metrics {
    registry: Registry,
    pub events_appended: Counter,
    pub pushes: Family<ResultLabel, Counter>,
    pub pulls: Family<ResultLabel, Counter>,
    websocket_clients: Gauge,
    live_channels: Gauge,
    latency: Family<RouteLabel, Histogram>,
    hub: Arc<Hub>,
}

impl Metrics {
    pub fn new(hub: Arc<Hub>) -> Arc<Self> {
        let mut registry = Registry::with_prefix("tandem");
        let events_appended = Counter::default();
        registry.register(
            "events_appended",
            "Events stored in the central log",
            events_appended.clone(),
        );
        let pushes = Family::<ResultLabel, Counter>::default();
        registry.register(
            "pushes",
            "Sync pushes by result (accepted or the error code)",
            pushes.clone(),
        );
        let pulls = Family::<ResultLabel, Counter>::default();
        registry.register(
            "pulls",
            "Sync pulls by result (ok or the error code)",
            pulls.clone(),
        );
        let websocket_clients = Gauge::default();
        registry.register(
            "websocket_clients",
            "Connected live WebSocket clients",
            websocket_clients.clone(),
        );
        let live_channels = Gauge::default();
        registry.register(
            "live_channels",
            "Broadcast channels of workspaces with live sockets",
            live_channels.clone(),
        );
        let latency = Family::<RouteLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
        });
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route and method",
            latency.clone(),
        );
        Arc::new(Self {
            registry,
            events_appended,
            pushes,
            pulls,
            websocket_clients,
            live_channels,
            latency,
            hub,
        })
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        self.websocket_clients.set(self.hub.clients());
        self.live_channels
            .set(i64::try_from(self.hub.channels()).unwrap_or(i64::MAX));
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    /// Counts a sync answer by its result.
    pub fn count_sync(&self, path: &str, result: &str) {
        let label = ResultLabel {
            result: result.to_string(),
        };
        match path {
            "/api/sync/push" => self.pushes.get_or_create(&label).inc(),
            "/api/sync/pull" => self.pulls.get_or_create(&label).inc(),
            _ => 0,
        };
    }
}

pub async fn handler(State(metrics): State<Arc<Metrics>>) -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.render(),
    )
        .into_response()
}

/// Records each request's latency under its route template (bounded label values).
pub async fn track(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "other".to_string());
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    metrics
        .latency
        .get_or_create(&RouteLabel { route, method })
        .observe(started.elapsed().as_secs_f64());
    response
}
