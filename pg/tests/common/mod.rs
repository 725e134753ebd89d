//! A database of its own for each test, in the PostgreSQL cluster `TANDEM_TEST_PG` names
//! (`make test` starts a throwaway one: scripts/pg-cluster.sh).

#![allow(dead_code)]

use tandem_pg::Database;
use tokio_postgres::NoTls;

/// The cluster's URL (its `postgres` database).
pub fn cluster() -> String {
    std::env::var("TANDEM_TEST_PG").unwrap_or_else(|_| {
        panic!(
            "TANDEM_TEST_PG names the PostgreSQL the tests run on; start a throwaway one with \
             `eval \"$(scripts/pg-cluster.sh start)\"` (make test does)"
        )
    })
}

/// A new, empty database; its URL.
pub async fn fresh_url() -> String {
    let cluster = cluster();
    let (client, connection) = tokio_postgres::connect(&cluster, NoTls)
        .await
        .expect("the test cluster answers");
    tokio::spawn(connection);
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let (base, _) = cluster.rsplit_once('/').expect("a URL with a database");
    format!("{base}/{name}")
}

/// A new database with the current schema.
pub async fn fresh() -> Database {
    let db = Database::connect(&fresh_url().await, 8).unwrap();
    db.migrate().await.unwrap();
    db
}

/// A TCP relay to the test cluster whose open connections can be frozen: kept open but
/// forwarding nothing either way, as a proxy or NAT that lost a flow without resetting it.
/// Connections made after a freeze pass.
pub struct Relay {
    /// The cluster's URL with the relay's address: `/postgres` names the database.
    pub url: String,
    open: std::sync::Arc<std::sync::Mutex<Vec<tokio::sync::watch::Sender<bool>>>>,
}

impl Relay {
    pub async fn start() -> Self {
        let cluster = cluster();
        let (head, rest) = cluster
            .rsplit_once('@')
            .expect("postgres://user@host:port/db");
        let (target, path) = rest.split_once('/').expect("a URL with a database");
        let target = target.to_string();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("{head}@{}/{path}", listener.local_addr().unwrap());
        let open = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let opened = std::sync::Arc::clone(&open);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(&target).await else {
                    continue;
                };
                let (frozen, freezing) = tokio::sync::watch::channel(false);
                opened.lock().unwrap().push(frozen);
                let (from_client, to_client) = client.into_split();
                let (from_server, to_server) = server.into_split();
                tokio::spawn(pipe(from_client, to_server, freezing.clone()));
                tokio::spawn(pipe(from_server, to_client, freezing));
            }
        });
        Self { url, open }
    }

    /// Freezes every connection open now.
    pub fn freeze(&self) {
        for frozen in self.open.lock().unwrap().iter() {
            let _ = frozen.send(true);
        }
    }
}

/// Copies `from` to `to` until either ends; once frozen, holds both open and copies nothing.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut frozen: tokio::sync::watch::Receiver<bool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let read = tokio::select! {
            read = from.read(&mut buffer) => read,
            _ = frozen.wait_for(|f| *f) => break,
        };
        match read {
            Ok(n) if n > 0 && !*frozen.borrow() => {
                if to.write_all(&buffer[..n]).await.is_err() {
                    return;
                }
            }
            Ok(n) if n > 0 => break,
            _ => return,
        }
    }
    // Frozen: both halves (owned here) stay open, silent, until the test's runtime ends.
    std::future::pending::<()>().await;
}
