//! Tandem's browser worker: a Dedicated Web Worker that owns the device's SQLite databases in
//! OPFS and answers the page's requests (tandem_protocol::worker) over `postMessage`.
//!
//! It is its own wasm module, not the page's: the page's hydrate wasm stays small and free of
//! SQLite, and the worker is free of Leptos (see ARCHITECTURE.md for the sizes).
//! On native targets this crate is empty, so `cargo test`/`clippy` of the workspace still run.

#[cfg(target_arch = "wasm32")]
mod browser;
#[cfg(target_arch = "wasm32")]
pub use browser::worker_main;
