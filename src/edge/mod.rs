//! `beamd edge`: an edge node on the embedded sled log.
//!
//! For now the node runs the control plane only: it announces itself
//! (`NodeJoined`), heartbeats, keeps the log summary projection current with
//! snapshots by policy, and on SIGINT/SIGTERM records `NodeLeft`, snapshots
//! and flushes. Transports and tunnels are added on top of this loop.

mod node;

pub use node::run;
