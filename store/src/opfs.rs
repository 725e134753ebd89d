//! The browser's storage: SQLite files in the Origin Private File System, through the
//! sync-access-handle pool VFS. Only a Dedicated Worker may use it (sync access handles are
//! worker-only), and only one connection per database file exists at a time.

use sqlite_wasm_rs::WasmOsCallback;
use sqlite_wasm_vfs::sahpool::{install, OpfsSAHPoolCfgBuilder, OpfsSAHPoolUtil};

use crate::StoreError;

/// The installed pool: its access handles are this worker's until [`OpfsPool::release`].
pub struct OpfsPool(OpfsSAHPoolUtil);

/// Installs the OPFS pool VFS as SQLite's default, with its files in the OPFS folder
/// `directory`, so `open("events.db", ..)` lands there (and takes its handles back when it was
/// released before).
///
/// Fails while another worker (an old page being unloaded, another tab) still holds the pool's
/// access handles; the caller decides whether to retry.
pub async fn install_opfs_vfs(directory: &str) -> Result<OpfsPool, StoreError> {
    // Slots for events.db and views.db, their -wal files, the -journal files left from before
    // WAL (SQLite keeps them under exclusive locking), the same again for a recovery's fresh
    // files beside them, and spare ones (an older, smaller pool grows to this).
    let config = OpfsSAHPoolCfgBuilder::new()
        .directory(directory)
        .initial_capacity(16)
        .build();
    let pool = install::<WasmOsCallback>(&config, true)
        .await
        .map_err(|e| StoreError::Opfs(format!("{e:?}")))?;
    if pool.is_paused() {
        pool.resume()
            .await
            .map_err(|e| StoreError::Opfs(format!("{e:?}")))?;
    }
    Ok(OpfsPool(pool))
}

impl OpfsPool {
    /// Gives the files' access handles back (for another tab's worker to take), keeping the
    /// pool for a later [`install_opfs_vfs`]. Every database on it must be closed.
    pub fn release(&self) -> Result<(), StoreError> {
        self.0
            .pause()
            .map_err(|e| StoreError::Opfs(format!("{e:?}")))
    }

    /// Whether the pool holds a file of this name.
    pub fn contains(&self, name: &str) -> Result<bool, StoreError> {
        use sqlite_wasm_rs::vfs::VfsFilesManager;
        self.0
            .contains(name)
            .map_err(|e| StoreError::Opfs(format!("{e:?}")))
    }

    /// Deletes a closed database file of the pool (and says whether there was one).
    pub fn remove(&self, name: &str) -> Result<bool, StoreError> {
        use sqlite_wasm_rs::vfs::VfsFilesManager;
        self.0
            .remove(name)
            .map_err(|e| StoreError::Opfs(format!("{e:?}")))
    }
}
