//! The transparency log over the event log: the RFC 6962 tree stored as
//! C2SP tlog-tiles, signed checkpoints (C2SP tlog-checkpoint in a signed
//! note, Ed25519), and the proofs an auditor checks without trusting the edge.

mod checkpoint;
pub mod commands;
mod cosign;
mod keeper;
pub mod mirror;
mod note;
pub mod since;
pub mod tree_check;
mod witnessing;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;

pub use checkpoint::{Checkpoint, SignedCheckpoint};
pub use cosign::{cosignatures, split_note, CosignKey, CosignVerifier, Quorum};
pub use keeper::{run, spawn, CheckpointPolicy, Transparency, CHECKPOINTS_TREE};
pub use note::{key_id, valid_name, LogKey, Verifier};
pub use witnessing::{WitnessReport, WitnessTarget, Witnessing};

use crate::data_dir::DataDir;

/// The signing key's file in the data dir (mode 0600).
pub const KEY_FILE: &str = "log-signing.key";
/// The verifier key's file in the data dir, to hand to auditors.
pub const VERIFIER_FILE: &str = "log-signing.pub";

/// How the edge keeps its transparency log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlogSettings {
    /// The log's name in its checkpoints and signing key, set when the key
    /// is created (none: `beamd/<node id>`).
    pub log_origin: Option<String>,
    /// Sign a checkpoint once this many events arrived since the last one.
    pub checkpoint_every: u64,
    /// Sign a checkpoint at least this often while events arrive.
    pub checkpoint_interval: Duration,
    /// The witnesses every checkpoint is submitted to.
    pub witnesses: Vec<WitnessTarget>,
}

impl Default for TlogSettings {
    fn default() -> Self {
        Self {
            log_origin: None,
            checkpoint_every: 1_000,
            checkpoint_interval: Duration::from_secs(10),
            witnesses: Vec::new(),
        }
    }
}

/// Loads or creates the edge's log key and opens its transparency log.
pub fn open(args: &TlogSettings, dir: &DataDir, node: &str) -> Result<Arc<Transparency>> {
    let path: PathBuf = dir.path().join(KEY_FILE);
    let name = args
        .log_origin
        .clone()
        .unwrap_or_else(|| format!("beamd/{node}"));
    let (key, created) = LogKey::load_or_create(&path, &name)?;
    if let Some(wanted) = &args.log_origin {
        anyhow::ensure!(
            wanted == key.name(),
            "--log-origin {wanted:?} differs from the name of the existing log key {:?} in {}",
            key.name(),
            path.display()
        );
    }
    let verifier = key.verifier().encode();
    let public = dir.path().join(VERIFIER_FILE);
    if created || !public.exists() {
        std::fs::write(&public, format!("{verifier}\n"))
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", public.display()))?;
    }
    if created {
        eprintln!(
            "beamd edge: created the log signing key {} ({verifier})",
            path.display()
        );
    }
    let policy = CheckpointPolicy {
        every: args.checkpoint_every.max(1),
        interval: args.checkpoint_interval.max(Duration::from_millis(10)),
    };
    Ok(Arc::new(Transparency::open(dir.db(), key, policy)?))
}
