//! Wire types that cross a process or thread boundary: the sync messages of docs/protocol.md
//! (`sync`) and the page <-> worker messages (`data`). Serde shapes only; no IO.
#![forbid(unsafe_code)]

pub mod data;
pub mod sync;
