//! Tandem's browser worker: a Dedicated Web Worker that owns the device's SQLite databases in
//! OPFS and answers the page's requests (tandem_protocol::data) over `postMessage`.
//!
//! It is its own wasm module, not the page's: the page's hydrate wasm stays small and free of
//! SQLite, and the worker is free of Leptos (see ARCHITECTURE.md for the sizes).
//! The data service (`service`) has no browser API and is tested natively; the event loop
//! (`browser`, wasm32 only) feeds it the page's messages and runs sync.

pub mod service;

#[cfg(target_arch = "wasm32")]
#[cfg(target_arch = "wasm32")]
mod browser;
#[cfg(target_arch = "wasm32")]
pub use browser::worker_main;
