//! The schema's versions, applied in order at start (`server serve`) and by `server migrate`.
//!
//! Our own runner, not refinery or sqlx's: several processes start together on one database,
//! and each version must be applied once — the runner holds a transaction advisory lock while
//! it reads what is applied and applies the rest, in one transaction (PostgreSQL's DDL is
//! transactional: a failed version leaves nothing behind). Those crates take no such lock.
//! The whole runner is the loop below.

use tokio_postgres::Client;

use crate::PgError;

/// Each version: its number, a name, its SQL. Never edited once released: a change is a new
/// version.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "central log", include_str!("sql/0001_central_log.sql")),
    (2, "accounts", include_str!("sql/0002_accounts.sql")),
    (3, "server views", include_str!("sql/0003_views.sql")),
    (4, "rate limits", include_str!("sql/0004_rate_limits.sql")),
];

/// The advisory lock the runner holds (two-key form: apart from the workspaces' one-key locks).
const LOCK: (i32, i32) = (0x7a6d_6467, 1);

/// This build's schema version.
pub fn latest() -> i32 {
    MIGRATIONS.last().map_or(0, |(v, _, _)| *v)
}

/// Applies the versions `client`'s database lacks; the ones applied (none when it was
/// current). A database of a newer build is refused, untouched.
pub async fn run(client: &mut Client) -> Result<Vec<i32>, PgError> {
    // Text is compared, sized and stored as UTF-8, as SQLite does (an event's bytes count
    // towards a pull's budget the same way on both).
    let encoding: String = client.query_one("SHOW server_encoding", &[]).await?.get(0);
    if encoding != "UTF8" {
        return Err(PgError::Encoding(encoding));
    }
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1, $2)", &[&LOCK.0, &LOCK.1])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS tandem_migrations (
             version    integer PRIMARY KEY,
             name       text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await?;
    let found: i32 = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM tandem_migrations",
            &[],
        )
        .await?
        .get(0);
    if found > latest() {
        return Err(PgError::Newer {
            found,
            known: latest(),
        });
    }
    let mut applied = Vec::new();
    for (version, name, sql) in MIGRATIONS.iter().filter(|(v, _, _)| *v > found) {
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO tandem_migrations (version, name) VALUES ($1, $2)",
            &[version, name],
        )
        .await?;
        tracing::info!(version, name, "database schema migrated");
        applied.push(*version);
    }
    tx.commit().await?;
    Ok(applied)
}

/// The schema version of `client`'s database (0: none yet).
pub async fn current(client: &Client) -> Result<i32, PgError> {
    let exists: bool = client
        .query_one("SELECT to_regclass('tandem_migrations') IS NOT NULL", &[])
        .await?
        .get(0);
    if !exists {
        return Ok(0);
    }
    Ok(client
        .query_one(
            "SELECT coalesce(max(version), 0) FROM tandem_migrations",
            &[],
        )
        .await?
        .get(0))
}
