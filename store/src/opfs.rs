//! The browser's storage: SQLite files in the Origin Private File System, through the
//! sync-access-handle pool VFS. Only a Dedicated Worker may use it (sync access handles are
//! worker-only), and only one connection per database file exists at a time.

use sqlite_wasm_rs::WasmOsCallback;
use sqlite_wasm_vfs::sahpool::{install, OpfsSAHPoolCfg};

use crate::StoreError;

/// Installs the OPFS pool VFS as SQLite's default, so `open("events.db", ..)` lands in OPFS.
///
/// Fails while another worker (an old page being unloaded, another tab) still holds the pool's
/// access handles; the caller decides whether to retry.
pub async fn install_opfs_vfs() -> Result<(), StoreError> {
    install::<WasmOsCallback>(&OpfsSAHPoolCfg::default(), true)
        .await
        .map(|_| ())
        .map_err(|e| StoreError::Opfs(format!("{e:?}")))
}
