//! Opening a SQLite database with the pragmas Tandem relies on.

use std::path::Path;

use rusqlite::Connection;

/// How hard a database works to keep a committed transaction across a power cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `synchronous=FULL`: for logs whose appends are acknowledged to others (DESIGN.md rule 14).
    Full,
    /// `synchronous=NORMAL`: for views, which can always be rebuilt from the log.
    Normal,
}

/// Failures opening or preparing a database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open database {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot set up database {path}: {source}")]
    Setup {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot install the OPFS storage: {0}")]
    Opfs(String),
}

/// Opens (creating if needed) the database at `path` with Tandem's pragmas: WAL natively and in
/// the browser, where the OPFS pool VFS has no shared memory, so WAL needs exclusive locking
/// (the wal-index then lives in the connection's heap).
pub fn open(path: impl AsRef<Path>, durability: Durability) -> Result<Connection, StoreError> {
    open_with_page_size(path, durability, None)
}

/// As [`open`], choosing the page size of a database created now (ignored for an existing
/// one). Views use 16 KiB pages: a rebuild writes every row at once, and measured on the
/// replay benchmark 16 KiB pages rebuild ~15% faster than SQLite's default 4 KiB (the log keeps
/// 4 KiB, which appends faster; docs/benchmarks.md).
pub fn open_with_page_size(
    path: impl AsRef<Path>,
    durability: Durability,
    page_size: Option<u32>,
) -> Result<Connection, StoreError> {
    let path = path.as_ref();
    let shown = path.display().to_string();
    let conn = Connection::open(path).map_err(|source| StoreError::Open {
        path: shown.clone(),
        source,
    })?;
    let synchronous = match durability {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    };
    // In the browser (OPFS, sync access handles): one connection per file, held by the worker
    // that owns the Web Lock, so exclusive locking keeps the page cache valid across
    // transactions — and it is what lets the pool VFS, which has no shared memory, run WAL: a
    // commit appends to the -wal file and syncs once instead of writing a rollback journal and
    // the pages (the official SQLite WASM build measures 1.2 ms PERSIST vs 0.3-0.55 ms WAL per
    // one-row durable transaction here, docs/benchmarks.md). An existing PERSIST file turns WAL
    // when opened. Temporary tables (change tracking) stay in memory rather than taking slots
    // of the OPFS pool. `locking_mode` must come before `journal_mode`: reopening a WAL file
    // without exclusive locking on this VFS fails.
    let (journal, locking, temp_store) = if cfg!(target_arch = "wasm32") {
        ("WAL", "EXCLUSIVE", "MEMORY")
    } else {
        ("WAL", "NORMAL", "DEFAULT")
    };
    // The page size must be set before the journal mode initialises a new file.
    page_size
        .map_or(Ok(()), |size| conn.pragma_update(None, "page_size", size))
        .and_then(|()| conn.pragma_update(None, "locking_mode", locking))
        .and_then(|()| conn.pragma_update(None, "temp_store", temp_store))
        .and_then(|()| conn.pragma_update(None, "journal_mode", journal))
        .and_then(|()| conn.pragma_update(None, "synchronous", synchronous))
        .and_then(|()| conn.pragma_update(None, "foreign_keys", "ON"))
        // 32 MiB of page cache (default 2 MiB): rebuilds and catch-ups touch many pages.
        .and_then(|()| conn.pragma_update(None, "cache_size", -32_768))
        .and_then(|()| conn.busy_timeout(std::time::Duration::from_secs(5)))
        .map_err(|source| StoreError::Setup {
            path: shown,
            source,
        })?;
    Ok(conn)
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    #[test]
    fn opens_a_real_file_in_wal_with_the_requested_durability() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(dir.path().join("events.db"), Durability::Full).unwrap();
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let sync: i64 = conn
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 2, "FULL is 2");
        let views = open(dir.path().join("views.db"), Durability::Normal).unwrap();
        let sync: i64 = views
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 1, "NORMAL is 1");
    }

    #[test]
    fn a_missing_directory_is_a_typed_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no/such/dir/events.db");
        let err = open(&path, Durability::Full).unwrap_err();
        assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
        assert!(err.to_string().contains("no/such/dir"), "{err}");
    }
}
