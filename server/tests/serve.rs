//! The real server on 127.0.0.1:0 with a temp data dir: SSR, health, the server function
//! round trip, compression, 404s and graceful shutdown.

use std::time::Duration;

mod common;

use common::{client, start};

#[tokio::test]
async fn renders_the_shell_server_side() {
    let server = start().await;
    let response = client().get(&server.base).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = response.text().await.unwrap();
    assert!(html.contains("<title>Tandem</title>"), "{html}");
    assert!(html.contains("class=\"todoapp\""), "{html}");
    assert!(html.contains("Local store: opening…"), "{html}");
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
    assert!(server.data_dir.path().join("events.db").exists());
    assert!(server.data_dir.path().join("views.db").exists());
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
    assert!(server.data_dir.path().join("events.db-wal").exists());
    let (took, data_dir) = server.stop().await;
    assert!(took < Duration::from_secs(5), "took {took:?}");
    // SQLite removes the WAL file when the last connection closes cleanly.
    assert!(!data_dir.path().join("events.db-wal").exists());
    assert!(!data_dir.path().join("views.db-wal").exists());
    assert!(c.get(&url).send().await.is_err(), "no longer listening");
}
