//! One edge process, wired: the data dir, the event log and its defences
//! (`log_guard.rs`), the core, the transparency log, the API, the data
//! plane's listeners and keepers, the first tenant and imported tokens
//! (`admin.rs`, `tokens_file.rs`), the settings it runs with (`settings.rs`, built by the command line), and the node's own upkeep: heartbeats
//! and the sweep of tunnels nobody serves (`sweep.rs`). The composition
//! root: only this module knows all of them (`lifecycle.rs`).

mod admin;
mod lifecycle;
mod log_guard;
mod settings;
mod sweep;
mod tokens_file;

pub use lifecycle::run;
pub use settings::{AdminToken, CertFiles, NodeSettings};
pub use sweep::take_offline_after_restart;
