//! Wire types that cross a process or thread boundary: the page <-> worker messages (this
//! crate), and later the sync messages of docs/protocol.md. Serde shapes only; no IO.
#![forbid(unsafe_code)]

pub mod sync;
pub mod worker;
