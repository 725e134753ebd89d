//! The data dir's SQLite databases: the central event log (`events.db`, synchronous=FULL)
//! and the server's views (`views.db`).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tandem_store::rusqlite::Connection;
use tandem_store::{open, Durability, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    #[error("cannot create data dir {path}: {source}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{name} is not usable: {message}")]
    Unhealthy { name: &'static str, message: String },
}

/// The open databases. One connection each; callers lock for short, synchronous work.
pub struct Databases {
    events: Mutex<Connection>,
    views: Mutex<Connection>,
}

impl Databases {
    /// Opens (creating if needed) `events.db` and `views.db` in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Self, DatabaseError> {
        std::fs::create_dir_all(data_dir).map_err(|source| DatabaseError::DataDir {
            path: data_dir.to_path_buf(),
            source,
        })?;
        Ok(Self {
            events: Mutex::new(open(data_dir.join("events.db"), Durability::Full)?),
            views: Mutex::new(open(data_dir.join("views.db"), Durability::Normal)?),
        })
    }

    /// Checks that both databases answer a query.
    pub fn check(&self) -> Result<(), DatabaseError> {
        for (name, conn) in [("events.db", &self.events), ("views.db", &self.views)] {
            let conn = conn.lock().map_err(|_| DatabaseError::Unhealthy {
                name,
                message: "a writer panicked while holding it".into(),
            })?;
            conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
                r.get::<_, i64>(0)
            })
            .map_err(|e| DatabaseError::Unhealthy {
                name,
                message: e.to_string(),
            })?;
        }
        Ok(())
    }

    /// Closes both connections, checkpointing the WAL.
    pub fn close(self) {
        for (name, conn) in [("events.db", self.events), ("views.db", self.views)] {
            let conn = conn
                .into_inner()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Err((_, e)) = conn.close() {
                tracing::error!(database = name, error = %e, "closing failed");
            }
        }
    }
}
