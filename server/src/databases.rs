//! Where the server keeps its state: the data dir's SQLite databases (the default: the
//! central log `events.db`, synchronous=FULL, one writer behind a mutex (DESIGN.md rule 10);
//! the server's views `views.db`; `accounts.db`), or one PostgreSQL database shared by any
//! number of server processes ([`crate::postgres`]). Both are an [`app::sync::ssr::Backend`]
//! and an [`tandem_accounts::AccountStore`] to the rest of the server.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use app::sync::ssr::Backend;
use tandem_events::ids::{AggregateId, DeviceId, EventId, WorkspaceId};
use tandem_protocol::data::ListSnapshot;
use tandem_protocol::sync::{ErrorCode, PullRequest, PullResponse, PushRequest, SyncError};
use tandem_store::{changes, PushOutcome, Pusher};

/// The accounts database's file in the data dir.
pub const ACCOUNTS_FILE: &str = "accounts.db";

/// The name of the list every new account's workspace starts with.
pub const DEFAULT_LIST_NAME: &str = "Inbox";
use tandem_store::{Central, CentralError, Readers, ServerViews, SyncLimits};

use crate::config::Limits;

/// A write to the central log taking longer (waiting for the writer, then writing) is logged.
const SLOW_WRITE: std::time::Duration = std::time::Duration::from_millis(50);

#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    #[error("cannot create data dir {path}: {source}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the data dir's databases: {0}")]
    Open(#[from] CentralError),
    #[error("the databases are not usable: {0}")]
    Unhealthy(String),
    #[error("cannot open accounts.db: {0}")]
    Accounts(#[from] tandem_accounts::AccountsError),
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] tandem_pg::PgError),
}

/// The server's wall clock in ms since the epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The open databases: the log and its views (`backend`), the accounts, and what closing them
/// needs.
#[derive(Clone)]
pub struct Databases {
    pub backend: Arc<dyn Backend>,
    /// Accounts, sessions, workspaces and members.
    pub accounts: Arc<dyn tandem_accounts::AccountStore>,
    /// The SQLite parts, closed in order at shutdown (none on PostgreSQL).
    sqlite: Option<SqliteLog>,
    /// The PostgreSQL parts (the heads listener, the rate limits' windows).
    pub postgres: Option<crate::postgres::Postgres>,
}

/// The store's limits from the configuration.
pub fn sync_limits(limits: &Limits) -> SyncLimits {
    SyncLimits {
        events_per_push: limits.events_per_push,
        pull_bytes: limits.pull_bytes,
        event_data_bytes: limits.event_data_bytes,
        max_clock_drift_ms: limits.max_clock_drift_ms,
        pull_limit_default: limits.pull_limit_default as u64,
        pull_limit_max: limits.pull_limit_max as u64,
    }
}

impl Databases {
    /// Opens (creating if needed) the data dir. A new events.db gets a fresh device id for
    /// the server (DESIGN.md rule 1); an existing one keeps its own.
    pub fn open(data_dir: &Path, limits: &Limits) -> Result<Self, DatabaseError> {
        std::fs::create_dir_all(data_dir).map_err(|source| DatabaseError::DataDir {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let mut central = Central::open(
            data_dir,
            DeviceId::from_uuid(uuid::Uuid::new_v4()),
            Arc::new(now_ms),
            sync_limits(limits),
        )?;
        let log_id = central.ensure_log_id(&uuid::Uuid::new_v4().to_string())?;
        tracing::info!(%log_id, "the log");
        let mut views = ServerViews::open(data_dir, |p| {
            tracing::info!(done = p.done, total = p.total, "rebuilding views")
        })?;
        views.project()?;
        let readers = Readers::open(data_dir, limits.read_connections, sync_limits(limits))?;
        let accounts = tandem_accounts::Accounts::open(data_dir.join(ACCOUNTS_FILE))?;
        let sqlite = SqliteLog {
            central: Arc::new(Mutex::new(central)),
            views: Arc::new(Mutex::new(views)),
            readers: Arc::new(readers),
        };
        Ok(Self {
            backend: Arc::new(sqlite.clone()),
            accounts: Arc::new(accounts),
            sqlite: Some(sqlite),
            postgres: None,
        })
    }

    /// Connects to a PostgreSQL database, bringing its schema to this build's first.
    pub async fn connect(url: &str, limits: &Limits) -> Result<Self, DatabaseError> {
        let postgres = crate::postgres::Postgres::connect(url, limits).await?;
        Ok(Self {
            backend: Arc::new(postgres.clone()),
            accounts: postgres.accounts(),
            sqlite: None,
            postgres: Some(postgres),
        })
    }

    /// Brings the views up to the log (the projector's step; also before reading them).
    pub fn project_views(&self) -> Result<u64, SyncError> {
        self.backend.project()
    }

    /// Checks that the databases answer a query.
    pub fn check(&self) -> Result<(), DatabaseError> {
        self.backend.check().map_err(DatabaseError::Unhealthy)
    }

    /// Closes the databases: SQLite's read connections before the writer (which then removes
    /// the WAL), once whoever still holds them lets go (waiting at most `wait`).
    pub async fn close(self, wait: std::time::Duration) {
        let Self {
            backend, sqlite, ..
        } = self;
        drop(backend);
        let Some(SqliteLog {
            central,
            views,
            readers,
        }) = sqlite
        else {
            return;
        };
        let deadline = std::time::Instant::now() + wait;
        while Arc::strong_count(&views) > 1 && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        drop(views);
        drop(readers);
        match Arc::try_unwrap(central) {
            Ok(central) => drop(central),
            Err(_) => {
                tracing::warn!("the central log is still referenced at shutdown; closed on drop")
            }
        }
    }
}

/// The data dir's log and views.
#[derive(Clone)]
struct SqliteLog {
    /// The one writer.
    central: Arc<Mutex<Central>>,
    /// The server's views (their own projector, with a read-only connection to the log).
    views: Arc<Mutex<ServerViews>>,
    /// Read-only connections for pulls and live connects (never under the writer's lock).
    readers: Arc<Readers>,
}

fn internal(e: impl std::fmt::Display) -> SyncError {
    SyncError::new(ErrorCode::Internal, e.to_string())
}

impl SqliteLog {
    fn central(&self) -> Result<std::sync::MutexGuard<'_, Central>, SyncError> {
        self.central
            .lock()
            .map_err(|_| internal("the central log is poisoned by an earlier panic"))
    }

    /// The views, caught up with the log first (reads never see stale views).
    fn views(&self) -> Result<std::sync::MutexGuard<'_, ServerViews>, SyncError> {
        let mut views = self
            .views
            .lock()
            .map_err(|_| internal("the projector panicked earlier"))?;
        views.project().map_err(internal)?;
        Ok(views)
    }
}

impl Backend for SqliteLog {
    fn limits(&self) -> SyncLimits {
        self.readers.limits()
    }

    fn log_id(&self) -> String {
        self.readers.log_id().to_string()
    }

    fn read_slots(&self) -> usize {
        self.readers.len()
    }

    fn push_as(
        &self,
        request: &PushRequest,
        pusher: &Pusher<'_>,
    ) -> Result<PushOutcome, SyncError> {
        let waiting = std::time::Instant::now();
        let mut central = self.central()?;
        let waited = waiting.elapsed();
        let outcome = central.push_as(request, pusher);
        let took = waiting.elapsed();
        if took > SLOW_WRITE {
            tracing::warn!(
                waited_ms = waited.as_millis() as u64,
                wrote_ms = (took - waited).as_millis() as u64,
                "a slow write to the central log"
            );
        }
        outcome
    }

    fn pull(&self, request: &PullRequest, now: i64) -> Result<PullResponse, SyncError> {
        self.readers.pull(request, now)
    }

    fn head(&self, workspace: WorkspaceId, now: i64) -> Result<u64, SyncError> {
        self.readers.head(workspace, now)
    }

    fn heads(&self) -> Result<Vec<(WorkspaceId, u64)>, SyncError> {
        self.central()?.log().heads().map_err(internal)
    }

    fn ensure_first_list(
        &self,
        workspace: WorkspaceId,
        name: &str,
        list_id: AggregateId,
        event_id: EventId,
        user: Option<&str>,
    ) -> Result<Option<AggregateId>, SyncError> {
        self.central()?
            .ensure_first_list(workspace, name, list_id, event_id, user)
    }

    fn list_workspace(&self, list_id: &str) -> Result<Option<String>, SyncError> {
        let views = self.views()?;
        changes::list_workspace(views.views().connection(), list_id).map_err(internal)
    }

    fn snapshot(
        &self,
        workspace: WorkspaceId,
        list_id: Option<String>,
    ) -> Result<(ListSnapshot, u64), SyncError> {
        let views = self.views()?;
        let views = views.views();
        let snapshot = changes::snapshot(views.connection(), &workspace.to_string(), list_id)
            .map_err(internal)?;
        Ok((snapshot, views.checkpoint(workspace).map_err(internal)?))
    }

    fn project(&self) -> Result<u64, SyncError> {
        self.views
            .lock()
            .map_err(|_| internal("the projector panicked earlier"))?
            .project()
            .map_err(internal)
    }

    /// Holds one lock at a time: never the writer's while waiting for the projector.
    fn check(&self) -> Result<(), String> {
        let probe = |name: &str, conn: &tandem_store::rusqlite::Connection| {
            conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|_| ())
            .map_err(|e| format!("{name}: {e}"))
        };
        {
            let central = self
                .central
                .lock()
                .map_err(|_| "a writer panicked while holding the log".to_string())?;
            probe("events.db", central.log().connection())?;
        }
        let views = self
            .views
            .lock()
            .map_err(|_| "the projector panicked".to_string())?;
        probe("views.db", views.views().connection())
    }
}
