//! Tandem's SQLite adapter. It opens the event log (`events.db`) and the read models
//! (`views.db`) with the durability each needs, natively and on wasm32, where the databases
//! live in the browser's Origin Private File System behind the sync-access-handle pool VFS.
//! Everything that differs between native and wasm32 storage stays in this crate.

pub mod connection;
#[cfg(target_arch = "wasm32")]
pub mod opfs;

pub use connection::{open, Durability, StoreError};
pub use rusqlite;
