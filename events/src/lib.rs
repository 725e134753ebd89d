//! Tandem's pure event-sourcing core. Everything here is deterministic: no IO, no clock, no
//! randomness. Time and ids are injected by the caller, so every function can be tested exactly
//! and runs the same natively and in the browser worker.
#![forbid(unsafe_code)]

pub mod ids;
