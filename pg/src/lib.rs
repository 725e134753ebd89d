//! Tandem's central store on PostgreSQL (`server serve --database postgres://…`): the same
//! log, with the same rules, as the SQLite default, shared by any number of server processes
//! (ARCHITECTURE.md, "Storage").
//!
//! - [`Database`]: a pool of connections (deadpool-postgres over tokio-postgres) and the
//!   schema's migrations, run at start under a lock so that processes starting together apply
//!   each one once.
//! - [`central::PgCentral`]: push and pull. A push holds its workspace's lock (a transaction
//!   advisory lock) from its first read to its commit: the checks of DESIGN.md rule 13
//!   (shared with SQLite: `tandem_store::push`) see exactly what the append builds on, seqs
//!   are dense, and a reader never sees seq N+1 before N (they commit in order under the lock).

pub mod accounts;
pub mod central;
pub mod listen;
pub mod migrate;
pub mod rate;
pub mod views;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

pub use accounts::PgAccounts;
pub use central::PgCentral;
/// The driver, for callers that run their own statements (`server query`).
pub use tokio_postgres;
pub use views::PgViews;

#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("the database URL is not usable: {0}")]
    Url(String),
    #[error("cannot reach the database: {}", describe_pool(.0))]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("the database failed: {}", describe(.0))]
    Sql(#[from] tokio_postgres::Error),
    #[error(
        "the database is at schema version {found}, newer than this build's {known}: run a newer build"
    )]
    Newer { found: i32, known: i32 },
    #[error("the log holds something this build cannot read: {0}")]
    Corrupt(String),
    #[error("the database did not answer within {0:?}")]
    Unanswered(std::time::Duration),
    #[error("the import was refused, nothing stored: {0}")]
    Import(String),
    #[error(
        "the database's encoding is {0}, not UTF8: create it with `CREATE DATABASE … ENCODING 'UTF8'`"
    )]
    Encoding(String),
}

/// A PostgreSQL database holding Tandem's central store.
#[derive(Clone)]
pub struct Database {
    pool: Pool,
    /// For connections of their own (the heads listener's).
    config: tokio_postgres::Config,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the URL: it may carry a password.
        f.debug_struct("Database")
            .field("size", &self.pool.status().max_size)
            .finish()
    }
}

impl Database {
    /// A pool of at most `size` connections to `url` (`postgres://user:pass@host:port/db`).
    /// Nothing is connected until first used.
    pub fn connect(url: &str, size: usize) -> Result<Self, PgError> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e: tokio_postgres::Error| PgError::Url(e.to_string()))?;
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                // Only whether the connection is closed: a transaction dropped unfinished
                // (a request that failed midway) has already queued its ROLLBACK.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        // Bounded waits (DESIGN.md rule 22): for a free connection, and for a new one.
        let wait = Some(std::time::Duration::from_secs(5));
        let pool = Pool::builder(manager)
            .max_size(size.max(1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(wait)
            .create_timeout(wait)
            .build()
            .map_err(|e| PgError::Url(e.to_string()))?;
        Ok(Self { pool, config })
    }

    /// The most connections the pool holds.
    pub fn max_size(&self) -> usize {
        self.pool.status().max_size
    }

    /// The connection settings (never logged: they may carry a password).
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// A connection from the pool (waits for one to be free).
    pub async fn client(&self) -> Result<deadpool_postgres::Object, PgError> {
        Ok(self.pool.get().await?)
    }

    /// Brings the schema to this build's version ([`migrate::run`]); the versions applied.
    pub async fn migrate(&self) -> Result<Vec<i32>, PgError> {
        let mut client = self.client().await?;
        migrate::run(&mut client).await
    }
}

/// What went wrong, with the database's own words when it answered (tokio-postgres's
/// `Display` says only "db error").
pub fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => db.to_string(),
        None => e.to_string(),
    }
}

/// A pool's failure in the database's own words when it answered (a wrong password, a
/// database that does not exist), which the pool's message leaves out ("db error").
fn describe_pool(e: &deadpool_postgres::PoolError) -> String {
    match e {
        deadpool_postgres::PoolError::Backend(e) => describe(e),
        other => other.to_string(),
    }
}

/// A row's text column parsed as an id or stamp, or why not.
pub(crate) fn parse<T: std::str::FromStr>(text: &str, what: &str) -> Result<T, PgError>
where
    T::Err: std::fmt::Display,
{
    text.parse()
        .map_err(|e: T::Err| PgError::Corrupt(format!("{what} {text:?}: {e}")))
}
