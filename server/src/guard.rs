//! The front of every request (CONTRACT.md "Access answers"; DESIGN.md rule 23), in order:
//! 1. the Host check: a Host that is neither the public URL's nor a loopback name is 421
//!    (a page on another name that resolves here — DNS rebinding — reads nothing);
//! 2. the Origin check: a state-changing request (any method but GET/HEAD/OPTIONS) or a
//!    WebSocket upgrade whose Origin is not the site's own is 403 FORBIDDEN; one with no
//!    Origin comes from no browser page and passes (command-line clients, scripts);
//! 3. JSON only: a body sent to `/api/` must say `Content-Type: application/json` (a form
//!    post from another site cannot reach a server function);
//! 4. credentials: the session cookie or a Bearer token becomes a [`Caller`] in the request's
//!    extensions, which every handler and server function checks;
//! 5. on the way out, security headers on every response.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use tandem_accounts::Caller;
use tandem_protocol::sync::{ErrorCode, SyncError};

use crate::auth::Auth;
use crate::errors::error;

/// The nonce of a page's inline scripts, minted here for each page request (a request
/// extension): the server functions' renderer takes it as the page's nonce (`routes.rs`) and
/// the Content-Security-Policy header names it on the way out. Minted and sent by this layer,
/// the header never depends on the renderer's response options reaching the response (a page
/// once came without it and never hydrated: its hydration script was refused).
#[derive(Debug, Clone)]
pub struct PageNonce(pub String);

/// The client's address as the rate limits and logs see it (a request extension).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<std::net::IpAddr>);

pub async fn front(State(auth): State<Arc<Auth>>, mut request: Request, next: Next) -> Response {
    let site = &auth.site;
    let headers = request.headers();
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    if !site.host_allowed(host) {
        return with_headers(
            error(SyncError::new(
                ErrorCode::MisdirectedRequest,
                "this server does not answer for that host name: set --public-url to the name people use",
            )),
            None,
            false,
        );
    }
    let upgrade = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let changes = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if changes || upgrade {
        if let Some(origin) = headers.get(header::ORIGIN) {
            let own = origin
                .to_str()
                .is_ok_and(|origin| site.own_origin(origin, host));
            if !own {
                return with_headers(
                    error(SyncError::new(
                        ErrorCode::Forbidden,
                        "a request from another site's page is refused",
                    )),
                    None,
                    true,
                );
            }
        }
    }
    let path = request.uri().path().to_string();
    if changes && path.starts_with("/api/") && has_body(headers) && !is_json(headers) {
        return with_headers(
            error(SyncError::new(
                ErrorCode::Malformed,
                "the API takes JSON bodies only (Content-Type: application/json)",
            )),
            None,
            true,
        );
    }
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let client = site.client_ip(peer, request.headers());
    request.extensions_mut().insert(ClientIp(client));
    let is_page = !is_asset(&path);
    let mut refreshed = None;
    if is_page {
        let (caller, refresh) = auth.authenticate(request.headers()).await;
        refreshed = refresh;
        request.extensions_mut().insert(caller);
    } else {
        request.extensions_mut().insert(Caller::Anonymous);
    }
    let api = path.starts_with("/api/");
    let nonce = (is_page && !api).then(|| leptos::nonce::Nonce::new().to_string());
    if let Some(nonce) = &nonce {
        request.extensions_mut().insert(PageNonce(nonce.clone()));
    }
    let mut response = next.run(request).await;
    if let Some(nonce) = nonce {
        if let Ok(v) = HeaderValue::from_str(&app::content_security_policy(Some(&nonce))) {
            response
                .headers_mut()
                .insert(header::CONTENT_SECURITY_POLICY, v);
        }
    }
    with_headers(response, refreshed, api || is_page)
}

/// Whether a request carries a body.
fn has_body(headers: &HeaderMap) -> bool {
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match length {
        Some(n) => n > 0,
        None => headers.contains_key(header::TRANSFER_ENCODING),
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

/// Static files: no credentials needed or looked up.
fn is_asset(path: &str) -> bool {
    path == crate::pwa::SHELL_PATH
        || path.starts_with("/pkg/")
        || path.starts_with("/worker/")
        || [
            ".js",
            ".wasm",
            ".css",
            ".png",
            ".svg",
            ".ico",
            ".webmanifest",
            ".txt",
            ".map",
        ]
        .iter()
        .any(|ext| path.ends_with(ext))
}

/// Security headers on every response; `no_store` for pages and the API (a page of one
/// account must not come back from a cache after sign-out).
fn with_headers(mut response: Response, cookie: Option<HeaderValue>, no_store: bool) -> Response {
    let h = response.headers_mut();
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        if let Ok(v) = HeaderValue::from_str(&app::content_security_policy(None)) {
            h.insert(header::CONTENT_SECURITY_POLICY, v);
        }
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Which build answered (the service worker keeps only its own build's files).
    if let Ok(v) = HeaderValue::from_str(crate::pwa::served_build()) {
        h.insert("x-tandem-build", v);
    }
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    if no_store && !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if let Some(cookie) = cookie {
        // Unless the handler set the cookie itself (sign-in, sign-out).
        if !h.contains_key(header::SET_COOKIE) {
            h.insert(header::SET_COOKIE, cookie);
        }
    }
    response
}

/// A request path with secrets cut out (invite and setup tokens travel in paths), for logs.
pub fn redacted_path(path: &str) -> String {
    let mut out = Vec::new();
    let mut hide_next = false;
    for segment in path.split('/') {
        if hide_next && !segment.is_empty() {
            out.push("…");
            hide_next = false;
            continue;
        }
        hide_next = matches!(segment, "invite" | "invites" | "setup" | "tokens");
        out.push(segment);
    }
    out.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_in_paths_are_cut_from_logs() {
        assert_eq!(redacted_path("/invite/abc123"), "/invite/…");
        assert_eq!(
            redacted_path("/api/invites/abc123/accept"),
            "/api/invites/…/accept"
        );
        assert_eq!(
            redacted_path("/api/workspaces/w/invites/tok"),
            "/api/workspaces/w/invites/…"
        );
        assert_eq!(redacted_path("/lists/x"), "/lists/x");
        assert_eq!(
            redacted_path("/api/workspaces/w/invites"),
            "/api/workspaces/w/invites"
        );
    }

    #[test]
    fn assets_need_no_credentials() {
        assert!(is_asset("/pkg/tandem.wasm"));
        assert!(is_asset("/worker.js"));
        assert!(!is_asset("/lists/abc"));
        assert!(!is_asset("/api/sync/push"));
    }
}
