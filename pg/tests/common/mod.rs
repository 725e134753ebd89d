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
