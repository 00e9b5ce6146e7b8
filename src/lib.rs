//! beamd: a self-hosted tunnel edge whose every state change is an event in
//! an append-only, hash-chained log that can be replayed and audited.
#![forbid(unsafe_code)]

/// Prints a line to stdout, ignoring a closed stdout: a supervisor that
/// stopped reading must not bring the edge or the agent down.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

pub mod acme;
pub mod actors;
pub mod agent;
pub mod api;
pub mod audit;
pub mod bench;
pub mod busy;
pub mod cli;
pub mod client;
pub mod data_dir;
pub mod disk;
pub mod dns;
pub mod edge;
pub mod egress;
pub mod inspector;
pub mod live;
pub mod metric_catalog;
pub mod node;
pub mod progress;
pub mod projections;
pub mod pump;
pub mod rate_limit;
pub mod replay;
pub mod simulate;
pub mod tlog;
pub mod witness;

/// The pure aggregates, in a crate of their own so that nothing there can
/// reach I/O, the actors or the edge (the compiler keeps that layer).
pub use beamd_domain as domain;
/// The agent-edge protocol, in a crate of its own: the one thing edge and
/// agent share, and what the control-frame fuzz target builds alone.
pub use beamd_protocol as protocol;
