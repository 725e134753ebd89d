//! The data dir's databases: the central log (`events.db`, synchronous=FULL) and the server's
//! views (`views.db`), behind one mutex (one writer, DESIGN.md rule 10).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tandem_events::ids::DeviceId;

/// The accounts database's file in the data dir.
pub const ACCOUNTS_FILE: &str = "accounts.db";

/// The name of the list every new account's workspace starts with.
pub const DEFAULT_LIST_NAME: &str = "Inbox";
use tandem_store::{Central, CentralError, Readers, ServerViews, SyncLimits};

use crate::config::Limits;

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
}

/// The server's wall clock in ms since the epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The open central log (the one writer) and the server's views (their own projector, with a
/// read-only connection to the log).
#[derive(Clone)]
pub struct Databases {
    pub central: Arc<Mutex<Central>>,
    pub views: Arc<Mutex<ServerViews>>,
    /// Read-only connections for pulls and live connects (never under the writer's lock).
    pub readers: Arc<Readers>,
    /// Accounts, sessions, workspaces and members (accounts.db).
    pub accounts: Arc<dyn tandem_accounts::AccountStore>,
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
        let central = Central::open(
            data_dir,
            DeviceId::from_uuid(uuid::Uuid::new_v4()),
            Arc::new(now_ms),
            sync_limits(limits),
        )?;
        let mut central = central;
        let log_id = central.ensure_log_id(&uuid::Uuid::new_v4().to_string())?;
        tracing::info!(%log_id, "the log");
        let mut views = ServerViews::open(data_dir, |p| {
            tracing::info!(done = p.done, total = p.total, "rebuilding views")
        })?;
        views.project()?;
        let readers = Readers::open(data_dir, limits.read_connections, sync_limits(limits))?;
        let accounts = tandem_accounts::Accounts::open(data_dir.join(ACCOUNTS_FILE))?;
        Ok(Self {
            central: Arc::new(Mutex::new(central)),
            views: Arc::new(Mutex::new(views)),
            readers: Arc::new(readers),
            accounts: Arc::new(accounts),
        })
    }

    /// Brings the views up to the log (the projector's step; also before reading them).
    pub fn project_views(&self) -> Result<u64, DatabaseError> {
        let mut views = self
            .views
            .lock()
            .map_err(|_| DatabaseError::Unhealthy("the projector panicked".into()))?;
        Ok(views.project()?)
    }

    /// Checks that both databases answer a query. Holds one lock at a time: never the
    /// writer's while waiting for the projector.
    pub fn check(&self) -> Result<(), DatabaseError> {
        let probe = |name: &str, conn: &tandem_store::rusqlite::Connection| {
            conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|_| ())
            .map_err(|e| DatabaseError::Unhealthy(format!("{name}: {e}")))
        };
        {
            let central = self.central.lock().map_err(|_| {
                DatabaseError::Unhealthy("a writer panicked while holding the log".into())
            })?;
            probe("events.db", central.log().connection())?;
        }
        let views = self
            .views
            .lock()
            .map_err(|_| DatabaseError::Unhealthy("the projector panicked".into()))?;
        probe("views.db", views.views().connection())
    }
}
