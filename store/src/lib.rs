//! Tandem's SQLite adapter. It owns the event log (`events.db`: log, outbox, clock state, the
//! `hlc_now()`/`hlc_compare()` SQL functions) and the read models (`views.db`: the projection
//! engine), natively and on wasm32, where the databases live in the browser's Origin Private
//! File System behind the sync-access-handle pool VFS. Everything that differs between native
//! and wasm32 storage stays in this crate.

pub mod baseline;
pub mod central;
pub mod changes;
pub mod connection;
pub mod driver;
pub mod inspect;
pub mod log;
#[cfg(target_arch = "wasm32")]
pub mod opfs;
pub mod push;
pub mod replica;
pub mod views;
pub mod wire;

pub use central::{Central, CentralError, PushOutcome, Pusher, Readers, ServerViews, SyncLimits};
pub use connection::{open, open_with_page_size, Durability, StoreError};
pub use log::{Appended, EventLog, LogError, PhysicalClock, UndoBook, UndoStep, Violation};
pub use replica::{IdSource, Replica, ReplicaError, Step, Summary};
pub use rusqlite;
pub use views::{
    ListItem, Progress, TodoCounts, TodoDetail, TodoFilter, TodoItem, Views, ViewsError,
    PROJECTION_VERSION,
};
