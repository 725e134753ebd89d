//! The browser's storage: SQLite files in the Origin Private File System, through the
//! sync-access-handle pool VFS. Only a Dedicated Worker may use it (sync access handles are
//! worker-only), and only one connection per database file exists at a time.

use sqlite_wasm_rs::WasmOsCallback;
use sqlite_wasm_vfs::sahpool::{install, OpfsSAHPoolCfgBuilder};

use crate::StoreError;

/// Installs the OPFS pool VFS as SQLite's default, with its files in the OPFS folder
/// `directory`, so `open("events.db", ..)` lands there.
///
/// Fails while another worker (an old page being unloaded, another tab) still holds the pool's
/// access handles; the caller decides whether to retry.
pub async fn install_opfs_vfs(directory: &str) -> Result<(), StoreError> {
    let config = OpfsSAHPoolCfgBuilder::new().directory(directory).build();
    install::<WasmOsCallback>(&config, true)
        .await
        .map(|_| ())
        .map_err(|e| StoreError::Opfs(format!("{e:?}")))
}
