//! The real server on 127.0.0.1:0 with a temp data dir: SSR, health, the server function
//! round trip, compression, 404s and graceful shutdown.

use std::time::Duration;

mod common;

use common::{client, start};

#[tokio::test]
async fn a_stranger_gets_the_sign_in_form_and_nothing_else() {
    let server = common::start_open().await;
    let cookie = common::sign_up(&server.base, "ann").await;
    // Ann's Inbox has a to-do; a stranger asking for its URL sees the sign-in form only.
    let html = client()
        .get(&server.base)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let list = html
        .split("href=\"/lists/")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a link to Ann's Inbox")
        .to_string();
    let response = client()
        .get(format!("{}/lists/{list}", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    assert!(html.contains(">Sign in<"), "{html}");
    assert!(
        html.contains(">Username<") && html.contains(">Password<"),
        "{html}"
    );
    assert!(!html.contains("Inbox"), "nothing of the list: {html}");
    assert!(!html.contains("class=\"todoapp\""), "{html}");
    assert!(!html.contains("Sign out"), "{html}");
    server.stop().await;
}

/// Every page's inline scripts carry the nonce its Content-Security-Policy header names —
/// many pages at once, the not-found page too — and no two pages share one. (A page once came
/// with a policy naming no nonce: its hydration script was refused and it never came alive.)
#[tokio::test]
async fn every_page_names_its_own_nonce_in_its_policy() {
    let server = common::start_open().await;
    let cookie = common::sign_up(&server.base, "ann").await;
    let paths = ["/", "/settings", "/trash", "/no/such/page", "/sign-in"];
    let fetches = (0..40).map(|i| {
        let url = format!("{}{}", server.base, paths[i % paths.len()]);
        let cookie = cookie.clone();
        async move {
            let response = client()
                .get(&url)
                .header("cookie", &cookie)
                .send()
                .await
                .unwrap();
            let csp = response.headers()["content-security-policy"]
                .to_str()
                .unwrap()
                .to_string();
            let html = response.text().await.unwrap();
            (url, csp, html)
        }
    });
    let mut nonces = std::collections::HashSet::new();
    for (url, csp, html) in futures_util::future::join_all(fetches).await {
        let nonce = csp
            .split("'nonce-")
            .nth(1)
            .and_then(|r| r.split('\'').next())
            .unwrap_or_else(|| panic!("{url}: no nonce in {csp}"))
            .to_string();
        assert!(
            html.contains(&format!("<script type=\"module\" nonce=\"{nonce}\">")),
            "{url}: the hydration script lacks the policy's nonce {nonce}: {html}"
        );
        // The install offer is kept from the document's start, before the wasm runs.
        let keep = format!(
            "<script nonce=\"{nonce}\">{}</script>",
            app::pwa::KEEP_INSTALL_OFFER
        );
        assert!(
            html.contains(&keep),
            "{url}: no script keeps the install offer: {html}"
        );
        assert!(
            html.find(&keep) < html.find("<script type=\"module\""),
            "{url}: the install offer is kept only after the page's module starts"
        );
        assert!(nonces.insert(nonce), "{url}: a nonce used twice");
    }
    server.stop().await;
}

#[tokio::test]
async fn renders_the_shell_server_side() {
    let server = common::start_open().await;
    let cookie = common::sign_up(&server.base, "ann").await;
    let response = client()
        .get(&server.base)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    // Security headers on the page: the CSP names this response's nonce, which the inline
    // hydration script carries.
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("'wasm-unsafe-eval'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(
        !csp.contains("unsafe-inline'; ") || !csp.contains("script-src 'self' 'unsafe-inline'"),
        "{csp}"
    );
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .and_then(|r| r.split('\'').next())
        .expect("a nonce in the CSP")
        .to_string();
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    assert_eq!(response.headers()["referrer-policy"], "no-referrer");
    assert_eq!(response.headers()["cache-control"], "no-store");
    let html = response.text().await.unwrap();
    assert!(html.contains(&format!("nonce=\"{nonce}\"")), "{html}");
    assert!(html.contains("<title>Tandem</title>"), "{html}");
    assert!(html.contains("class=\"todoapp\""), "{html}");
    assert!(
        html.contains("Inbox"),
        "the new account's first list: {html}"
    );
    assert!(html.contains(">Sign out<"), "{html}");
    // The sync status says `connecting` until the page's worker reports.
    assert!(html.contains(r#"data-sync-state="connecting""#), "{html}");
    assert!(html.contains(r#"role="status""#), "{html}");
    assert!(
        html.contains("/pkg/tandem.js"),
        "hydration script linked: {html}"
    );
    assert!(
        !html.contains("data-ready"),
        "ready only after hydration: {html}"
    );
    server.stop().await;
}

#[tokio::test]
async fn healthz_answers_when_the_databases_are_open() {
    let server = start().await;
    let response = client()
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    if !common::on_postgres() {
        assert!(server.data_dir.path().join("events.db").exists());
        assert!(server.data_dir.path().join("views.db").exists());
    }
    server.stop().await;
}

#[tokio::test]
async fn the_status_server_function_round_trips() {
    let server = start().await;
    let response = client()
        .post(format!("{}/api/status", server.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert!(body["server_time_ms"].as_i64().unwrap() > 1_700_000_000_000);
    server.stop().await;
}

#[tokio::test]
async fn responses_are_compressed_when_the_client_accepts_it() {
    let server = start().await;
    let response = client()
        .get(&server.base)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-encoding"], "gzip");
    server.stop().await;
}

#[tokio::test]
async fn unknown_pages_are_404() {
    let server = start().await;
    let response = client()
        .get(format!("{}/no/such/page", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    server.stop().await;
}

#[tokio::test]
async fn shutdown_is_prompt_and_closes_the_databases() {
    let server = start().await;
    // A keep-alive connection stays open while shutting down.
    let c = client();
    let url = format!("{}/healthz", server.base);
    assert_eq!(c.get(&url).send().await.unwrap().status(), 200);
    let sqlite = !common::on_postgres();
    assert_eq!(
        server.data_dir.path().join("events.db-wal").exists(),
        sqlite
    );
    let (took, data_dir) = server.stop().await;
    assert!(took < Duration::from_secs(5), "took {took:?}");
    // SQLite removes the WAL file when the last connection closes cleanly.
    assert!(!data_dir.path().join("events.db-wal").exists());
    assert!(!data_dir.path().join("views.db-wal").exists());
    assert!(c.get(&url).send().await.is_err(), "no longer listening");
}

#[tokio::test]
async fn slow_headers_idle_connections_and_slow_bodies_are_cut() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = common::start_with(server::config::Limits {
        header_read_timeout_ms: 300,
        request_timeout_ms: 600,
        ..server::config::Limits::default()
    })
    .await;
    let addr = server.base.trim_start_matches("http://").to_string();
    // Headers that never end, and a connection that never says anything: closed.
    for opening in [
        &b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n"[..],
        &b""[..],
    ] {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        s.write_all(opening).await.unwrap();
        let mut buf = vec![0u8; 256];
        let read = tokio::time::timeout(std::time::Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("the server closes it within 5 s");
        assert!(
            matches!(read, Ok(0) | Err(_)),
            "closed without an answer: {read:?}"
        );
    }
    // A keep-alive connection that goes quiet after a request: closed too.
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 4096];
    loop {
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("answered, then closed within 5 s")
            .unwrap_or(0);
        if n == 0 {
            break;
        }
        seen.extend_from_slice(&buf[..n]);
    }
    assert!(
        String::from_utf8_lossy(&seen).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&seen)
    );
    // A body that trickles: 408 in the error shape.
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"POST /api/sync/push HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
        .await
        .unwrap();
    let mut answer = String::new();
    let mut buf = vec![0u8; 4096];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !answer.contains("MALFORMED") {
        assert!(
            std::time::Instant::now() < deadline,
            "no 408 within 5 s: {answer}"
        );
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed without an answer: {answer}");
        answer.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    // Everyone else is served.
    let ok = common::client()
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    server.stop().await;
}

/// Pages render while other servers start in the same process (each builds a router). Leptos
/// suppresses resource loads process-wide while a route list is generated, and a resource
/// first polled in that window never loads (leptos-rs/leptos#4773): the route list must be
/// generated once per process, not per server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_render_while_other_servers_start() {
    let server = start().await;
    let url = server.base.clone();
    let pages = tokio::spawn(async move {
        let c = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        for i in 0..150 {
            let response = c.get(&url).send().await;
            let response = response.unwrap_or_else(|e| panic!("page {i} got no answer: {e}"));
            assert_eq!(response.status(), 200, "page {i}");
            let html = response.text().await.unwrap();
            // A stranger's page: the sign-in form (rendered by the server, after its session
            // resource loaded).
            assert!(html.contains(">Username<"), "page {i}: {html}");
        }
    });
    let mut others = Vec::new();
    while !pages.is_finished() {
        others.push(start().await);
        if others.len() > 4 {
            others.remove(0).stop().await;
        }
    }
    pages.await.unwrap();
    for other in others {
        other.stop().await;
    }
    server.stop().await;
}
