//! Tandem's pure event-sourcing core. Everything here is deterministic: no IO, no clock, no
//! randomness. Time and ids are injected by the caller, so every function can be tested exactly
//! and runs the same natively and in the browser worker.
//!
//! - [`hlc`]: the hybrid logical clock and its sortable stamps.
//! - [`event`]: stored events (envelope + versioned data) and decoding with upcasting.
//! - [`domain`]: the to-do domain's events; [`decide`]: its commands.
//! - [`merge`]: the per-field merge rule; [`state`]: the fold and the view rows it yields.
//! - [`position`]: fractional ordering keys; [`json`]: canonical JSON text.
//! - [`engine`]: the client's sync engine (a pure state machine).
#![forbid(unsafe_code)]

pub mod decide;
pub mod domain;
pub mod engine;
pub mod event;
pub mod history;
pub mod hlc;
pub mod ids;
pub mod json;
pub mod merge;
pub mod position;
pub mod state;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
pub mod undo;
