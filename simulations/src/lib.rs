//! Deterministic simulation of beamd's core, driven by one `u64` seed.
//!
//! For now it covers the event log: random appends with right and wrong
//! expected versions, flushes, crashes that lose the unflushed tail (with
//! torn records), and recovery, checking invariants after every step. The
//! same seed always yields the same log, byte for byte.
#![forbid(unsafe_code)]

mod log_sim;

pub use log_sim::{run_log_simulation, LogSimReport};
