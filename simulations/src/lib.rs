//! Deterministic simulation of beamd's core, driven by one `u64` seed.
//!
//! `harness` runs any `World` from a seed on a single-threaded runtime with
//! virtual time and checks its invariants after every step; beamd's own
//! world (the real core over an in-memory log) lives in the `beamd` crate,
//! which depends on this one. `log_sim` simulates the event log alone:
//! random appends with right and wrong expected versions, flushes, crashes
//! that lose the unflushed tail (with torn records), and recovery. The same
//! seed always yields the same log, byte for byte.
#![forbid(unsafe_code)]

mod harness;
mod log_sim;

pub use harness::{run, Failure, Faults, Outcome, Violation, World};
pub use log_sim::{run_log_simulation, LogSimReport};
