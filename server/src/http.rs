//! Accepting and serving HTTP connections (instead of `axum::serve`, which sets no timer, so
//! hyper's header-read timeout never runs): every connection gets a timeout for reading a
//! request's headers — which also closes a keep-alive connection idle that long — and requests
//! get a time limit (DESIGN.md rule 22). WebSocket upgrades are served; shutdown is graceful.

use std::future::Future;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tandem_protocol::sync::{ErrorCode, SyncError};
use tokio::net::TcpListener;
use tower::ServiceExt;

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting and waits for
/// open connections to finish (the caller bounds that wait). `header_read_timeout`: how long a
/// client may take to send a request's headers, and a keep-alive connection may sit idle.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    header_read_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: wait a moment, keep serving.
                        tracing::warn!(error = %e, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let service = TowerToHyperService::new(
                    router
                        .clone()
                        .map_request(move |request: Request<Incoming>| {
                            let mut request = request.map(Body::new);
                            // The peer's address, for the client address of rate limits.
                            request
                                .extensions_mut()
                                .insert(axum::extract::ConnectInfo(peer));
                            request
                        }),
                );
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    // hyper's header-read timer starts once it knows the protocol: a client
                    // that connects and says nothing is cut here.
                    let mut first = [0u8; 1];
                    match tokio::time::timeout(header_read_timeout, stream.peek(&mut first)).await {
                        Ok(Ok(n)) if n > 0 => {}
                        _ => return,
                    }
                    // HTTP/1 only: browsers speak HTTP/2 only over TLS, which a reverse proxy
                    // in front ends; h2c would come without these time limits.
                    let mut builder = Builder::new(TokioExecutor::new()).http1_only();
                    builder
                        .http1()
                        .timer(TokioTimer::new())
                        .header_read_timeout(header_read_timeout);
                    let connection = builder
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .into_owned();
                    if let Err(e) = watcher.watch(connection).await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Answers 408 (in the contract's error shape) when a request takes longer than `limit`, e.g.
/// a body that trickles in forever. (A WebSocket's life is not a request's: the upgrade
/// answers at once.)
pub async fn time_limit(
    axum::extract::State(limit): axum::extract::State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            let mut response = crate::errors::error(SyncError::new(
                ErrorCode::Malformed,
                format!(
                    "the request was not complete within {} ms",
                    limit.as_millis()
                ),
            ));
            *response.status_mut() = axum::http::StatusCode::REQUEST_TIMEOUT;
            response
        }
    }
}
